"""Lightning Fabric's side of a data-parallel run (``pyro_vae.runs.processes``): the Fabric of
``trainer.*``, and ``launch``, which runs one function in each of its processes. Imported only by
runs that use it, since importing Lightning takes a while."""

import logging
import logging.config
import pickle
import signal
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
import torch.multiprocessing as mp
from lightning_fabric import Fabric
from lightning_fabric.strategies import DDPStrategy
from omegaconf import DictConfig

from ..errors import PyroVAEError
from .processes import Processes, strategy

# Lightning sets its own loggers to INFO when imported: its banners on every process would bury the
# run's own lines (each run logs how many processes it trains on). Here, since a spawned process
# imports this module before Fabric sets it up. torch's note that it stops the other processes
# after one died is said in the run's own error line.
logging.getLogger("lightning_fabric").setLevel(logging.WARNING)
logging.getLogger("torch.multiprocessing.spawn").setLevel(logging.ERROR)


def make_fabric(trainer: DictConfig, device: torch.device):
    """The Fabric of ``trainer`` on ``device``'s kind (cpu: gloo, cuda: nccl, one GPU per process)."""
    chosen = strategy(trainer)
    if chosen.startswith("ddp"):
        start_method = "spawn" if chosen == "ddp_spawn" else "popen"
        chosen = DDPStrategy(start_method=start_method, process_group_backend=_backend(device))
    return Fabric(
        accelerator=device.type,
        devices=trainer.devices,
        num_nodes=trainer.num_nodes,
        strategy=chosen,
        precision=str(trainer.precision),
    )


def _backend(device: torch.device) -> str:
    return "nccl" if device.type == "cuda" else "gloo"


@dataclass
class _Outcome:
    """What rank 0 hands back to the launching process: the task's value, pickled (tensors by value:
    torch would share their memory through the spawned process, which ends before it is read), or the
    error to report."""

    pickled_value: bytes = pickle.dumps(None)
    error: Optional[PyroVAEError] = None


def launch(trainer: DictConfig, device: torch.device, work: Callable, *args: Any, job_logging: Any = None) -> Any:
    """``work(processes, *args)`` in every process of ``trainer``; rank 0's value. Errors a user can act on
    (a divergence, a refusal, Ctrl-C) come back as themselves; a process that dies is reported in one
    line (:class:`ProcessFailed`), the epochs already saved intact."""
    fabric = make_fabric(trainer, device)
    # Ctrl-C reaches every process of the terminal's group: the spawned ones stop at their next safe
    # point and report it, so the one that waits for them lets it pass instead of dying mid-join.
    spawns = strategy(trainer) == "ddp_spawn"
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if spawns else None
    try:
        outcome = fabric.launch(_worker, work, args, job_logging)
    except (mp.ProcessRaisedException, mp.ProcessExitedException) as exc:
        raise ProcessFailed(_first_line(exc)) from None
    finally:
        if spawns:
            signal.signal(signal.SIGINT, previous)
    if outcome.error is not None:
        raise outcome.error
    return pickle.loads(outcome.pickled_value)


def _worker(fabric, work: Callable, args: tuple, job_logging: Any) -> _Outcome:
    """One process's run: its own logging; errors a user can act on are passed to the launching process."""
    processes = Processes(rank=fabric.global_rank, world_size=fabric.world_size, fabric=fabric)
    if job_logging is not None and processes.writes and not logging.getLogger().handlers:
        logging.config.dictConfig(job_logging)  # spawned: run.log and the console, as in the launching process
    try:
        return _Outcome(pickled_value=pickle.dumps(work(processes, *args)))
    except PyroVAEError as exc:
        return _Outcome(error=exc)


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


class ProcessFailed(PyroVAEError):
    """A process of a data-parallel run died or raised; the others were stopped."""
