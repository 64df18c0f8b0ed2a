"""Learning-rate schedules by the name of their ``schedule=`` option, stepped once per epoch."""

import math
from typing import Optional

import torch
from omegaconf import DictConfig
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau

from ..configuration.schema import option


def burda_factor(epoch: int, stages: int = 8) -> float:
    """Burda et al. (2016): stage i (i = 0..stages-1) lasts 3^i epochs at lr * 10^(-i/7)."""
    stage, end = 0, 1
    while epoch >= end and stage < stages - 1:
        stage += 1
        end += 3**stage
    return 10 ** (-stage / 7)


def cosine_factor(epoch: int, epochs: int, final_factor: float) -> float:
    """Half a cosine from 1 at epoch 0 to ``final_factor`` at ``epochs``: a fixed training budget
    spends its last epochs at a small rate, which a constant rate never reaches."""
    progress = min(epoch / epochs, 1.0)
    return final_factor + (1 - final_factor) * 0.5 * (1 + math.cos(math.pi * progress))


def plateau_schedule(schedule: DictConfig, optimizer: torch.optim.Optimizer) -> ReduceLROnPlateau:
    """``schedule=plateau``: an epoch improves when val_elbo > best + threshold (in nats: a relative
    threshold lets a negative ELBO decline and still "improve"); torch reduces once more than
    ``patience`` epochs have not, and we after exactly ``patience`` of them, as early stopping stops."""
    return ReduceLROnPlateau(
        optimizer,
        mode="max",
        factor=schedule.factor,
        patience=schedule.patience - 1,
        threshold=schedule.threshold,
        threshold_mode="abs",
        min_lr=schedule.min_lr,
    )


def burda_schedule(schedule: DictConfig, optimizer: torch.optim.Optimizer) -> LambdaLR:
    """``schedule=burda``: :func:`burda_factor` of the epoch."""
    return LambdaLR(optimizer, lambda epoch: burda_factor(epoch, schedule.stages))


def cosine_schedule(schedule: DictConfig, optimizer: torch.optim.Optimizer) -> LambdaLR:
    """``schedule=cosine``: :func:`cosine_factor` of the epoch."""
    return LambdaLR(optimizer, lambda epoch: cosine_factor(epoch, schedule.epochs, schedule.final_factor))


def make_schedule(schedule: DictConfig, optimizer: torch.optim.Optimizer) -> Optional[LRScheduler]:
    """The scheduler of ``schedule=NAME`` (``schema.OPTIONS``), or None for a constant rate."""
    declared = option("schedule", schedule.name)
    return declared.component()(schedule, optimizer) if declared.builds else None


def step_schedule(scheduler: Optional[LRScheduler], val_elbo: float) -> None:
    """Advance ``scheduler`` by one epoch (plateau schedules watch the validation ELBO)."""
    if isinstance(scheduler, ReduceLROnPlateau):
        scheduler.step(val_elbo)
    elif scheduler is not None:
        scheduler.step()
