"""Kingma et al.'s M2 (model=m2) as a LightningModule, and :func:`fit`, which trains it in Lightning's loop.

Manual optimization: each step is the paper's J^alpha on ``batch_size`` unlabelled images (the label summed
out) and ``model.labelled_batch_size`` labelled ones, one backward and one torch optimizer step. An epoch is
one pass over the unlabelled images; the labelled ones are cycled through, each as often as the others. Each
epoch ends with the validation error of q(y|x), which chooses ``checkpoint.pt``, and the validation bounds.
"""

import logging
import math
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import lightning.pytorch as pl
import pyro
import torch
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

from ...data import DataSplits, PixelTransform
from ...data.labelled_subset import labelled_batches
from ...data.splits import LabelledImages
from ...errors import DivergenceError
from ...modelling.semi_supervised import SemiSupervisedVAE, classification_error, mean_bounds, semi_supervised_loss
from ..directory import checkpoints
from ..directory.run_directory import BEST, LAST
from .checkpointing import RECORDS, RunCheckpoint, resume, resume_refusal
from .epoch_batches import EpochBatches
from .follow_cores import FollowIdleCores
from .interrupts import interruptible
from .loggers import epoch_scalars
from .optimizers import make_optimizer
from .processes import ONE_PROCESS
from .random_streams import KEY as RANDOM_STREAMS
from .random_streams import RandomStreams
from .state import TrainingState
from .trainer import fit_from, make_trainer

log = logging.getLogger(__name__)


