"""Variance of the encoder's IWAE gradient: the standard estimator against DReG (Tucker et al. 2019).

The default network (its initial weights, seed 0) on a minibatch of dynamically binarized MNIST
test images; for each K and estimator, ``--repeats`` independent gradient estimates of the
encoder's parameters on the same images. Printed per row: the total variance (summed over
parameters), the squared norm of the mean gradient, and the variance ratio standard / DReG
measured in the same run (``standard_over_dreg``). A figure, not a test: nothing here is asserted.

    .venv/bin/python benchmarks/dreg_variance.py [--ks 5 50] [--repeats 200] [--batch 16]
"""

import argparse
import time

import pyro
import torch
from common import add_results_argument, config, save_results, table

from pyro_vae.data import Observation, PixelTransform
from pyro_vae.modelling.objectives import IWAE_ELBO
from pyro_vae.runs.configuration.builders import build_vae, load_dataset


def encoder_gradients(vae, x, k: int, gradient: str, repeats: int) -> torch.Tensor:
    """``repeats`` encoder gradient estimates, one flat vector each (minus the loss's gradient)."""
    objective, encoder = IWAE_ELBO(k, gradient), list(vae.encoder.parameters())
    estimates = []
    for seed in range(repeats):
        pyro.set_rng_seed(seed)
        loss = objective.differentiable_loss(vae.model, vae.guide, x)
        estimates.append(torch.cat([g.flatten() for g in torch.autograd.grad(loss, encoder)]))
    return torch.stack(estimates)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ks", type=int, nargs="+", default=[5, 50])
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--batch", type=int, default=16)
    add_results_argument(parser)
    args = parser.parse_args()

    cfg = config([f"dataset.test_size={args.batch}"])
    data = load_dataset(cfg, torch.device("cpu"))
    x = PixelTransform("dynamic", seed=0, observes=Observation.binary).fixed(data.test.images, "test")
    pyro.set_rng_seed(0)
    vae = build_vae(cfg, data.image_shape, data.num_classes)
    rows = []
    for k in args.ks:
        variances = {}
        for gradient in ("standard", "dreg"):
            start = time.perf_counter()
            estimates = encoder_gradients(vae, x, k, gradient, args.repeats)
            seconds = time.perf_counter() - start
            variances[gradient] = estimates.var(0).sum().item()
            rows.append(
                {
                    "k": k,
                    "gradient": gradient,
                    "total_variance": variances[gradient],
                    "mean_gradient_sq_norm": estimates.mean(0).pow(2).sum().item(),
                    "seconds": seconds,
                }
            )
        rows[-2]["standard_over_dreg"] = rows[-1]["standard_over_dreg"] = variances["standard"] / variances["dreg"]
    print(f"encoder gradient of the IWAE bound, {args.batch} MNIST test images, {args.repeats} estimates each")
    print(table(rows, ["k", "gradient", "total_variance", "mean_gradient_sq_norm", "standard_over_dreg", "seconds"]))
    print(
        "wrote "
        f"{save_results(args.results, 'dreg_variance', {'repeats': args.repeats, 'batch': args.batch, 'rows': rows})}"
    )


if __name__ == "__main__":
    main()
