"""Milliseconds per training step: the project's step against a hand-written PyTorch step.

Both train the same encoder and decoder with the same optimizer (fused Adam where torch has it) on the same
minibatches of dynamically binarized MNIST; the hand-written step computes the same bound with
no Pyro in the loop: the single-sample ELBO -(log p(x|z) + log p(z) - log q(z|x)) * N / B, or
for ``objective=iwae`` with K particles -(N / B) sum_i [logsumexp_k log w_ik - log K].
Networks: the default MLP (512, 256; latent 20) and Burda et al.'s (tanh 200, 200; latent 50).
Batch 20 is Burda et al.'s protocol, where the per-step cost dominates. For context it also
times Pyro's textbook loop (``SVI.step`` with ``pyro.optim.Adam``), the other objectives and
the Bayesian decoder (default network), the full-covariance and IAF guides, the VampPrior and flow
priors and two stochastic layers (``model=hvae``, z2 of 50 above z1 of ``latent_dim``), each beside a
hand-written step with the same guide, prior and layers, and one ablation: ``objective=trace`` with ``pyro.module``
made a no-op, the share of the overhead that registering parameters with Pyro takes at every
step. ``vs_trace`` is each row's time over that of
``objective=trace`` with the same network and decoder, in the same run.
Prints a table and writes benchmarks/results/step_overhead.json.

    .venv/bin/python benchmarks/step_overhead.py [--steps 100] [--batch-sizes 20 128] [--nets default burda]
        [--particles 5 50] [--threads N]
"""

import argparse
import math
import warnings
from functools import partial

import pyro
import torch
from common import add_results_argument, config, ms_per_call, save_results, table
from pyro.infer import SVI, Trace_ELBO

from pyro_vae.data import Observation, PixelTransform
from pyro_vae.modelling.hierarchical import HierarchicalVAE
from pyro_vae.runs.configuration.builders import build_vae, load_dataset
from pyro_vae.runs.loop.optimizers import fused_adam_runs_on
from pyro_vae.runs.loop.steps import make_step, model_arguments

# The project's steps measured on every network: the objectives, and Pyro's own SVI loop.
STEPS = ("objective=trace", "svi_step=pyro", "objective=meanfield", "objective=jit")
BAYESIAN_OBJECTIVES = ("trace", "meanfield", "jit")
# The families beyond the paper's pair, each beside a hand-written step of the same mathematics.
FAMILIES = {
    "guide=full": ["guide=full"],
    "guide=iaf": ["guide=iaf"],
    "prior=vampprior": ["prior=vampprior", "prior.num_pseudo_inputs=500"],
    "prior=flow": ["prior=flow"],
    "model=hvae": ["model=hvae"],
}
NETS = {
    "default": [],
    "burda": ["net.widths=[200,200]", "net.activation=tanh", "latent_dim=50", "optimizer.eps=1e-4"],
}


def fresh_vae(cfg, image_shape):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    return build_vae(cfg, image_shape, 10)


def hand_written_step(cfg, image_shape, num_data, particles=None):
    """The reference: the same modules, bound and optimizer, written directly in PyTorch;
    ``particles``: the IWAE bound with that many samples per image instead of the ELBO."""
    vae = fresh_vae(cfg, image_shape)
    optimizer = torch.optim.Adam(
        vae.parameters(),
        lr=cfg.lr,
        betas=tuple(cfg.optimizer.betas),
        eps=cfg.optimizer.eps,
        fused=fused_adam_runs_on("cpu"),
    )

    def step(batch):
        x, _ = batch
        optimizer.zero_grad(set_to_none=True)
        log_w = hand_log_weights(vae, x, (particles,) if particles else ())
        bound = torch.logsumexp(log_w, 0) - math.log(particles) if particles else log_w
        loss = -bound.sum() * (num_data / len(x))
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def hand_log_weights(vae, x, shape):
    """log p(x, z) - log q(z|x) for draws of ``shape`` per image, written directly; two layers draw
    z1 ~ q(z1|x), then z2 ~ q(z2|z1), and score each factor once."""
    if isinstance(vae, HierarchicalVAE):
        q1 = vae.encode_z1(x)
        z1 = q1.rsample(shape)
        q2 = vae.top_encoder(z1)
        z2 = q2.rsample()
        log_prior = vae.latent_prior(len(x), vae.encode).log_prob(z2) + vae.top_decoder(z2).log_prob(z1)
        return vae.decode(z1).log_prob(x) + log_prior - q1.log_prob(z1) - q2.log_prob(z2)
    q = vae.encode(x)
    z = q.rsample(shape)
    return vae.decode(z).log_prob(x) + vae.prior(len(x)).log_prob(z) - q.log_prob(z)


