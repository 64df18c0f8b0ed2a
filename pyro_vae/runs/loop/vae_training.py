"""The VAE family (every objective, guide and prior, the conditional VAE, the Bayesian decoder, two
layers) as a LightningModule, and :func:`fit`, which trains one in Lightning's loop.

Manual optimization: each step is the objective's ``differentiable_loss`` (``DeviceTrace_ELBO`` by
default), one backward and one torch optimizer step, in that order, as ``pyro.infer.SVI`` does it;
``svi_step=pyro`` is ``pyro.infer.SVI`` itself. Each epoch ends with the validation ELBO, which chooses
``checkpoint.pt``, drives a plateau schedule and early stopping, and catches a divergence.
"""

import logging
import time
from pathlib import Path
from typing import Any, Dict, Optional, Sequence

import lightning.pytorch as pl
import pyro
import torch
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig

from ...data import DataSplits, PixelTransform
from ...errors import DivergenceError
from ...modelling.estimators import Evaluation, evaluate
from ...modelling.vae import VAE
from ..configuration.builders import make_objective
from ..configuration.cores import ThreadsFollowLoad
from ..configuration.trainer_settings import beyond_one_float32_process
from ..directory import checkpoints
from ..directory.run_directory import BEST, LAST
from .checkpointing import RECORDS, RunCheckpoint, resume, resume_refusal
from .divergence import DivergenceCheck, divergence_message, validation_divergence
from .early_stopping import StopWithoutImprovement
from .epoch_batches import EpochBatches
from .follow_cores import FollowIdleCores
from .interrupts import interruptible
from .loggers import epoch_scalars
from .optimizers import make_optimizer
from .processes import ONE_PROCESS, Processes
from .random_streams import KEY as RANDOM_STREAMS
from .random_streams import RandomStreams
from .schedules import make_schedule, step_schedule
from .state import TrainingState
from .steps import PyroSVIStep, TorchOptimizerStep, TrainingStep
from .trainer import fit_from, make_trainer

log = logging.getLogger(__name__)


def kl_weight_at(cfg: DictConfig, epoch: int, progress: float) -> float:
    """The KL weight (beta) after ``progress`` (0 to 1) of ``epoch``: linear from 0 over ``kl_warmup_epochs``."""
    if not cfg.kl_warmup_epochs:
        return cfg.kl_weight
    return cfg.kl_weight * min(1.0, (epoch - 1 + progress) / cfg.kl_warmup_epochs)


