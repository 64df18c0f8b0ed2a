"""Seconds and peak memory of the importance-sampled test log-likelihood (K = 5000 by default).

Compares, on a subset of the test images, the project's chunking (at most ``chunk_size``
(image, sample) pairs decoded at once: few images with many samples each) against the plain
way of batching images (100 images with all K samples at once), each in its own process so
that its peak memory is its own; then runs the project's default over all 10,000 test images.
Uses the network of ``--experiment`` (burda_vae: the setup that is evaluated with K = 5000)
with the weights of ``--run-dir`` if given (the cost does not depend on the weights).
Prints a table and writes benchmarks/results/loglik.json.

    python benchmarks/loglik.py [--k 5000] [--subset 200] [--experiment burda_vae] [--run-dir DIR] [--skip-full]
"""

import argparse
import multiprocessing
import resource
import time
from typing import Dict, Optional

import pyro
import torch
from common import add_results_argument, config, save_results, table

from pyro_vae import load
from pyro_vae.modelling.estimators import evaluate
from pyro_vae.runs.builders import build_vae, load_dataset, pixel_transform

DEFAULT_CHUNK = 2048  # eval.chunk_size in conf/config.yaml


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(
    experiment: str, run_dir: Optional[str], k: int, images: Optional[int], chunk_size: int
) -> Dict[str, float]:
    """Runs in a fresh process: load the data and model, then time one evaluation."""
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


def in_fresh_process(**kwargs) -> Dict[str, float]:
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(measure, kwds=kwargs)


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
    print(f"wrote {save_results(args.results, 'loglik', {'k': args.k, 'experiment': args.experiment, 'rows': rows})}")


if __name__ == "__main__":
    main()
