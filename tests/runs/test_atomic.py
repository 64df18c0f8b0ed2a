"""Durable atomic writes: the new content reaches the disk before the rename, the rename before
return, and a file system that fails (a full disk) costs one line and no data."""

import errno
import os

import pytest
import torch

from pyro_vae.errors import OutputError, PyroVAEError
from pyro_vae.runs import atomic
from pyro_vae.runs.training_run import run_experiment

from ..helpers import compose_tiny

pytestmark = pytest.mark.usefixtures("single_thread")


def test_a_write_is_fsynced_then_renamed_then_its_folder_fsynced(tmp_path, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace

    def fsync(fd):
        events.append(("fsync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fsync(fd)

    def replace(source, target):
        events.append(("replace", str(target)))
        real_replace(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    target = tmp_path / "metrics.json"
    atomic.write_json(target, {"test_elbo": -96.8})
    kinds = [kind for kind, _ in events]
    assert kinds == ["fsync", "replace", "fsync"]
    assert events[0][1].startswith(str(tmp_path / ".metrics.json."))  # the temporary file, complete
    assert events[2][1] == str(tmp_path)  # the folder, so that the new name survives a power cut
    assert target.read_text().strip() == '{\n  "test_elbo": -96.8\n}'


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    target = tmp_path / "history.csv"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(target) as tmp:
            tmp.write_text("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old" and list(tmp_path.iterdir()) == [target]


def test_a_full_disk_is_one_line_and_loses_nothing(tmp_path, monkeypatch):
    target = tmp_path / "last.pt"
    target.write_bytes(b"the last finished epoch")

    def no_space(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", no_space)
    with pytest.raises(OutputError) as refused:
        atomic.save_torch({"epoch": 2}, target)
    assert "last.pt: could not be written (No space left on device)" in str(refused.value)
    assert "\n" not in str(refused.value)
    assert target.read_bytes() == b"the last finished epoch" and list(tmp_path.iterdir()) == [target]


def test_a_full_disk_during_training_stops_the_run_in_one_line(tmp_path, monkeypatch):
    """The whole run, in-process: run.py prints any PyroVAEError as its one line."""
    real_save = torch.save

    def save_until_full(obj, path, *args, **kwargs):
        if len(obj.get("history", [])) >= 2:  # last.pt after the second epoch: the disk is full
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(torch, "save", save_until_full)
    with pytest.raises(PyroVAEError, match=r"last\.pt: could not be written \(No space left on device\)"):
        run_experiment(compose_tiny(), tmp_path)
    assert torch.load(tmp_path / "last.pt", weights_only=True)["history"][-1]["epoch"] == 1  # epoch 1 intact
