"""Learning-rate schedules by the name used in ``conf/schedule/``, stepped once per epoch."""
from typing import Optional

import torch
from omegaconf import DictConfig
from torch.optim.lr_scheduler import LambdaLR, LRScheduler, ReduceLROnPlateau

from .errors import ConfigError

NAMES = ("constant", "plateau", "burda")


def burda_factor(epoch: int, stages: int = 8) -> float:
    """Burda et al. (2016): stage i (i = 0..stages-1) lasts 3^i epochs at lr * 10^(-i/7)."""
    stage, end = 0, 1
    while epoch >= end and stage < stages - 1:
        stage += 1
        end += 3**stage
    return 10 ** (-stage / 7)


def make_schedule(schedule: DictConfig, optimizer: torch.optim.Optimizer) -> Optional[LRScheduler]:
    if schedule.name == "constant":
        return None
    if schedule.name == "plateau":
        return ReduceLROnPlateau(optimizer, mode="max", factor=schedule.factor, patience=schedule.patience, min_lr=schedule.min_lr)
    if schedule.name == "burda":
        return LambdaLR(optimizer, lambda epoch: burda_factor(epoch, schedule.stages))
    raise ConfigError(f"schedule={schedule.name}: unknown schedule; choose one of {', '.join(NAMES)}")


def step_schedule(scheduler: Optional[LRScheduler], val_elbo: float) -> None:
    """Advance ``scheduler`` by one epoch (plateau schedules watch the validation ELBO)."""
    if isinstance(scheduler, ReduceLROnPlateau):
        scheduler.step(val_elbo)
    elif scheduler is not None:
        scheduler.step()
