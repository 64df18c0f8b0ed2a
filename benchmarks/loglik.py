"""Seconds and peak memory of the importance-sampled test log-likelihood (K = 5000 by default).

Compares, on a subset of the test images, the project's chunking (at most ``chunk_size``
(image, sample) pairs decoded at once: few images with many samples each) against the plain
way of batching images (100 images with all K samples at once), each in its own process so
that its peak memory is its own; then runs the project's default over all 10,000 test images.
Uses the network of ``--experiment`` (burda_vae: the setup that is evaluated with K = 5000)
with the weights of ``--run-dir`` if given (the cost does not depend on the weights).

First, the estimator against the arithmetic's own limit, on the subset, one thread: its decoder
FLOPs (counted by torch's FlopCounterMode) at the rate this core reaches on the same matrix
products (the decoder's linear layers at the chunk's rows, timed alone), beside the decoder alone
and the estimator with torch's own Bernoulli scoring (binary cross-entropy), in one process, with
the full test set's time extrapolated from each. ``--experiment '' --k 1000`` is the default run's
test bound. Prints tables and writes benchmarks/results/loglik.json.

    .venv/bin/python benchmarks/loglik.py [--k 5000] [--subset 200] [--experiment burda_vae] [--run-dir DIR]
        [--skip-full]
"""

import argparse
import multiprocessing
import resource
import time
from typing import Callable, Dict, List, Optional, Tuple

import pyro
import pyro.distributions as dist
import torch
from common import add_results_argument, config, cpu_model, save_results, table
from torch.nn import functional as F
from torch.utils.flop_counter import FlopCounterMode

from pyro_vae import load
from pyro_vae.modelling import likelihoods
from pyro_vae.modelling.estimators import evaluate
from pyro_vae.runs.configuration.builders import build_vae, load_dataset, pixel_transform

DEFAULT_CHUNK = 2048  # eval.chunk_size in conf/config.yaml
FULL_TEST_SET = 10_000  # MNIST's test images, for the extrapolated times
REPEATS = 5  # the fastest of these many timings of each part: the others were slowed by something else


def _fastest(work: Callable[[], object], repeats: int = REPEATS) -> float:
    work()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        times.append(time.perf_counter() - start)
    return min(times)


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(
    experiment: str, run_dir: Optional[str], k: int, images: Optional[int], chunk_size: int
) -> Dict[str, float]:
    """Runs in a fresh process, one thread: load the data and model, then time one evaluation."""
    torch.set_num_threads(1)  # two threads collapse when another process keeps a core busy
    cfg = config([f"experiment={experiment}"] if experiment else [])
    pyro.set_rng_seed(0)
    data = load_dataset(cfg, torch.device("cpu"))
    vae = load(run_dir) if run_dir else build_vae(cfg, data.image_shape, data.num_classes)
    test = pixel_transform(cfg).fixed(data.test.images, "test")
    test = test[:images] if images else test
    before = _peak_rss_mib()
    start = time.perf_counter()
    result = evaluate(vae, test, num_samples=k, chunk_size=chunk_size)
    seconds = time.perf_counter() - start
    return {
        "images": len(test),
        "seconds": seconds,
        "peak_mib": _peak_rss_mib(),
        "eval_extra_mib": _peak_rss_mib() - before,
        "log_likelihood": result.log_likelihood,
    }


def in_fresh_process(function=None, **kwargs) -> Dict[str, float]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(function or measure, kwds=kwargs)


def _linear_shapes(decoder: torch.nn.Module, z: torch.Tensor) -> List[Tuple[int, int]]:
    """(in, out) of each linear layer one decoder pass calls, in order."""
    shapes = []
    hooks = [
        module.register_forward_hook(lambda m, args, out: shapes.append((m.in_features, m.out_features)))
        for module in decoder.modules()
        if isinstance(module, torch.nn.Linear)
    ]
    with torch.no_grad():
        decoder(z)
    for hook in hooks:
        hook.remove()
    return shapes


