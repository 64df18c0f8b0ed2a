"""Milliseconds per training step beside the peer: NumPyro's jit-compiled ``svi.update`` on the same network.

The network is the default one, 784-512-256-20 with ReLU, a diagonal Gaussian q(z|x) (softplus
scale), a Bernoulli decoder on logits, Adam at lr 1e-3, one z draw per image and the minibatch
ELBO scaled to the 60,000 training images; every step is given the same binarized MNIST batches.
Rows, each at every ``--batch-sizes``:

- ``numpyro jit``: NumPyro's ``SVI.update`` under ``jax.jit`` (XLA compiles and fuses the whole step);
- ``numpyro scan``: a whole epoch's steps in one ``jax.lax.scan``, per step (no Python between steps);
- ``hand-written``: the same step written directly in PyTorch, eager (step_overhead.py's reference);
- ``hand-written, torch.compile``: its loss and gradient compiled by inductor;
- ``hand-written, bf16 autocast``;
- the project's steps: the default (``objective=trace``), ``objective=jit``, and the default with
  ``trainer.precision=bf16-mixed``: the step under ``torch.autocast("cpu", dtype=torch.bfloat16,
  cache_enabled=False)``, as Lightning's ``MixedPrecision`` plugin runs a manual-optimization
  ``training_step`` (loss, ``manual_backward`` and optimizer step all inside it; bf16 has no grad scaler).

``vs_numpyro`` is each row's time over NumPyro's jit step at the same batch size, in the same run.
JAX and NumPyro come with ``.venv/bin/pip install -e ".[bench]"``; without them the NumPyro rows are left out
and the script says so in one line. Take figures on an idle machine, one thread (``--threads 1``,
the default, which holds the process to one core: XLA starts threads of its own whatever its flags).

    .venv/bin/python benchmarks/peer_step.py [--steps 100] [--batch-sizes 20 128 1024] [--threads 1]
"""

import argparse
import functools
import os
import sys
import warnings
from functools import partial

THREADS_FLAG = "--threads"


def _threads_from_argv() -> int:
    """The thread count, read before torch or JAX is imported (XLA reads its flags at import)."""
    if THREADS_FLAG in sys.argv:
        return int(sys.argv[sys.argv.index(THREADS_FLAG) + 1])
    return 1


THREADS = _threads_from_argv()
# XLA's CPU runtime runs its own threads whatever its flags say (measured: 1.9 cores busy for one
# NumPyro step under intra_op_parallelism_threads=1), so the process is held to THREADS cores.
if hasattr(os, "sched_setaffinity"):
    os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:THREADS])
os.environ.setdefault(
    "XLA_FLAGS",
    f"--xla_cpu_multi_thread_eigen={'true' if THREADS > 1 else 'false'} intra_op_parallelism_threads={THREADS}",
)
os.environ.setdefault("JAX_PLATFORMS", "cpu")

import torch  # noqa: E402
from common import add_results_argument, config, ms_per_call, save_results, table  # noqa: E402
from step_overhead import hand_written_step, project_step  # noqa: E402

from pyro_vae.data import Observation, PixelTransform  # noqa: E402
from pyro_vae.runs.configuration.builders import load_dataset  # noqa: E402
from pyro_vae.runs.configuration.commands import pip_install_extra  # noqa: E402

LATENT, WIDTHS, LR = 20, (512, 256), 1e-3


def numpyro_or_reason():
    """(jax, numpyro) or the line that says why the NumPyro rows are left out."""
    try:
        import jax
        import numpyro
    except ImportError as exc:
        return None, f"NumPyro rows left out: {exc.name} is not installed ({pip_install_extra('bench')})"
    return (jax, numpyro), None


def numpyro_svi(jax, numpyro, num_data: int, pixels: int, batch_size: int):
    """NumPyro's SVI on the network, its state initialised on a batch of zeros."""
    import jax.numpy as jnp
    import numpyro.distributions as dist
    from numpyro.infer import SVI, Trace_ELBO

    def dense_init(key, sizes):
        layers = []
        for layer_key, (fan_in, fan_out) in zip(jax.random.split(key, len(sizes) - 1), zip(sizes, sizes[1:])):
            bound = 1 / fan_in**0.5  # torch.nn.Linear's default initialisation
            w_key, b_key = jax.random.split(layer_key)
            layers.append(
                (
                    jax.random.uniform(w_key, (fan_in, fan_out), minval=-bound, maxval=bound),
                    jax.random.uniform(b_key, (fan_out,), minval=-bound, maxval=bound),
                )
            )
        return layers

    def apply(layers, h):
        for index, (w, b) in enumerate(layers):
            h = h @ w + b
            if index < len(layers) - 1:
                h = jax.nn.relu(h)
        return h

    encoder_init = dense_init(jax.random.PRNGKey(1), (pixels, *WIDTHS, 2 * LATENT))
    decoder_init = dense_init(jax.random.PRNGKey(2), (LATENT, *reversed(WIDTHS), pixels))

    def model(x):
        decoder = numpyro.param("decoder", decoder_init)
        with numpyro.plate("data", num_data, subsample_size=x.shape[0]):
            z = numpyro.sample("z", dist.Normal(jnp.zeros(LATENT), 1.0).to_event(1))
            numpyro.sample("x", dist.Bernoulli(logits=apply(decoder, z)).to_event(1), obs=x)

    def guide(x):
        encoder = numpyro.param("encoder", encoder_init)
        loc, raw_scale = jnp.split(apply(encoder, x), 2, axis=-1)
        with numpyro.plate("data", num_data, subsample_size=x.shape[0]):
            numpyro.sample("z", dist.Normal(loc, jax.nn.softplus(raw_scale) + 1e-4).to_event(1))

    svi = SVI(model, guide, numpyro.optim.Adam(LR), Trace_ELBO())
    state = svi.init(jax.random.PRNGKey(0), jnp.zeros((batch_size, pixels)))
    return svi, state


