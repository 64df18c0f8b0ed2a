"""What ``trainer.*`` asks of a run's processes, and which of them this one is, read from the settings
and the environment alone: ``run.py`` and ``settings.validate`` ask it before torch is loaded, and
:mod:`.processes` (the group itself, which needs torch) re-exports it."""

import importlib
import logging
import os

from omegaconf import DictConfig

from ...errors import ConfigError
from .commands import pip_install, pip_install_extra

SINGLE_PRECISION = "32-true"


def world_size(trainer: DictConfig) -> int:
    return trainer.devices * trainer.num_nodes


def beyond_one_float32_process(trainer: DictConfig) -> bool:
    return world_size(trainer) > 1 or trainer.precision != SINGLE_PRECISION


def strategy(trainer: DictConfig) -> str:
    """``trainer.strategy`` with auto resolved: ddp_spawn starts the processes of one node itself;
    ddp joins processes that srun or torchrun started (several nodes)."""
    if trainer.strategy != "auto":
        return trainer.strategy
    if world_size(trainer) == 1:
        return "auto"
    return "ddp_spawn" if trainer.num_nodes == 1 else "ddp"


def started_outside() -> bool:
    """Whether srun or torchrun started this process as one of several (trainer.strategy=ddp)."""
    if "WORLD_SIZE" in os.environ and "RANK" in os.environ:  # torchrun
        return True
    return int(os.environ.get("SLURM_NTASKS", "1")) > 1 and "SLURM_PROCID" in os.environ


def follows_rank_zero(trainer: DictConfig) -> bool:
    """Whether this process is one that srun or torchrun started beside rank 0 (trainer.strategy=ddp):
    it trains its share and writes nothing, not even run.log; rank 0 holds and writes the run directory."""
    if strategy(trainer) != "ddp" or not started_outside():
        return False
    return int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0"))) > 0


def leave_the_log_to_rank_zero() -> None:
    """Detach the file handlers (run.log) that Hydra gave this process, and keep its console to warnings."""
    root = logging.getLogger()
    for handler in [handler for handler in root.handlers if isinstance(handler, logging.FileHandler)]:
        root.removeHandler(handler)
    logging.getLogger("pyro_vae").setLevel(logging.WARNING)


# The package each logger= needs beyond the project's own requirements, and how it is installed.
LOGGER_PACKAGES = {"tensorboard": ("tensorboard", "extra"), "mlflow": ("mlflow", "package")}


def require_logger_package(logger: str) -> None:
    """Refuse ``logger=NAME`` in one line, before any work, when the package it writes with is missing."""
    if logger not in LOGGER_PACKAGES:
        return
    package, kind = LOGGER_PACKAGES[logger]
    try:
        importlib.import_module(package)
    except ImportError as exc:
        install = pip_install_extra(package) if kind == "extra" else pip_install(package)
        raise ConfigError(
            f"logger={logger}: the {package} package is not installed; {install} or use logger=none"
        ) from exc