class VAETraining(pl.LightningModule):
    """One VAE's training: the step, the epoch's validation and history row, and what each checkpoint holds."""

    def __init__(
        self,
        vae: VAE,
        data: DataSplits,
        transform: PixelTransform,
        cfg: DictConfig,
        run_dir: Path,
        processes: Processes,
    ) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.vae, self.cfg, self.run_dir, self.processes = vae, cfg, run_dir, processes
        self.data = data
        self.num_data = vae.num_data = len(data.train)  # the data plate scales each minibatch to the training set
        self.sampler = transform.minibatches(data.train, cfg.batch_size)
        self.val_images = processes.shard(transform.fixed(data.val.images, "val"))
        self.val_labels = processes.shard(data.val.labels)
        self.state = TrainingState()
        textbook = cfg.svi_step == "pyro"
        self.objective = make_objective(cfg.objective, textbook=textbook)
        # svi_step=pyro: pyro.infer.SVI keeps one optimizer per parameter; the torch step waits for the Trainer's.
        self.step: Optional[TrainingStep] = (
            PyroSVIStep(vae, self.objective, cfg.optimizer, cfg.lr) if textbook else None
        )
        self.resumed: Optional[Dict[str, Any]] = None
        self.loss_total = torch.zeros(())
        self.epoch_start = 0.0

    def train_dataloader(self) -> EpochBatches:
        world = self.processes
        return EpochBatches(self.sampler, self.cfg.seed, lambda: self.current_epoch + 1, world.rank, world.world_size)

    def configure_optimizers(self) -> Any:
        if self.step is not None:
            return None  # svi_step=pyro, which settings.validate refuses with a schedule
        optimizer = make_optimizer(self.cfg.optimizer, self.cfg.lr, self.vae.parameters(), self.num_data)
        schedule = make_schedule(self.cfg.schedule, optimizer)
        return optimizer if schedule is None else {"optimizer": optimizer, "lr_scheduler": schedule}

    def on_fit_start(self) -> None:
        if self.step is None:
            # The optimizer itself: a LightningOptimizer copies its attributes, so a state loaded into it,
            # and the rate a schedule sets, would not be the ones that step.
            optimizer = self.optimizers(use_pl_optimizer=False)
            # Lightning's manual_backward for DDP's reducer and mixed precision; in one float32 process it adds only
            # its hook calls, 0.33 ms a step (benchmarks/loop_overhead.py), to a backward that is the tensor's own.
            backward = self.manual_backward if beyond_one_float32_process(self.cfg.trainer) else torch.Tensor.backward
            self.step = TorchOptimizerStep(self.vae, self.objective, optimizer, backward)
        if self.resumed is not None:
            self._restore_optimizer(self.resumed)

    def on_train_epoch_start(self) -> None:
        self.loss_total = torch.zeros((), device=self.sampler.source.device)
        self.epoch_lr = self.step.lr
        self.epoch_start = time.perf_counter()

    def training_step(self, index: torch.Tensor, step: int) -> torch.Tensor:
        x, y = self.sampler.batch(index)
        epoch = self.current_epoch + 1
        kl_weight = kl_weight_at(self.cfg, epoch, (step + 1) / len(self.sampler))
        with pyro.validation_enabled(epoch == 1 and step == 0):
            loss = self.step(x, y, kl_weight)
        self.loss_total += loss
        return loss

    def validate(self) -> Evaluation:
        """The validation split's ELBO (the whole split's, over every process's shard)."""
        return evaluate(
            self.vae,
            self.val_images,
            self.val_labels,
            chunk_size=self.cfg.eval.chunk_size,
            num_data=self.num_data,
            across=self.processes,
        )

    def on_train_start(self) -> None:
        if self.state.untrained_val_elbo is None and not self.state.history:
            device = self.sampler.source.device
            # On forked random streams, so that training draws what it drew without it.
            with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
                self.state.untrained_val_elbo = self.validate().elbo
            log.info("untrained model: val ELBO %.2f", self.state.untrained_val_elbo)

    def on_train_epoch_end(self) -> None:
        cfg, state, epoch = self.cfg, self.state, self.current_epoch + 1
        seconds = time.perf_counter() - self.epoch_start
        loss_total = self.processes.mean(self.loss_total).item()
        val = self.validate()
        # An epoch trained with a KL weight below 1 (kl_weight, KL warm-up) may trade the ELBO for reconstruction.
        untrained = state.untrained_val_elbo if kl_weight_at(cfg, epoch, 0.0) >= 1.0 else None
        reason = validation_divergence(val.elbo, untrained, epoch)
        if reason is not None:
            raise DivergenceError(divergence_message(reason, cfg, self.run_dir))
        row = {
            "epoch": epoch,
            # Every objective's loss estimates minus the bound of all num_data images; for a
            # Bayesian decoder that includes KL(q(W) || p(W)) / num_data, as val_elbo does.
            "train_elbo": -loss_total / self.num_data / len(self.sampler),
            "val_elbo": val.elbo,
            **(
                {"val_elbo_given_weights": val.elbo_given_weights, "weight_kl": val.weight_kl}
                if self.vae.bayesian
                else {}
            ),
            "epoch_seconds": seconds,
            "images_per_second": len(self.sampler) * cfg.batch_size / seconds,
            "lr": self.epoch_lr,
            "kl_weight": kl_weight_at(cfg, epoch, 1.0),
        }
        best = val.elbo > state.best_val_elbo
        state.history.append(row)
        step_schedule(self.lr_schedulers(), val.elbo)
        # For RunCheckpoint and early stopping; in float64, as the history compares it.
        self.log("val_elbo", torch.tensor(val.elbo, dtype=torch.float64), logger=False)
        self.log_dict(epoch_scalars(row, val_kl=val.kl, val_reconstruction=val.reconstruction), logger=True)
        log.info(
            "epoch %d/%d  train ELBO %.2f  val ELBO %.2f%s  (%.1f s, %.0f images/s, lr %.2g)",
            epoch,
            cfg.epochs,
            row["train_elbo"],
            row["val_elbo"],
            "  best" if best else "",
            seconds,
            row["images_per_second"],
            self.epoch_lr,
        )

    def on_save_checkpoint(self, checkpoint: Dict[str, Any]) -> None:
        record = checkpoints.model_record(self.vae, self.cfg, self.data.image_shape, self.data.num_classes)
        state = self.state
        scheduler = self.lr_schedulers()
        checkpoint[RECORDS] = {
            BEST: {**record, "epoch": state.epochs_completed, "val_elbo": state.best_val_elbo},
            LAST: {
                **record,
                "optimizer": self.step.state_dict(),
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "history": state.history,
                "untrained_val_elbo": state.untrained_val_elbo,
                **checkpoint.pop(RANDOM_STREAMS),
            },
        }

    def _restore_optimizer(self, record: Dict[str, Any]) -> None:
        try:
            self.step.load_state_dict(record["optimizer"])
        except (RuntimeError, ValueError, KeyError) as exc:
            raise resume_refusal(self.run_dir) from exc
        scheduler = self.lr_schedulers()
        if scheduler is not None and record.get("scheduler"):
            scheduler.load_state_dict(record["scheduler"])


