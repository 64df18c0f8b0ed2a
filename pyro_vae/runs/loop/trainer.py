"""Lightning's ``Trainer`` for a run: ``trainer.*`` (devices, nodes, strategy, precision), the run's
callbacks, the durable checkpoint writer, a bar on a terminal; nothing of Lightning's own defaults that
would write files or draw random numbers (no sanity validation, no logger folder of its own)."""

import warnings
from typing import Any, Dict, List, Optional

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.plugins.environments import SLURMEnvironment
from lightning.pytorch.strategies import DDPStrategy
from omegaconf import DictConfig

from ...errors import DivergenceError
from ...lightning_defaults import epoch_bars
from ..configuration.trainer_settings import world_size
from .checkpointing import DurableCheckpointIO
from .processes import Processes
from .random_streams import restore_streams

# The run directory holds the run's other files, and resumed runs write into it again.
warnings.filterwarnings("ignore", message="Checkpoint directory .* exists and is not empty")
# The figures a module logs at an epoch's end are already the whole split's, the same in every process.
warnings.filterwarnings("ignore", message=".*when logging on epoch level in distributed setting")


def make_trainer(
    cfg: DictConfig,
    device: torch.device,
    callbacks: List[pl.Callback],
    loggers: Optional[List] = None,
    max_epochs: Optional[int] = None,
) -> pl.Trainer:
    """The Trainer of ``cfg.trainer`` on ``device``'s kind, for ``max_epochs`` (``cfg.epochs``)."""
    bar = epoch_bars("epoch")
    return pl.Trainer(
        accelerator=device.type,
        devices=[device.index or 0] if device.type == "cuda" and world_size(cfg.trainer) == 1 else cfg.trainer.devices,
        num_nodes=cfg.trainer.num_nodes,
        strategy=_strategy(cfg.trainer, device),
        precision=str(cfg.trainer.precision),
        max_epochs=cfg.epochs if max_epochs is None else max_epochs,
        callbacks=[*bar, *callbacks],
        logger=loggers or False,
        plugins=[DurableCheckpointIO(), *_cluster(device)],
        enable_progress_bar=bool(bar),
        enable_checkpointing=any(isinstance(callback, ModelCheckpoint) for callback in callbacks),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        log_every_n_steps=1,
        default_root_dir=None,
    )


def _cluster(device: torch.device) -> list:
    """Under SLURM, its environment without Lightning's auto-requeue: a requeued job resumes with
    resume=true from last.pt, not from an hpc checkpoint of Lightning's own format."""
    return [SLURMEnvironment(auto_requeue=False)] if SLURMEnvironment.detect() else []


def _strategy(trainer: DictConfig, device: torch.device):
    """DDP for several processes, which srun, torchrun or :mod:`..spawn` started: Lightning joins them."""
    if world_size(trainer) > 1:
        return DDPStrategy(process_group_backend="nccl" if device.type == "cuda" else "gloo")
    return "auto"


def fit_from(
    trainer: pl.Trainer,
    module: pl.LightningModule,
    record: Optional[Dict[str, Any]],
    processes: Processes,
    device: torch.device,
    seed: int,
) -> None:
    """``Trainer.fit`` of ``module`` after the epochs of its ``state``: a resumed run's random streams (``record``,
    its last.pt) put back first; a divergence ends it with ``module.state.divergence`` set; the module back on
    ``device`` after Lightning's teardown, which leaves it on the CPU."""
    if device.type == "cpu":
        # Adam's moments of weights whose gradient has become exactly zero (those of dead ReLU
        # units) decay geometrically into subnormal floats, on which x86 CPUs are many times
        # slower: epochs of the default network at batch 20 went 2.1 s, 2.8 s, 4.2 s without
        # this and stay at 2.1 s with it, with the same figures (subnormals are below 1.2e-38).
        torch.set_flush_denormal(True)
    start_after(trainer, module.state.epochs_completed)
    if record is not None:
        restore_streams(record, processes, device, seed)
    try:
        trainer.fit(module)
    except DivergenceError as exc:
        module.state.divergence = str(exc)
    module.to(device)


def start_after(trainer: pl.Trainer, epochs: int) -> None:
    """Lightning's epoch counter at ``epochs`` completed: a resumed run goes on with the next one."""
    for progress in (trainer.fit_loop.epoch_progress.current, trainer.fit_loop.epoch_progress.total):
        progress.ready = progress.started = progress.processed = progress.completed = epochs
