"""``task=train`` for model=gan: the DCGAN's adversarial loop on the VAE's data pipeline.

The images, minibatches, run directory, checkpoints, Ctrl-C handling, history and figures are the
VAE run's (:mod:`.training_run`, :mod:`.training`); what differs is the step (a discriminator update
then a generator update, each with its own Adam) and what is recorded. A GAN has no validation
figure to choose an epoch by, so ``checkpoint.pt`` holds the last epoch, as ``last.pt`` does, and
``metrics.json`` holds no ELBO or log p(x) and says why.
"""

import logging
import math
import time
from pathlib import Path
from typing import Any, Dict

import pyro
import torch
from omegaconf import DictConfig
from tqdm.auto import tqdm

from ..data import DataSplits, PixelTransform
from ..data.batches import MinibatchSampler
from ..errors import DivergenceError
from ..modelling.gan import GAN, discriminator_loss, generator_loss
from . import checkpoints, gan_figures
from .builders import build_gan, load_dataset, pixel_transform
from .interrupts import interruptible
from .loop.state import TrainingState
from .optimizers import fused_adam_runs_on
from .reporting import write_history, write_metrics
from .run_record import Begin, nothing_to_begin
from .settings import apply_threads, resolve_device
from .training_run import check_batch_size

log = logging.getLogger(__name__)

NO_LIKELIHOOD = (
    "a GAN defines no density p(x): its generator maps z ~ N(0, I) to images without a likelihood, so there is "
    "no ELBO or log p(x) to report; score its samples instead"
)
CHECKPOINT_HOLDS = "the last epoch: a GAN has no validation figure to choose one by"
# The columns of history.csv that each step sums: its two losses and D's mean probability of real.
STEP_FIGURES = ("discriminator_loss", "generator_loss", "d_real", "d_fake")


class AdversarialStep:
    """``step(x)``: one discriminator update on ``x`` and a batch of samples, then one generator update on
    the same samples; returns the step's ``STEP_FIGURES`` as one device tensor."""

    def __init__(self, gan: GAN, lr: float, betas) -> None:
        self.gan = gan
        device = next(gan.parameters()).device
        fused = fused_adam_runs_on(device.type)
        adam = {"lr": lr, "betas": tuple(betas), **({"fused": True} if fused else {"foreach": True})}
        self.optimizers = {
            "generator": torch.optim.Adam(gan.generator.parameters(), **adam),
            "discriminator": torch.optim.Adam(gan.discriminator.parameters(), **adam),
        }

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        generator, discriminator = self.gan.generator, self.gan.discriminator
        fake = generator(self.gan.latent_draws(len(x)))
        real_logits, fake_logits = discriminator(x), discriminator(fake.detach())
        d_loss = discriminator_loss(real_logits, fake_logits)
        self._update("discriminator", d_loss)
        discriminator.requires_grad_(False)  # the generator's loss needs no gradient of D's weights
        g_loss = generator_loss(discriminator(fake))
        self._update("generator", g_loss)
        discriminator.requires_grad_(True)
        return torch.stack([d_loss, g_loss, real_logits.sigmoid().mean(), fake_logits.sigmoid().mean()]).detach()

    def _update(self, network: str, loss: torch.Tensor) -> None:
        optimizer = self.optimizers[network]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def state_dict(self) -> Dict[str, Any]:
        return {network: optimizer.state_dict() for network, optimizer in self.optimizers.items()}

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        for network, optimizer in self.optimizers.items():
            optimizer.load_state_dict(state[network])


def train_gan(cfg: DictConfig, run_dir: Path, begin: Begin = nothing_to_begin) -> None:
    """``task=train`` with model=gan on settings and a directory already checked: train, then write
    ``history.csv``, ``metrics.json`` and the figures. ``begin`` is called once the data and every
    checkpoint of a resumed run have been checked. Returns None: there is no validation ELBO to maximise."""
    device = resolve_device(cfg.device)
    apply_threads(cfg.threads)
    pyro.set_rng_seed(cfg.seed)

    data = load_dataset(cfg, device)
    check_batch_size(cfg, data)
    gan = build_gan(cfg, data.image_shape).to(device)
    if cfg.resume:
        checkpoints.check_resume_fits(gan, run_dir)
    begin()
    transform = pixel_transform(cfg)
    log.info(
        "%s: %d training images of shape %s (%s) on %s",
        data.name,
        len(data.train),
        data.image_shape,
        transform.observes,
        device,
    )
    state = fit_gan(gan, data, transform, cfg, run_dir)
    write_history(run_dir / "history.csv", state.history)
    if state.divergence is not None:
        write_metrics(
            run_dir / "metrics.json",
            {"model": cfg.model.name, "diverged": True, "divergence": state.divergence, **_provenance(state, data)},
        )
        raise DivergenceError(f"{state.divergence}; {run_dir / 'metrics.json'} records it")
    last = state.history[-1]
    metrics = {
        "model": cfg.model.name,
        "likelihood": None,
        "no_likelihood": NO_LIKELIHOOD,
        "latent_dim": cfg.latent_dim,
        "observation": str(transform.observes),  # the view of the pixels the generator learned to imitate
        "checkpoint_epoch": state.epochs_completed,
        "checkpoint_holds": CHECKPOINT_HOLDS,
        **{f"final_{name}": last[name] for name in STEP_FIGURES},
        "train_seconds": state.train_seconds,
        "images_per_second": state.images_per_second,
        **_provenance(state, data),
    }
    write_metrics(run_dir / "metrics.json", metrics)
    gan_figures.write_all(gan, state.history, run_dir / "figures")
    log.info("wrote %s", run_dir)