class SemiSupervisedTraining(pl.LightningModule):
    """One M2's training on ``labelled`` and ``unlabelled`` training images: the step, the epoch's validation
    and history row, and what each checkpoint holds."""

    def __init__(
        self,
        m2: SemiSupervisedVAE,
        data: DataSplits,
        labelled: LabelledImages,
        unlabelled: LabelledImages,
        transform: PixelTransform,
        cfg: DictConfig,
        run_dir: Path,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.m2, self.data, self.cfg, self.run_dir = m2, data, cfg, run_dir
        m2.num_labelled, m2.num_unlabelled = len(labelled), len(unlabelled)  # each minibatch's bound, scaled
        self.sampler = transform.minibatches(unlabelled, cfg.batch_size)
        self.labelled_source, self.labels = transform.training_source(labelled.images), labelled.labels
        self.transform = transform
        self.val_images, self.val_labels = transform.fixed(data.val.images, "val"), data.val.labels
        self.state = TrainingState()
        self.resumed: Optional[Dict[str, Any]] = None
        self.optimizer: Optional[torch.optim.Optimizer] = None
        self.epoch_labelled = torch.zeros(0, dtype=torch.long)
        self.loss_total = torch.zeros(())
        self.epoch_start = 0.0

    def train_dataloader(self) -> EpochBatches:
        return EpochBatches(self.sampler, self.cfg.seed, lambda: self.current_epoch + 1, 0, 1)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        trained = (parameter for parameter in self.m2.parameters() if parameter.requires_grad)  # M1+M2: not M1
        return make_optimizer(self.cfg.optimizer, self.cfg.lr, trained, len(self.data.train))

    def on_fit_start(self) -> None:
        self.optimizer = self.optimizers(use_pl_optimizer=False)
        if self.resumed is not None:
            try:
                self.optimizer.load_state_dict(self.resumed["optimizer"])
            except (RuntimeError, ValueError, KeyError) as exc:
                raise resume_refusal(self.run_dir) from exc

    def on_train_epoch_start(self) -> None:
        epoch, size = self.current_epoch + 1, self.cfg.model.labelled_batch_size
        self.epoch_labelled = labelled_batches(len(self.labels), size, len(self.sampler), self.cfg.seed, epoch)
        self.loss_total = torch.zeros((), device=self.sampler.source.device)
        self.epoch_start = time.perf_counter()

    def training_step(self, index: torch.Tensor, step: int) -> torch.Tensor:
        unlabelled_x, _ = self.sampler.batch(index)
        chosen = self.epoch_labelled[step].to(self.labels.device)
        labelled_x, labels = self.transform.training_batch(self.labelled_source[chosen]), self.labels[chosen]
        self.optimizer.zero_grad(set_to_none=True)
        with pyro.validation_enabled(self.current_epoch == 0 and step == 0):
            loss = semi_supervised_loss(self.m2, labelled_x, labels, unlabelled_x)
        loss.backward()
        self.optimizer.step()
        self.loss_total += loss.detach()
        return loss.detach()

    def on_train_epoch_end(self) -> None:
        cfg, epoch = self.cfg, self.current_epoch + 1
        seconds = time.perf_counter() - self.epoch_start
        loss = self.loss_total.item() / len(self.data.train) / len(self.sampler)
        if not math.isfinite(loss):
            raise DivergenceError(f"diverged: the loss became {loss} in epoch {epoch}; lower lr")
        chunk = cfg.eval.chunk_size
        val_error = classification_error(self.m2, self.val_images, self.val_labels, chunk)
        with_labels, without_labels = mean_bounds(self.m2, self.val_images, self.val_labels, chunk)
        best = val_error < min((row["val_error"] for row in self.state.history), default=math.inf)
        row = {
            "epoch": epoch,
            "train_loss": loss,  # J^alpha per training image: minus the bounds, plus the classification term
            "val_error": val_error,
            "val_elbo_labelled": with_labels,
            "val_elbo_unlabelled": without_labels,
            "epoch_seconds": seconds,
            "images_per_second": len(self.sampler) * cfg.batch_size / seconds,
            "lr": self.optimizer.param_groups[0]["lr"],
        }
        self.state.history.append(row)
        self.log("val_error", torch.tensor(val_error, dtype=torch.float64), logger=False)  # for RunCheckpoint
        self.log_dict(epoch_scalars(row), logger=True)
        log.info(
            "epoch %d/%d  loss %.2f  val error %.2f%%%s  val ELBO %.2f (labels) %.2f (none)  (%.1f s, %.0f images/s)",
            epoch,
            cfg.epochs,
            loss,
            100 * val_error,
            "  best" if best else "",
            with_labels,
            without_labels,
            seconds,
            row["images_per_second"],
        )

    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        record = checkpoints.model_record(self.m2, self.cfg, self.data.image_shape, self.data.num_classes)
        history = self.state.history
        best = min(history, key=lambda row: row["val_error"])
        checkpoint[RECORDS] = {
            BEST: {**record, "epoch": best["epoch"], "val_error": best["val_error"]},
            LAST: {
                **record,
                "optimizer": self.optimizer.state_dict(),
                "history": history,
                **checkpoint.pop(RANDOM_STREAMS),
            },
        }


def fit(
    m2: SemiSupervisedVAE,
    data: DataSplits,
    labelled: LabelledImages,
    unlabelled: LabelledImages,
    transform: PixelTransform,
    cfg: DictConfig,
    run_dir: Path,
    threads=None,
    loggers: Sequence[Logger] = (),
    callbacks: Sequence[pl.Callback] = (),
) -> TrainingState:
    """Train ``m2`` for up to ``cfg.epochs`` epochs in Lightning's loop, writing ``checkpoint.pt`` (lowest
    validation error) and ``last.pt`` (every epoch); a loss that is not finite stops training with
    ``state.divergence`` set. SIGINT and SIGTERM raise :class:`RunInterrupted`, never in the middle of a save."""
    device = data.train.images.device
    module = SemiSupervisedTraining(m2, data, labelled, unlabelled, transform, cfg, run_dir)
    record = resume(module, m2, run_dir, device) if cfg.resume else None
    with interruptible(run_dir) as saving:
        checkpoint = RunCheckpoint(run_dir, saving, monitor="val_error", mode="min")
        checkpoint.start_from(module.state.history)
        run_callbacks = [checkpoint, RandomStreams(ONE_PROCESS, device)]
        if threads is not None:
            run_callbacks.append(FollowIdleCores(threads))
        trainer = make_trainer(cfg, device, [*run_callbacks, *callbacks], list(loggers))
        fit_from(trainer, module, record, ONE_PROCESS, device, cfg.seed)
    return module.state