def fit(
    vae: VAE,
    data: DataSplits,
    transform: PixelTransform,
    cfg: DictConfig,
    run_dir: Path,
    processes: Processes = ONE_PROCESS,
    threads: Optional[ThreadsFollowLoad] = None,
    loggers: Sequence[Logger] = (),
    callbacks: Sequence[pl.Callback] = (),
) -> TrainingState:
    """Train ``vae`` for up to ``cfg.epochs`` epochs in Lightning's loop, writing ``checkpoint.pt`` (best
    validation ELBO) and ``last.pt`` (every epoch). An epoch that diverges is not saved: training stops with
    ``state.divergence`` set. SIGINT and SIGTERM raise :class:`RunInterrupted`, never in the middle of a save.
    Data-parallel (``processes``): each process trains on its part of every global batch and validates on
    its shard of the validation images; every figure is the whole split's, and rank 0 alone writes.
    ``loggers`` see each epoch's figures; ``callbacks`` join the run's own (``callbacks.*`` of the config)."""
    device = data.train.images.device
    module = VAETraining(vae, data, transform, cfg, run_dir, processes)
    # run_directory.check_output_dir has refused a run_dir that this run may not write into.
    record = resume(module, vae, run_dir, device) if cfg.resume else None
    with interruptible(run_dir) as saving:
        checkpoint = RunCheckpoint(run_dir, saving, monitor="val_elbo")
        checkpoint.start_from(module.state.history)
        run_callbacks = [checkpoint, DivergenceCheck(cfg, run_dir), RandomStreams(processes, device)]
        if threads is not None:
            run_callbacks.append(FollowIdleCores(threads))
        if cfg.early_stopping.patience is not None:
            stopping = StopWithoutImprovement(cfg.early_stopping.patience, cfg.early_stopping.threshold)
            stopping.start_from(module.state.history)
            if stopping.exhausted:
                log.info("early stopping: no better validation ELBO in the last %d epochs", stopping.patience)
                return module.state
            run_callbacks.append(stopping)
        trainer = make_trainer(cfg, device, [*run_callbacks, *callbacks], list(loggers))
        fit_from(trainer, module, record, processes, device, cfg.seed)
    return module.state
