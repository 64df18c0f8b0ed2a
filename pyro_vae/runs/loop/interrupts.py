"""Ctrl-C (SIGINT) and SIGTERM during training: one line saying where the run stopped and the
command that resumes it, instead of a ``KeyboardInterrupt`` traceback or a silent death.

Both signals take one path: the handler raises :class:`RunInterrupted`, which ``run.py`` prints
as it prints every error a user can act on. Nothing is written on the way out: ``last.pt`` keeps
the last finished epoch, exactly as after ``kill -9``, so ``resume=true`` continues bit-identically.
A signal that arrives while an epoch is being saved waits until both checkpoints are written, so
that ``checkpoint.pt`` and ``last.pt`` always hold epochs of one run.
"""

import signal
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, ContextManager, Iterator, Optional

import yaml

from ...errors import RunInterrupted
from ..configuration import commands
from ..directory import checkpoints

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class _Handler:
    """Raises :class:`RunInterrupted` on a signal, or after the current :meth:`saving` block."""

    def __init__(self, describe: Callable[[signal.Signals], str]) -> None:
        self.describe = describe
        self.saving = False
        self.pending: Optional[signal.Signals] = None

    def __call__(self, signum: int, frame) -> None:
        if self.saving:
            self.pending = signal.Signals(signum)
            return
        self.interrupt(signal.Signals(signum))

    def interrupt(self, signum: signal.Signals) -> None:
        raise RunInterrupted(self.describe(signum), exit_status=128 + signum)


@contextmanager
def interruptible(run_dir: Path) -> Iterator[Callable[[], ContextManager[None]]]:
    """Turn SIGINT and SIGTERM into :class:`RunInterrupted` for the block (in the main thread;
    elsewhere signals are the main thread's anyway). Yields ``saving``, a context manager for the
    writes that a signal must not split."""
    handler = _Handler(lambda signum: interrupted_message(signum, run_dir))

    @contextmanager
    def saving() -> Iterator[None]:
        handler.saving = True
        try:
            yield
        finally:
            handler.saving = False
        if handler.pending is not None:
            handler.interrupt(handler.pending)

    if threading.current_thread() is not threading.main_thread():
        yield saving
        return
    previous = {signum: signal.signal(signum, handler) for signum in SIGNALS}
    try:
        yield saving
    finally:
        for signum, old in previous.items():
            signal.signal(signum, old)


def interrupted_message(signum: signal.Signals, run_dir: Path) -> str:
    """Where the run stopped (the epoch ``last.pt`` holds) and the command that goes on from there."""
    return f"{signum.name}: {where_it_stopped(run_dir)}"


def where_it_stopped(run_dir: Path) -> str:
    """The epoch that ``last.pt`` holds and the command that goes on from there."""
    last = run_dir / checkpoints.LAST
    if not last.is_file():
        return f"stopped in epoch 1, before any epoch of {run_dir} was saved; rerun: {command(run_dir)}"
    epochs = len(checkpoints.read(last)["history"])
    return f"stopped after epoch {epochs}, saved in {last}; resume with: {command(run_dir, resume=True)}"


def command(run_dir: Path, resume: bool = False) -> str:
    """``.venv/bin/python run.py`` (this process's interpreter, as :func:`commands.run_py` shows it)
    with the run's overrides (``.hydra/overrides.yaml``, which run.py writes), into ``run_dir``, with
    ``resume=true`` if ``resume``: a single run, whether the run was one or a job of a sweep."""
    record = run_dir / ".hydra" / "overrides.yaml"
    overrides = (yaml.safe_load(record.read_text()) or []) if record.is_file() else []
    kept = [o for o in overrides if o.split("=", 1)[0].lstrip("+~") not in ("resume", "hydra.run.dir")]
    return commands.run_py(*kept, f"hydra.run.dir={run_dir}", *(["resume=true"] if resume else []))
