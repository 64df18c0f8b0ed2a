"""One writer a run directory: an exclusive advisory lock on the directory itself.

The lock is the operating system's ``flock`` on the directory, so it adds no file to the
directory (a refused command leaves it byte-identical) and the kernel releases it with the
process however that ends (SIGKILL, a crash): a dead holder never blocks ``resume=true``. A lock
file from a library such as ``filelock`` would be a new file in every run directory, created by
commands that are then refused. Once its command is accepted, the holder names itself in
``writer.json`` (pid, host, command), which a refused contender quotes; the holder removes it when
it ends, and a stale one left by a killed process is overwritten by the next holder.

What it promises: on a local file system, and on NFS or Lustre where ``flock`` is cluster-wide
(NFS since Linux 2.6.12 emulates it with byte-range locks; Lustre mounted with ``-o flock``),
two processes never hold one run directory. Where the file system cannot lock at all (Lustre
with ``localflock`` locks per node only; one without lock support refuses), the run goes on
after a warning that nothing stops a second writer.
"""

import errno
import fcntl
import json
import logging
import os
import socket
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ...atomic import write_json
from .run_directory import RunDirectoryInUse

log = logging.getLogger(__name__)

WRITER = "writer.json"
_HELD_ELSEWHERE = (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)


class RunDirectoryLock:
    """The held lock of one run directory; :meth:`announce` names this process in ``writer.json``."""

    def __init__(self, run_dir: Path):
        self.run_dir = run_dir
        self.announced = False

    def announce(self) -> None:
        """Write ``writer.json``: called once the command is accepted, when it starts writing."""
        write_json(
            self.run_dir / WRITER,
            {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv)},
        )
        self.announced = True


@contextmanager
def hold_run_directory(run_dir: Path) -> Iterator[RunDirectoryLock]:
    """Hold ``run_dir`` for the block, or raise :class:`RunDirectoryInUse` naming its holder."""
    fd = os.open(run_dir, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        locked = _lock(fd, run_dir)
        lock = RunDirectoryLock(run_dir)
        try:
            yield lock
        finally:
            if lock.announced:
                (run_dir / WRITER).unlink(missing_ok=True)
            if locked:
                fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


def _lock(fd: int, run_dir: Path) -> bool:
    """Take the lock without waiting: True if taken, False where the file system has no locks."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError as error:
        if error.errno in _HELD_ELSEWHERE:
            raise RunDirectoryInUse(
                f"hydra.run.dir={run_dir}: in use by {holder(run_dir)}; wait for it to end (resume=true then "
                "continues a training run) or choose another hydra.run.dir"
            ) from None
        log.warning(
            "hydra.run.dir=%s: this file system cannot lock it (%s); nothing stops a second process from writing "
            "this run",
            run_dir,
            error.strerror,
        )
        return False


def holder(run_dir: Path) -> str:
    """Who holds ``run_dir``, as its ``writer.json`` says: ``pid P on host H``."""
    try:
        writer = json.loads((run_dir / WRITER).read_text())
        return f"pid {writer['pid']} on host {writer['host']} ({writer['command']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another process that has not yet named itself (it is starting)"
