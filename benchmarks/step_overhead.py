"""Milliseconds per training step: the project's step against a hand-written PyTorch step.

Both train the same encoder and decoder (the default MLP) with the same optimizer (fused Adam)
on the same minibatches of dynamically binarized MNIST; the hand-written step computes the same
single-sample ELBO, -(log p(x|z) + log p(z) - log q(z|x)) * N / B, with no Pyro in the loop.
For context it also times Pyro's textbook loop, ``SVI.step`` with ``pyro.optim.Adam``, and the
Bayesian decoder (``decoder.bayesian=true``) with each objective it can train with; ``vs_trace``
is each row's time over that of ``elbo=trace`` with the same decoder, in the same run.
Prints a table and writes benchmarks/results/step_overhead.json.

    python benchmarks/step_overhead.py [--steps 300] [--batch-sizes 128 1024]
"""
import argparse
import warnings
from functools import partial

import pyro
import torch
from pyro.infer import SVI, Trace_ELBO

from common import add_results_argument, config, ms_per_call, save_results, table
from pyro_vae.data import PixelTransform, load_data
from pyro_vae.steps import make_step
from pyro_vae.vae import build_vae

OBJECTIVES = ("trace", "trace_pyro", "meanfield", "iwae", "jit")
BAYESIAN_OBJECTIVES = ("trace", "meanfield", "jit")


def fresh_vae(cfg, image_shape):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    return build_vae(cfg, image_shape, 10)


def hand_written_step(cfg, image_shape, num_data):
    """The reference: the same modules, ELBO and optimizer, written directly in PyTorch."""
    vae = fresh_vae(cfg, image_shape)
    optimizer = torch.optim.Adam(vae.parameters(), lr=cfg.lr, betas=tuple(cfg.optimizer.betas), eps=cfg.optimizer.eps, fused=True)

    def step(batch):
        x, _ = batch
        optimizer.zero_grad(set_to_none=True)
        q = vae.guide_dist(x)
        z = q.rsample()
        elbo = vae.likelihood(z).log_prob(x) + vae.prior(len(x), x).log_prob(z) - q.log_prob(z)
        loss = -elbo.sum() * (num_data / len(x))
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def project_step(cfg, image_shape, num_data):
    vae = fresh_vae(cfg, image_shape)
    step = make_step(vae, cfg, num_data)

    def validated_off(batch):
        with pyro.validation_enabled(False):  # as in the training loop after its first step
            return step(*batch)

    return validated_off


def textbook_svi_step(cfg, image_shape, num_data):
    vae = fresh_vae(cfg, image_shape)
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": cfg.lr}), loss=Trace_ELBO(max_plate_nesting=1))
    return lambda batch: svi.step(*batch, num_data=num_data)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100, help="steps per round at batch 128 (fewer for larger batches)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 1024])
    add_results_argument(parser)
    args = parser.parse_args()
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.trace's deprecation, for elbo=jit

    data = load_data(config().data, torch.device("cpu"))
    num_data, shape = len(data.train), data.image_shape
    pixels = PixelTransform("dynamic", seed=0, continuous=False)
    rows = []
    for batch_size in args.batch_sizes:
        cfg = config([f"batch_size={batch_size}"])
        steps = max(20, args.steps * 128 // batch_size)
        indices = [torch.randint(num_data, (batch_size,)) for _ in range(steps)]
        batches = [(pixels.training_batch(data.train.images[i]), data.train.labels[i]) for i in indices]
        candidates = {"hand-written": partial(hand_written_step, cfg, shape, num_data),
                      "pyro SVI.step + pyro.optim": partial(textbook_svi_step, cfg, shape, num_data)}
        for objective in OBJECTIVES:
            objective_cfg = config([f"batch_size={batch_size}", f"elbo={objective}"])
            candidates[f"elbo={objective}"] = partial(project_step, objective_cfg, shape, num_data)
        for objective in BAYESIAN_OBJECTIVES:
            objective_cfg = config([f"batch_size={batch_size}", f"elbo={objective}", "decoder.bayesian=true"])
            candidates[f"bayesian elbo={objective}"] = partial(project_step, objective_cfg, shape, num_data)
        timings = ms_per_call(candidates, batches, rounds=args.rounds)
        reference = timings.pop("hand-written")
        for name, ms in timings.items():
            trace_ms = timings["bayesian elbo=trace" if name.startswith("bayesian") else "elbo=trace"]
            rows.append({"step": name, "batch": batch_size, "ms": ms, "hand_ms": reference, "ratio": ms / reference,
                         "vs_trace": ms / trace_ms})
    print(table(rows, ["step", "batch", "ms", "hand_ms", "ratio", "vs_trace"]))
    print("ratio = ms per step / ms of the hand-written PyTorch step (a deterministic decoder), same run (iwae uses 5 particles)")
    print("vs_trace = ms per step / ms of elbo=trace with the same decoder, same run")
    print(f"wrote {save_results(args.results, 'step_overhead', {'rows': rows})}")


if __name__ == "__main__":
    main()
