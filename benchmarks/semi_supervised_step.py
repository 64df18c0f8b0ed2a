"""Milliseconds per training step of Kingma et al.'s M2, beside the conditional VAE's step.

The enumerated bound of an unlabelled minibatch runs the encoder and the decoder once per class (the
guide's y takes every class at once), so it should cost about num_classes conditional-VAE steps, the
classifier's pass beside them; the full step adds a labelled minibatch's bound (one conditional-VAE
step) and the classification term. Each step is the loss, its backward and an Adam step (fused where
torch has it), at MNIST's size with Kingma et al.'s networks: 784 binary pixels, one hidden layer of 500
softplus units in every network, latent 50, 10 classes, batch 100, one thread. The images are Bernoulli
draws at MNIST's mean ink (the time of a step does not depend on what the pixels show).
Prints a table and writes benchmarks/results/semi_supervised_step.json.

    .venv/bin/python benchmarks/semi_supervised_step.py [--steps 30] [--rounds 5] [--batch-size 100]
"""

import argparse

import pyro
import torch
from common import add_results_argument, ms_per_call, save_results, table

from pyro_vae.modelling.likelihoods import BernoulliPixels
from pyro_vae.modelling.networks import MLPDecoder, MLPEncoder
from pyro_vae.modelling.objectives import DeviceTrace_ELBO
from pyro_vae.modelling.semi_supervised import UNLABELLED_ELBO, SemiSupervisedVAE, mlp_classifier, semi_supervised_loss
from pyro_vae.modelling.vae import ConditionalVAE
from pyro_vae.runs.loop.optimizers import fused_adam_runs_on

SHAPE, CLASSES, LATENT, WIDTHS, ACTIVATION = (1, 28, 28), 10, 50, [500], "softplus"
MNIST_INK = 0.13  # the mean pixel of MNIST
NUM_DATA = 50_000


def networks():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    encoder = MLPEncoder(SHAPE, WIDTHS, LATENT, ACTIVATION, 1e-3, context_dim=CLASSES)
    return encoder, MLPDecoder(LATENT + CLASSES, WIDTHS, SHAPE, 1, ACTIVATION), BernoulliPixels()


def adam_step(module, loss):
    """``step(batch)``: zero the gradients, ``loss(batch)``, its backward and an Adam step."""
    optimizer = torch.optim.Adam(module.parameters(), lr=3e-4, fused=fused_adam_runs_on("cpu"))

    def step(batch):
        optimizer.zero_grad(set_to_none=True)
        with pyro.validation_enabled(False):  # as in the training loop after its first step
            value = loss(*batch)
        value.backward()
        optimizer.step()
        return value.detach()

    return step


def conditional_vae_step():
    cvae = ConditionalVAE(*networks(), LATENT, CLASSES, num_data=NUM_DATA)
    objective = DeviceTrace_ELBO(max_plate_nesting=1)  # objective=trace, the project's default
    return adam_step(cvae, lambda x, y: objective.differentiable_loss(cvae.model, cvae.guide, x, y))


def m2(num_labelled):
    classifier = mlp_classifier(SHAPE, WIDTHS, CLASSES, ACTIVATION)
    return SemiSupervisedVAE(
        classifier, *networks(), LATENT, CLASSES, 0.1 * NUM_DATA, num_labelled, NUM_DATA - num_labelled
    )


def unlabelled_step():
    vae = m2(num_labelled=100)
    return adam_step(vae, lambda x, y: UNLABELLED_ELBO.differentiable_loss(vae.model, vae.guide, x))


def full_step():
    """A labelled and an unlabelled minibatch of the same size (the batch's own labels stand for the labelled one)."""
    vae = m2(num_labelled=100)
    return adam_step(vae, lambda x, y: semi_supervised_loss(vae, x, y, x.flip(0)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=30, help="timed steps per round (after 10 of warm-up)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-size", type=int, default=100)
    add_results_argument(parser)
    args = parser.parse_args()
    torch.set_num_threads(1)

    generator = torch.Generator().manual_seed(0)
    batches = [
        (
            torch.bernoulli(torch.full((args.batch_size, *SHAPE), MNIST_INK), generator=generator),
            torch.randint(CLASSES, (args.batch_size,), generator=generator),
        )
        for _ in range(args.steps)
    ]
    steps = {
        "conditional VAE": conditional_vae_step,
        "M2 unlabelled (y enumerated)": unlabelled_step,
        "M2 full step (labelled + unlabelled + classifier)": full_step,
    }
    timings = ms_per_call(steps, batches, rounds=args.rounds)
    reference = timings["conditional VAE"]
    rows = [
        {"step": name, "batch": args.batch_size, "ms": ms, "vs_conditional_vae": ms / reference}
        for name, ms in timings.items()
    ]
    print(table(rows, ["step", "batch", "ms", "vs_conditional_vae"]))
    print(
        f"vs_conditional_vae = ms per step / ms of the conditional VAE's step, same networks, batch and run; "
        f"{CLASSES} classes, so about {CLASSES} is the enumeration's own cost"
    )
    print(f"wrote {save_results(args.results, 'semi_supervised_step', {'rows': rows, 'torch_threads': 1})}")


if __name__ == "__main__":
    main()