def _provenance(state: TrainingState, data: DataSplits) -> Dict[str, Any]:
    return {
        "epochs_completed": state.epochs_completed,
        "dataset": data.name,
        "data_verified": data.verified,
        "device": str(data.train.images.device),
    }


def fit_gan(gan: GAN, data: DataSplits, transform: PixelTransform, cfg: DictConfig, run_dir: Path) -> TrainingState:
    """Train ``gan`` up to ``cfg.epochs`` epochs, writing ``checkpoint.pt`` and ``last.pt`` after each; an
    epoch whose losses are not finite is not saved and stops training with ``state.divergence`` set.
    SIGINT and SIGTERM raise :class:`RunInterrupted`, never in the middle of a save."""
    device = data.train.images.device
    if device.type == "cpu":
        torch.set_flush_denormal(True)  # Adam's decaying moments as subnormals: see training.fit
    sampler = transform.minibatches(data.train, cfg.batch_size)
    step = AdversarialStep(gan, cfg.model.lr, cfg.model.betas)
    state = _resume(gan, step, run_dir, device) if cfg.resume else TrainingState()
    gan.train()
    with interruptible(run_dir) as saving:
        for epoch in range(state.epochs_completed + 1, cfg.epochs + 1):
            start = time.perf_counter()
            means = run_epoch(step, sampler, epoch, cfg).tolist()
            seconds = time.perf_counter() - start
            if not all(math.isfinite(value) for value in means):
                state.divergence = f"diverged: the losses became {means[:2]} in epoch {epoch}; lower model.lr"
                break
            row = {
                "epoch": epoch,
                **dict(zip(STEP_FIGURES, means)),
                "epoch_seconds": seconds,
                "images_per_second": len(sampler) * cfg.batch_size / seconds,
            }
            state.history.append(row)
            with saving():
                _save_epoch(gan, step, cfg, data, state, run_dir)
            log.info(
                "epoch %d/%d  D loss %.3f  G loss %.3f  D(x) %.2f  D(G(z)) %.2f  (%.1f s, %.0f images/s)",
                epoch,
                cfg.epochs,
                *means,
                seconds,
                row["images_per_second"],
            )
    return state


def run_epoch(step: AdversarialStep, sampler: MinibatchSampler, epoch: int, cfg: DictConfig) -> torch.Tensor:
    """The means over one epoch's minibatches of ``STEP_FIGURES``, read on the host once, at its end."""
    total = torch.zeros(len(STEP_FIGURES), device=sampler.source.device)
    for x, _ in tqdm(sampler, desc=f"epoch {epoch}/{cfg.epochs}", leave=False, disable=None, unit="batch"):
        total += step(x)
    return total / len(sampler)


def _resume(gan: GAN, step: AdversarialStep, run_dir: Path, device: torch.device) -> TrainingState:
    record = checkpoints.resume_record(gan, step, run_dir, device)
    log.info("resuming %s after epoch %d", run_dir, len(record["history"]))
    return TrainingState(history=list(record["history"]))


def _save_epoch(
    gan: GAN, step: AdversarialStep, cfg: DictConfig, data: DataSplits, state: TrainingState, run_dir: Path
) -> None:
    """``checkpoint.pt`` (the weights of the epoch just trained) and ``last.pt`` (those, the optimizers,
    the history and the random streams)."""
    record = checkpoints.model_record(gan, cfg, data.image_shape, data.num_classes)
    checkpoints.save(run_dir / checkpoints.BEST, {**record, "epoch": state.epochs_completed})
    resume = {
        "optimizer": step.state_dict(),
        "history": state.history,
        **checkpoints.rng_state(device=data.train.images.device),
    }
    checkpoints.save(run_dir / checkpoints.LAST, {**record, **resume})
