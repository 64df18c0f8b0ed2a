"""The DCGAN (model=gan) as a LightningModule, and :func:`fit`, which trains it in Lightning's loop.

Manual optimization: each step is a discriminator update on the batch and a batch of samples, then a
generator update on the same samples, each network with its own Adam. A GAN has no validation figure
to choose an epoch by, so ``checkpoint.pt`` holds the last epoch, as ``last.pt`` does; an epoch whose
losses are not finite is not saved and stops the run.
"""

import logging
import math
import time
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

from ...data import DataSplits, PixelTransform
from ...data.batches import ShuffledIndices
from ...errors import DivergenceError
from ...modelling.gan import GAN, discriminator_loss, generator_loss
from ..directory import checkpoints
from ..directory.run_directory import BEST, LAST
from .checkpointing import RECORDS, RunCheckpoint, resume, resume_refusal
from .interrupts import interruptible
from .loggers import epoch_scalars
from .optimizers import fused_adam_runs_on
from .processes import ONE_PROCESS
from .random_streams import KEY as RANDOM_STREAMS
from .random_streams import RandomStreams
from .state import TrainingState
from .trainer import fit_from, make_trainer

log = logging.getLogger(__name__)

# The columns of history.csv that each step sums: its two losses and D's mean probability of real.
STEP_FIGURES = ("discriminator_loss", "generator_loss", "d_real", "d_fake")


class GANTraining(pl.LightningModule):
    """One GAN's training: the adversarial step, the epoch's history row, and what each checkpoint holds."""

    def __init__(self, gan: GAN, data: DataSplits, transform: PixelTransform, cfg: DictConfig, run_dir: Path) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.gan, self.data, self.cfg, self.run_dir = gan, data, cfg, run_dir
        self.sampler = transform.minibatches(data.train, cfg.batch_size)
        self.state = TrainingState()
        self.resumed: Optional[Dict[str, Any]] = None
        self.adams: Dict[str, torch.optim.Adam] = {}
        self.figures_total = torch.zeros(len(STEP_FIGURES))
        self.epoch_start = 0.0

    def train_dataloader(self) -> ShuffledIndices:
        return ShuffledIndices(self.sampler)

    def configure_optimizers(self) -> List[torch.optim.Adam]:
        fused = fused_adam_runs_on(next(self.gan.parameters()).device.type)
        adam = {"lr": self.cfg.model.lr, "betas": tuple(self.cfg.model.betas)}
        adam.update({"fused": True} if fused else {"foreach": True})
        return [
            torch.optim.Adam(self.gan.discriminator.parameters(), **adam),
            torch.optim.Adam(self.gan.generator.parameters(), **adam),
        ]

    def on_fit_start(self) -> None:
        # The optimizers themselves: a LightningOptimizer copies their attributes, so a state loaded into
        # it would not be the one that steps. By network, in the order last.pt holds them.
        discriminator, generator = self.optimizers(use_pl_optimizer=False)
        self.adams = {"generator": generator, "discriminator": discriminator}
        if self.resumed is not None:
            try:
                for network, adam in self.adams.items():
                    adam.load_state_dict(self.resumed["optimizer"][network])
            except (RuntimeError, ValueError, KeyError) as exc:
                raise resume_refusal(self.run_dir) from exc

    def on_train_epoch_start(self) -> None:
        self.figures_total = torch.zeros(len(STEP_FIGURES), device=self.sampler.source.device)
        self.epoch_start = time.perf_counter()

    def training_step(self, index: torch.Tensor, step: int) -> None:
        x, _ = self.sampler.batch(index)
        self.figures_total += self.adversarial_step(x)

    def adversarial_step(self, x: torch.Tensor) -> torch.Tensor:
        """One discriminator update on ``x`` and a batch of samples, then one generator update on the same
        samples; the step's ``STEP_FIGURES`` as one device tensor, read on the host once an epoch."""
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
        adam = self.adams[network]
        adam.zero_grad(set_to_none=True)
        self.manual_backward(loss)
        adam.step()

    def on_train_epoch_end(self) -> None:
        epoch = self.current_epoch + 1
        means = (self.figures_total / len(self.sampler)).tolist()
        seconds = time.perf_counter() - self.epoch_start
        if not all(math.isfinite(value) for value in means):
            raise DivergenceError(f"diverged: the losses became {means[:2]} in epoch {epoch}; lower model.lr")
        row = {
            "epoch": epoch,
            **dict(zip(STEP_FIGURES, means)),
            "epoch_seconds": seconds,
            "images_per_second": len(self.sampler) * self.cfg.batch_size / seconds,
        }
        self.state.history.append(row)
        self.log_dict(epoch_scalars(row), logger=True)
        log.info(
            "epoch %d/%d  D loss %.3f  G loss %.3f  D(x) %.2f  D(G(z)) %.2f  (%.1f s, %.0f images/s)",
            epoch,
            self.cfg.epochs,
            *means,
            seconds,
            row["images_per_second"],
        )

    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        record = checkpoints.model_record(self.gan, self.cfg, self.data.image_shape, self.data.num_classes)
        checkpoint[RECORDS] = {
            BEST: {**record, "epoch": self.state.epochs_completed},
            LAST: {
                **record,
                "optimizer": {network: adam.state_dict() for network, adam in self.adams.items()},
                "history": self.state.history,
                **checkpoint.pop(RANDOM_STREAMS),
            },
        }


def fit(
    gan: GAN,
    data: DataSplits,
    transform: PixelTransform,
    cfg: DictConfig,
    run_dir: Path,
    loggers: Sequence[Logger] = (),
    callbacks: Sequence[pl.Callback] = (),
) -> TrainingState:
    """Train ``gan`` up to ``cfg.epochs`` epochs in Lightning's loop, writing ``checkpoint.pt`` and ``last.pt``
    after each; an epoch whose losses are not finite is not saved and stops training with ``state.divergence``
    set. SIGINT and SIGTERM raise :class:`RunInterrupted`, never in the middle of a save."""
    device = data.train.images.device
    module = GANTraining(gan, data, transform, cfg, run_dir)
    record = resume(module, gan, run_dir, device) if cfg.resume else None
    with interruptible(run_dir) as saving:
        run_callbacks = [RunCheckpoint(run_dir, saving, monitor=None), RandomStreams(ONE_PROCESS, device)]
        trainer = make_trainer(cfg, device, [*run_callbacks, *callbacks], list(loggers))
        fit_from(trainer, module, record, ONE_PROCESS, device, cfg.seed)
    return module.state