def numpyro_jit_step(peer, num_data: int, batch_size: int, arrays):
    """NumPyro's jit-compiled update; it steps through ``arrays`` (the batches already on JAX's device)
    in turn, ignoring the torch batch it is handed, so that it is timed interleaved with the torch rows."""
    jax, numpyro = peer
    svi, state = numpyro_svi(jax, numpyro, num_data, arrays[0].shape[1], batch_size)
    update = jax.jit(svi.update)
    holder = {"state": state, "next": 0}

    def step(_):
        x = arrays[holder["next"] % len(arrays)]
        holder["next"] += 1
        holder["state"], loss = update(holder["state"], x)
        return loss.block_until_ready()

    return step


def numpyro_scan_epoch(peer, num_data: int, batch_size: int, arrays):
    """All of ``arrays`` in one jit-compiled ``lax.scan``: one call is an epoch of steps."""
    jax, numpyro = peer
    svi, state = numpyro_svi(jax, numpyro, num_data, arrays[0].shape[1], batch_size)
    epoch = jax.jit(lambda state, xs: jax.lax.scan(lambda s, x: svi.update(s, x), state, xs))
    stacked = jax.numpy.stack(arrays)
    holder = {"state": state}

    def run(_):
        holder["state"], losses = epoch(holder["state"], stacked)
        return losses.block_until_ready()

    return run


@functools.cache
def compiled_hand_written_step(cfg_key, image_shape, num_data):
    """The hand-written step under ``torch.compile``: dynamo breaks the graph at ``backward``, and
    AOTAutograd and inductor compile the loss with its gradient, and the optimizer step. Built once
    per batch size (a new model each round would recompile past dynamo's cache limit)."""
    return torch.compile(hand_written_step(config(list(cfg_key)), image_shape, num_data), dynamic=False)


def bf16_hand_written_step(cfg, image_shape, num_data):
    step = hand_written_step(cfg, image_shape, num_data)

    def autocast_step(batch):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return step(batch)

    return autocast_step


def project_step_under_bf16_autocast(cfg, image_shape, num_data):
    """The project's step as training takes it with ``trainer.precision=bf16-mixed``: Lightning's
    ``MixedPrecision.train_step_context`` holds the whole ``training_step`` under this autocast."""
    step = project_step(cfg, image_shape, num_data)

    def autocast_step(batch):
        with torch.autocast("cpu", dtype=torch.bfloat16, cache_enabled=False):
            return step(batch)

    return autocast_step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--steps", type=int, default=100, help="steps per round at batch 128 (more for smaller batches)"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[20, 128, 1024])
    parser.add_argument(THREADS_FLAG, type=int, default=1, help="torch and XLA threads (default 1)")
    parser.add_argument(
        "--no-compile", action="store_true", help="leave out the torch.compile row (it compiles for minutes)"
    )
    add_results_argument(parser)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit.trace's deprecation, for objective=jit
    peer, reason = numpyro_or_reason()
    if reason:
        print(reason)

    data = load_dataset(config(), torch.device("cpu"))
    num_data, shape = len(data.train), data.image_shape
    pixels = PixelTransform("dynamic", seed=0, observes=Observation.binary)
    rows = []
    for batch_size in args.batch_sizes:
        cfg = config([f"batch_size={batch_size}"])
        steps = max(20, args.steps * 128 // batch_size)
        indices = [torch.randint(num_data, (batch_size,)) for _ in range(steps)]
        batches = [(pixels.training_batch(data.train.images[i]), data.train.labels[i]) for i in indices]
        overrides = [f"batch_size={batch_size}"]
        candidates = {
            "hand-written": partial(hand_written_step, cfg, shape, num_data),
            "hand-written, bf16 autocast": partial(bf16_hand_written_step, cfg, shape, num_data),
            "pyro-vae objective=trace (default)": partial(project_step, cfg, shape, num_data),
            "pyro-vae objective=jit": partial(project_step, config([*overrides, "objective=jit"]), shape, num_data),
            "pyro-vae trainer.precision=bf16-mixed": partial(
                project_step_under_bf16_autocast, config([*overrides, "trainer.precision=bf16-mixed"]), shape, num_data
            ),
        }
        if not args.no_compile:
            candidates["hand-written, torch.compile"] = partial(
                compiled_hand_written_step, tuple(overrides), shape, num_data
            )
        scan = {}
        if peer is not None:
            arrays = [peer[0].numpy.asarray(x.flatten(1).numpy()) for x, _ in batches]
            candidates["numpyro jit"] = partial(numpyro_jit_step, peer, num_data, batch_size, arrays)
            epoch = ms_per_call(
                {"scan": partial(numpyro_scan_epoch, peer, num_data, batch_size, arrays)}, [None], args.rounds, 1
            )
            scan["numpyro scan (per step)"] = epoch["scan"] / len(arrays)
        timings = {**ms_per_call(candidates, batches, rounds=args.rounds), **scan}
        reference = timings.get("numpyro jit")
        for name, ms in timings.items():
            rows.append(
                {
                    "step": name,
                    "batch": batch_size,
                    "ms": ms,
                    "vs_numpyro": ms / reference if reference else None,
                    "vs_hand_written": ms / timings["hand-written"],
                }
            )
    print(table(rows, ["step", "batch", "ms", "vs_numpyro", "vs_hand_written"]))
    print("vs_numpyro = ms per step / ms of NumPyro's jit-compiled svi.update, same network, batch and run")
    print(f"wrote {save_results(args.results, 'peer_step', {'rows': rows, 'threads': args.threads})}")


if __name__ == "__main__":
    main()