def project_step(cfg, image_shape, num_data):
    vae = fresh_vae(cfg, image_shape)
    vae.num_data = num_data
    step = make_step(vae, cfg)

    def validated_off(batch):
        with pyro.validation_enabled(False):  # as in the training loop after its first step
            return step(*batch)

    return validated_off


def without_module_registration(cfg, image_shape, num_data):
    """An ablation, not a way to train: the project's step with ``pyro.module`` a no-op, which
    measures what registering every parameter with Pyro at every step costs (a torch optimizer
    does not need it; Pyro's SVI does)."""
    step = project_step(cfg, image_shape, num_data)

    def unregistered(batch):
        registering, pyro.module = pyro.module, lambda name, module: module
        try:
            return step(batch)
        finally:
            pyro.module = registering

    return unregistered


def textbook_svi_step(cfg, image_shape, num_data):
    vae = fresh_vae(cfg, image_shape)
    vae.num_data = num_data
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": cfg.lr}), loss=Trace_ELBO(max_plate_nesting=1))
    return lambda batch: svi.step(*model_arguments(*batch, vae.conditional))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=100, help="steps per round at batch 128 (more for smaller batches)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[20, 128])
    parser.add_argument("--nets", nargs="+", default=list(NETS), choices=list(NETS))
    parser.add_argument("--particles", type=int, nargs="+", default=[5, 50], help="K of the IWAE rows")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch threads (default: torch's choice, one per core)"
    )
    add_results_argument(parser)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.trace's deprecation, for objective=jit

    data = load_dataset(config(), torch.device("cpu"))
    num_data, shape = len(data.train), data.image_shape
    pixels = PixelTransform("dynamic", seed=0, observes=Observation.binary)
    rows = []
    for net in args.nets:
        for batch_size in args.batch_sizes:
            base = [f"batch_size={batch_size}", *NETS[net]]
            cfg = config(base)
            steps = max(20, args.steps * 128 // batch_size)
            indices = [torch.randint(num_data, (batch_size,)) for _ in range(steps)]
            batches = [(pixels.training_batch(data.train.images[i]), data.train.labels[i]) for i in indices]
            candidates = {
                "hand-written": partial(hand_written_step, cfg, shape, num_data),
                "pyro SVI.step + pyro.optim": partial(textbook_svi_step, cfg, shape, num_data),
            }
            for setting in STEPS:
                candidates[setting] = partial(project_step, config(base + [setting]), shape, num_data)
            candidates["objective=trace, pyro.module skipped (ablation)"] = partial(
                without_module_registration, config(base + ["objective=trace"]), shape, num_data
            )
            for k in args.particles:
                candidates[f"hand-written iwae k={k}"] = partial(hand_written_step, cfg, shape, num_data, particles=k)
                iwae = base + ["objective=iwae", f"objective.num_particles={k}"]
                candidates[f"objective=iwae k={k}"] = partial(project_step, config(iwae), shape, num_data)
                candidates[f"objective=iwae dreg k={k}"] = partial(
                    project_step, config(iwae + ["objective.gradient=dreg"]), shape, num_data
                )
            for family, settings in FAMILIES.items():
                candidates[f"hand-written {family}"] = partial(
                    hand_written_step, config(base + settings), shape, num_data
                )
                candidates[family] = partial(project_step, config(base + settings), shape, num_data)
            if net == "default":
                for objective in BAYESIAN_OBJECTIVES:
                    bayesian = config(base + [f"objective={objective}", "decoder.bayesian=true"])
                    candidates[f"bayesian objective={objective}"] = partial(project_step, bayesian, shape, num_data)
            timings = ms_per_call(candidates, batches, rounds=args.rounds)
            for name, ms in timings.items():
                reference = "hand-written" + (f" iwae k={name.rsplit('k=', 1)[1]}" if "iwae" in name else "")
                family = next((family for family in FAMILIES if name.endswith(family)), None)
                reference = f"hand-written {family}" if family else reference
                trace = "bayesian objective=trace" if name.startswith("bayesian") else "objective=trace"
                rows.append(
                    {
                        "net": net,
                        "step": name,
                        "batch": batch_size,
                        "ms": ms,
                        "reference": reference,
                        "reference_ms": timings[reference],
                        "ratio": ms / timings[reference],
                        "vs_trace": ms / timings[trace],
                    }
                )
    print(table(rows, ["net", "step", "batch", "ms", "reference_ms", "ratio", "vs_trace"]))
    print(
        "ratio = ms per step / ms of the hand-written PyTorch step computing the same bound (an ELBO with a"
        " deterministic decoder, or IWAE with the same K, with the same guide and prior), same network and batch,"
        " same run"
    )
    print("vs_trace = ms per step / ms of objective=trace with the same network and decoder, same run")
    print(
        f"wrote {save_results(args.results, 'step_overhead', {'rows': rows, 'torch_threads': torch.get_num_threads()})}"
    )


if __name__ == "__main__":
    main()
