"""``trainer.strategy=ddp_spawn``: this command starts ``trainer.devices`` processes, each of which runs
the whole run (its data, its shard of every evaluation, rank 0 its files) and whose Trainers join as
processes started from outside (``LOCAL_RANK`` set), so Lightning wraps and syncs without a launcher of
its own. Imported only by runs that use it."""

import logging
import logging.config
import os
import pickle
import signal
import socket
from dataclasses import dataclass
from typing import Any, Callable, Optional

import torch
import torch.multiprocessing as mp
from omegaconf import DictConfig

from ...errors import PyroVAEError
from .processes import Processes, on_local_device

# torch's note that it stops the other processes after one died is said in the run's own error line.
logging.getLogger("torch.multiprocessing.spawn").setLevel(logging.ERROR)


@dataclass
class _Outcome:
    """What rank 0 hands back: the task's value, pickled (tensors by value: torch would share their
    memory through the spawned process, which ends before it is read), or the error to report."""

    pickled_value: bytes = pickle.dumps(None)
    error: Optional[PyroVAEError] = None


def launch(trainer: DictConfig, device: torch.device, work: Callable, *args: Any, job_logging: Any = None) -> Any:
    """``work(processes, *args)`` in each of ``trainer.devices`` processes; rank 0's value. Errors a user can
    act on (a divergence, a refusal, Ctrl-C) come back as themselves; a process that dies is reported in one
    line (:class:`ProcessFailed`), the epochs already saved intact."""
    context = mp.get_context("spawn")
    outcomes = context.SimpleQueue()
    port = _free_port()
    # Ctrl-C reaches every process of the terminal's group: the spawned ones stop at their next safe
    # point and report it, so the one that waits for them notes it instead of dying mid-join. A process
    # whose partner stopped first fails in a collective: after Ctrl-C that too is the interrupt.
    interrupted: list = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: interrupted.append(signal.Signals(signum)))
    try:
        mp.start_processes(
            _worker,
            args=(trainer.devices, port, device, outcomes, work, args, job_logging),
            nprocs=trainer.devices,
            start_method="spawn",
        )
    except (mp.ProcessRaisedException, mp.ProcessExitedException) as exc:
        if interrupted:
            raise Interrupted(interrupted[0]) from None
        raise ProcessFailed(_first_line(exc)) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    outcome = outcomes.get()
    if outcome.error is not None:
        raise outcome.error
    return pickle.loads(outcome.pickled_value)


def _worker(rank: int, world_size: int, port: int, device, outcomes, work: Callable, args: tuple, job_logging) -> None:
    """One process's run: the environment Lightning reads its rank from, its own logging; rank 0 reports."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    os.environ.update(
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank), NODE_RANK="0"
    )
    processes = Processes(rank, world_size, on_local_device(device, rank))
    if job_logging is not None and processes.writes and not logging.getLogger().handlers:
        logging.config.dictConfig(job_logging)  # run.log and the console, as in the launching process
    try:
        outcome = _Outcome(pickled_value=pickle.dumps(work(processes, *args)))
    except PyroVAEError as exc:
        outcome = _Outcome(error=exc)
    finally:
        # Its threads joined before the interpreter ends: a process left with gloo's running was seen to
        # abort at exit (SIGABRT, "terminate called without an active exception") after a finished run.
        if torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
    if processes.writes:  # the others' errors are rank 0's too (a divergence), or stop it (a process that dies)
        outcomes.put(outcome)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _first_line(exc: BaseException) -> str:
    lines = [line for line in str(exc).strip().splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__


class Interrupted(Exception):
    """Ctrl-C stopped the processes, one of them in a collective its partner had left."""

    def __init__(self, signum: signal.Signals) -> None:
        super().__init__(signum.name)
        self.signum = signum


class ProcessFailed(PyroVAEError):
    """A process of a data-parallel run died or raised; the others were stopped."""
