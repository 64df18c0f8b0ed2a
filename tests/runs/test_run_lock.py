"""One writer a run directory: real concurrent ``python run.py`` processes, a holder killed with
SIGKILL, and the lock itself in one process."""

import errno
import fcntl
import json
import signal
import socket
import subprocess
import sys
import time

import pytest

from pyro_vae.runs.directory import checkpoints, run_lock
from pyro_vae.runs.directory.run_directory import RunDirectoryInUse
from pyro_vae.runs.directory.run_lock import WRITER, hold_run_directory

from ..helpers import ROOT, read_history, run_py, run_py_refused, snapshot, tiny

LONG = tiny("epochs=100000", "dataset.train_size=64", "batch_size=64", "threads=1")


def start_holder(run_dir, *overrides):
    """A training run that keeps ``run_dir`` for as long as the test lets it, once it has named itself."""
    holder = subprocess.Popen(
        [sys.executable, str(ROOT / "run.py"), *LONG, *overrides, f"hydra.run.dir={run_dir}"],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 120
    while not (run_dir / checkpoints.LAST).is_file():  # its first epoch is saved: it is past its checks
        assert holder.poll() is None and time.monotonic() < deadline, "the holder ended or never started"
        time.sleep(0.1)
    return holder


@pytest.mark.slow
def test_a_second_run_a_resume_and_a_task_are_refused_while_a_live_process_holds_the_directory(tmp_path):
    run_dir = tmp_path / "run"
    holder = start_holder(run_dir)
    try:
        named = f"in use by pid {holder.pid} on host {socket.gethostname()}"
        for overrides in (["latent_dim=10", "net.widths=[32]"], ["resume=true"], ["task=sample"]):
            before = snapshot(run_dir / ".hydra")
            line = run_py_refused(*tiny("threads=1", *overrides), f"hydra.run.dir={run_dir}")
            assert f"hydra.run.dir={run_dir}: {named}" in line, line
            assert snapshot(run_dir / ".hydra") == before
        assert json.loads((run_dir / WRITER).read_text())["pid"] == holder.pid
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.wait(timeout=60)
    assert "latent_dim: 4" in (run_dir / ".hydra" / "config.yaml").read_text()
    assert "resuming" not in (run_dir / "run.log").read_text()  # no second writer logged into it


@pytest.mark.slow
def test_a_holder_killed_with_sigkill_does_not_block_resume(tmp_path):
    run_dir = tmp_path / "run"
    holder = start_holder(run_dir)
    holder.send_signal(signal.SIGKILL)
    holder.wait(timeout=60)
    assert (run_dir / WRITER).exists()  # its name stays behind; the kernel released its lock
    epochs = len(checkpoints.read(run_dir / checkpoints.LAST)["history"])
    run_py(*LONG, f"epochs={epochs + 1}", "resume=true", f"hydra.run.dir={run_dir}")
    assert len(read_history(run_dir)) == epochs + 1
    assert not (run_dir / WRITER).exists()  # a holder that ends removes its name


def test_the_lock_excludes_a_second_holder_and_names_the_first_once_it_has_announced_itself(tmp_path):
    with hold_run_directory(tmp_path) as lock:
        with pytest.raises(RunDirectoryInUse, match="in use by another process that has not yet named itself"):
            with hold_run_directory(tmp_path):
                pass
        lock.announce()
        with pytest.raises(RunDirectoryInUse, match=f"in use by pid \\d+ on host {socket.gethostname()} "):
            with hold_run_directory(tmp_path):
                pass
    assert list(tmp_path.iterdir()) == []  # released, and nothing left in the directory
    with hold_run_directory(tmp_path):
        pass


def test_a_file_system_without_locks_lets_the_run_go_on_with_a_warning(tmp_path, monkeypatch, caplog):
    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(run_lock.fcntl, "flock", no_locks)
    with hold_run_directory(tmp_path):
        pass
    assert "cannot lock it (No locks available); nothing stops a second process" in caplog.text


def test_the_lock_is_on_the_directory_itself_so_a_refused_command_adds_no_file(tmp_path):
    with hold_run_directory(tmp_path):
        fd = run_lock.os.open(tmp_path, run_lock.os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            run_lock.os.close(fd)
    assert list(tmp_path.iterdir()) == []
