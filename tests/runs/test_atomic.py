"""Durable atomic writes: the new content reaches the disk before the rename, the rename before
return, and a file system that fails (a full disk) costs one line and no data."""

import errno
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from pyro_vae import atomic
from pyro_vae.errors import OutputError, PyroVAEError
from pyro_vae.runs.tasks.training_run import run_experiment

from ..helpers import ROOT, compose_tiny, tiny

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


def test_torch_saves_failed_write_is_one_line_too(tmp_path, monkeypatch):
    """torch.save reports a full disk as a RuntimeError from its zip writer, not as an OSError."""
    target = tmp_path / "last.pt"
    target.write_bytes(b"the last finished epoch")

    def zip_writer_fails(obj, path, *args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(torch, "save", zip_writer_fails)
    with pytest.raises(OutputError, match=r"last\.pt: could not be written \(torch\.save failed, with [\d.]+ MiB free"):
        atomic.save_torch({"epoch": 2}, target)
    assert target.read_bytes() == b"the last finished epoch" and list(tmp_path.iterdir()) == [target]


FILL_THEN_RESUME = """
set -e
mount -t tmpfs -o size=8m tmpfs {mount}
{python} {run_py} {args} epochs=1 hydra.run.dir={mount}/run >/dev/null 2>&1
sha256sum {mount}/run/last.pt {mount}/run/checkpoint.pt > {out}/before
dd if=/dev/zero of={mount}/filler bs=4k >/dev/null 2>&1 || true  # fill the file system to the last block,
truncate -s -64K {mount}/filler  # then free room for the run's record and log, but not for last.pt
set +e
{python} {run_py} {args} epochs=2 resume=true hydra.run.dir={mount}/run > {out}/stdout 2> {out}/stderr
echo $? > {out}/status
sha256sum {mount}/run/last.pt {mount}/run/checkpoint.pt > {out}/after
ls -A {mount}/run > {out}/listing
"""


@pytest.mark.slow
def test_a_real_full_file_system_stops_the_run_in_one_line_and_keeps_last_pt(tmp_path):
    """A real tmpfs filled to its last block, in a mount namespace of its own (no root needed where
    the kernel allows unprivileged user namespaces; skipped where it does not, and the patched tests
    above still run)."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        pytest.skip("this machine cannot make a private mount namespace (unshare -rm) to mount a small tmpfs")
    mount, out = tmp_path / "mnt", tmp_path / "out"
    mount.mkdir()
    out.mkdir()
    args = " ".join(tiny("threads=1"))
    script = FILL_THEN_RESUME.format(mount=mount, out=out, python=sys.executable, run_py=ROOT / "run.py", args=args)
    subprocess.run(["unshare", "-rm", "sh", "-c", script], check=True, timeout=300)
    assert (out / "status").read_text().strip() == "2"
    stderr = (out / "stderr").read_text()
    line = stderr.splitlines()[-1]  # after the progress of the resumed run
    assert "Traceback" not in stderr and re.search(
        r"(checkpoint|last)\.pt: could not be written \(torch\.save failed", line
    )
    assert "free disk space or choose another hydra.run.dir" in line
    assert (out / "before").read_text() == (out / "after").read_text()  # the best and the last finished epoch, intact
    left = (out / "listing").read_text().split()
    assert [name for name in left if name.startswith(".")] == [".hydra"] and "writer.json" not in left, left