def arithmetic_limit(experiment: str, run_dir: Optional[str], k: int, images: int, chunk_size: int) -> Dict:
    """Runs in a fresh process, one thread: the estimator's seconds on ``images`` test images beside
    the decoder alone, its matrix products alone, and the estimator with torch's Bernoulli scoring."""
    torch.set_num_threads(1)
    cfg = config([f"experiment={experiment}"] if experiment else [])
    pyro.set_rng_seed(0)
    data = load_dataset(cfg, torch.device("cpu"))
    vae = load(run_dir) if run_dir else build_vae(cfg, data.image_shape, data.num_classes)
    vae.eval()
    test = pixel_transform(cfg).fixed(data.test.images, "test")[:images]
    rows = max(1, chunk_size // k) * min(k, chunk_size)  # (image, sample) pairs per chunk, as evaluate takes them
    z = torch.randn(rows, vae.latent_dim)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        vae.decoder(z)
    flops_per_pass = counter.get_total_flops() / rows
    shapes = _linear_shapes(vae.decoder, z)
    layers = [(torch.randn(rows, n_in), torch.randn(n_out, n_in), torch.randn(n_out)) for n_in, n_out in shapes]
    pairs = images * k
    with torch.no_grad():
        seconds = {
            "matrix products alone (the limit)": _fastest(lambda: [F.linear(*layer) for layer in layers])
            * pairs
            / rows,
            "decoder alone": _fastest(lambda: vae.decoder(z)) * pairs / rows,
        }

        def estimate():
            return evaluate(vae, test, num_samples=k, chunk_size=chunk_size)

        seconds["estimator, torch's Bernoulli scoring (before)"] = _with_torch_scoring(lambda: _fastest(estimate, 2))
        seconds["estimator (pyro-vae)"] = _fastest(estimate, 2)
    limit = seconds["matrix products alone (the limit)"]
    return {
        "decoder_mflop_per_pass": flops_per_pass / 1e6,
        "gemm_gflops": flops_per_pass * pairs / limit / 1e9,
        "rows": [
            {
                "part": name,
                "seconds_subset": value,
                "seconds_full_test_set": value * FULL_TEST_SET / images,
                "gflops": flops_per_pass * pairs / value / 1e9,
                "x_limit": value / limit,
            }
            for name, value in seconds.items()
        ],
    }


def _with_torch_scoring(work: Callable[[], float]) -> float:
    """``work`` with the Bernoulli likelihood scored by torch's own ``Bernoulli.log_prob``."""
    project = likelihoods.LogitBernoulli.log_prob
    likelihoods.LogitBernoulli.log_prob = dist.Bernoulli.log_prob
    try:
        return work()
    finally:
        likelihoods.LogitBernoulli.log_prob = project


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--k", type=int, default=5000)
    parser.add_argument("--subset", type=int, default=200, help="test images for the comparison of strategies")
    parser.add_argument(
        "--experiment", default="burda_vae", help="experiment config whose network is evaluated ('' for the default)"
    )
    parser.add_argument("--run-dir", default=None, help="a finished run whose weights to use")
    parser.add_argument("--skip-full", action="store_true", help="only the subset comparison")
    add_results_argument(parser)
    args = parser.parse_args()
    common = dict(experiment=args.experiment, run_dir=args.run_dir, k=args.k)

    limit = in_fresh_process(arithmetic_limit, images=args.subset, chunk_size=DEFAULT_CHUNK, **common)
    print(
        f"{cpu_model()}, torch {torch.__version__}, one thread; {args.subset} test images at K = {args.k}: "
        f"a decoder pass is {limit['decoder_mflop_per_pass']:.3f} MFLOP, its matrix products alone run at "
        f"{limit['gemm_gflops']:.1f} GFLOP/s; x_limit is each part's time over theirs"
    )
    print(table(limit["rows"], ["part", "seconds_subset", "seconds_full_test_set", "gflops", "x_limit"]))

    strategies = {
        "images in batches of 100, all K samples at once": 100 * args.k,
        "pyro-vae chunks of 512 pairs": 512,
        "pyro-vae chunks of 2,048 pairs (default)": DEFAULT_CHUNK,
        "pyro-vae chunks of 16,384 pairs": 16384,
        "pyro-vae chunks of 65,536 pairs": 65536,
    }
    rows = []
    for name, chunk in strategies.items():
        figures = in_fresh_process(images=args.subset, chunk_size=chunk, **common)
        rows.append({"strategy": name, **figures})
    reference = rows[0]["seconds"]
    for row in rows:
        row["speedup"] = reference / row["seconds"]
    columns = ["strategy", "images", "seconds", "speedup", "eval_extra_mib", "peak_mib"]
    print(table(rows, columns))
    if not args.skip_full:
        full = in_fresh_process(images=None, chunk_size=DEFAULT_CHUNK, **common)
        rows.append({"strategy": "pyro-vae default, all test images", **full, "speedup": float("nan")})
        print(table(rows[-1:], columns))
        print(f"log-likelihood estimate {full['log_likelihood']:.2f} nats per image (K = {args.k})")
    print(
        f"K = {args.k}; network of experiment={args.experiment or '(default)'}; "
        f"peak_mib is the process's peak resident memory, eval_extra_mib its growth during the evaluation"
    )
    figures = {"k": args.k, "experiment": args.experiment, "rows": rows, "arithmetic_limit": limit}
    print(f"wrote {save_results(args.results, 'loglik', figures)}")


if __name__ == "__main__":
    main()
