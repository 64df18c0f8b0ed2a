"""Durable atomic writes: the new content reaches the disk before the rename, the rename before return."""
import os

import pytest

from pyro_vae import atomic


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
