"""Milliseconds per training step: the project's SVI step against a hand-written PyTorch step.

Both use the same encoder and decoder modules (the default MLP), the same Adam settings and
the same minibatches of dynamically binarized MNIST; the hand-written step computes the same
single-sample ELBO, -(log p(x|z) + log p(z) - log q(z|x)) scaled to the whole dataset.
Prints a table and writes benchmarks/results/step_overhead.json.

    python benchmarks/step_overhead.py [--steps 200] [--batch-sizes 128 1024]
"""
import argparse
import platform
import time
from pathlib import Path

import pyro
import torch
from pyro.infer import SVI

from pyro_vae.atomic import write_json
from pyro_vae.data import PixelTransform, load_data
from pyro_vae.objectives import make_objective
from pyro_vae.optimizers import make_optimizer
from pyro_vae.vae import build_vae
from hydra import compose, initialize_config_dir

CONF = Path(__file__).resolve().parents[1] / "conf"
OBJECTIVES = ("trace", "meanfield", "jit", "iwae")


def config(objective: str, batch_size: int):
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        return compose(config_name="config", overrides=[f"elbo={objective}", f"batch_size={batch_size}", "device=cpu"])


def batches(images: torch.Tensor, batch_size: int, count: int):
    pixels = PixelTransform("dynamic", seed=0, continuous=False)
    order = torch.randint(len(images), (count, batch_size))
    return [pixels.training_batch(images[idx]) for idx in order]


def time_steps(step, xs, warmup: int = 10) -> float:
    for x in xs[:warmup]:
        step(x)
    start = time.perf_counter()
    for x in xs[warmup:]:
        step(x)
    return 1000 * (time.perf_counter() - start) / (len(xs) - warmup)


def pyro_step(cfg, image_shape, num_data):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    vae = build_vae(cfg, image_shape)
    objective = make_objective(cfg.elbo)
    optim = make_optimizer(cfg.optimizer, cfg.lr, objective.images_per_loss(cfg.batch_size, num_data))
    svi = SVI(vae.model, vae.guide, optim, loss=objective.elbo)
    return lambda x: svi.step(x, num_data=num_data)


def torch_step(cfg, image_shape, num_data):
    """The reference: the same modules and ELBO with no Pyro in the loop."""
    torch.manual_seed(0)
    vae = build_vae(cfg, image_shape)
    optimizer = torch.optim.Adam(vae.parameters(), lr=cfg.lr, betas=tuple(cfg.optimizer.betas))

    def step(x):
        optimizer.zero_grad()
        q = vae.guide_dist(x)
        z = q.rsample()
        elbo = vae.likelihood(z).log_prob(x) + vae.prior(len(x), x).log_prob(z) - q.log_prob(z)
        loss = -elbo.sum() * (num_data / len(x))
        loss.backward()
        optimizer.step()
        return loss.item()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[128, 1024])
    args = parser.parse_args()

    data = load_data(config("trace", 128).data, torch.device("cpu"))
    num_data = len(data.train)
    rows = []
    print(f"{'objective':<10} {'batch':>6} {'pyro ms':>9} {'torch ms':>9} {'ratio':>6}")
    for batch_size in args.batch_sizes:
        xs = batches(data.train.images, batch_size, args.steps + 10)
        reference = time_steps(torch_step(config("trace", batch_size), data.image_shape, num_data), xs)
        for objective in OBJECTIVES:
            ms = time_steps(pyro_step(config(objective, batch_size), data.image_shape, num_data), xs)
            rows.append({"objective": objective, "batch_size": batch_size, "pyro_ms": ms, "torch_ms": reference, "ratio": ms / reference})
            print(f"{objective:<10} {batch_size:>6} {ms:>9.2f} {reference:>9.2f} {ms / reference:>6.2f}")
    out = Path(__file__).resolve().parent / "results" / "step_overhead.json"
    write_json(out, {"machine": platform.processor() or platform.machine(), "threads": torch.get_num_threads(),
                     "torch": torch.__version__, "pyro": pyro.__version__, "rows": rows})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
