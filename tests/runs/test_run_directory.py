"""A run directory is written only by commands allowed to: refused ones leave it byte-identical,
a resumed run either applies a changed setting or refuses it (its record never says otherwise),
and a damaged or code-holding checkpoint is refused in one line."""

import gzip
import shutil
from pathlib import Path

import pytest
import torch
import yaml

import pyro_vae
from pyro_vae.errors import DataError
from pyro_vae.runs.directory.run_directory import RunDirectoryInUse, check_output_dir, settings_changed

from ..helpers import compose_tiny, run_py, run_py_refused, snapshot, tiny

TINY_RUN = tiny("epochs=1")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("protected") / "run"
    run_py(*TINY_RUN, f"hydra.run.dir={out}")
    return out


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, message",
    [
        (["latent_dim=7"], "already holds a run (last.pt); pass resume=true"),
        (["resume=true", "lr=0.01"], "resume=true: lr=0.01 (the run has 0.001): a resumed run keeps the settings"),
        (["resume=true", "latent_dim=7", "epochs=3"], "latent_dim=7 (the run has 4)"),
        (
            ["task=evaluate", "task.run_dir=RUN"],
            "holds a run (last.pt); task=evaluate writes into a directory of its own",
        ),
        # refused only once the work has begun: the data files are read after the settings are checked
        (["resume=true", "epochs=2", "dataset.root=BAD_ROOT"], "train-images-idx3-ubyte.gz: SHA-256 "),
    ],
)
def test_a_refused_command_leaves_the_run_directory_byte_identical(finished_run, args, message, tmp_path):
    before = snapshot(finished_run)
    assert {
        Path(".hydra/config.yaml"),
        Path("run.log"),
        Path("last.pt"),
        Path("checkpoint.pt"),
        Path("metrics.json"),
    } <= set(before)
    for name in (
        "train-images-idx3-ubyte",
        "train-labels-idx1-ubyte",
        "t10k-images-idx3-ubyte",
        "t10k-labels-idx1-ubyte",
    ):
        (tmp_path / f"{name}.gz").write_bytes(gzip.compress(b"not the MNIST file"))  # fails its checksum
    args = [arg.replace("BAD_ROOT", str(tmp_path)).replace("RUN", str(finished_run)) for arg in args]
    assert message in run_py_refused(*TINY_RUN, *args, f"hydra.run.dir={finished_run}")
    assert snapshot(finished_run) == before


@pytest.mark.slow
def test_a_resumed_run_applies_the_settings_it_may_change_and_records_them(finished_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    log_before = (run_dir / "run.log").read_text()
    run_py(*tiny("epochs=2", "resume=true", "eval.iwae_k=4"), f"hydra.run.dir={run_dir}")
    assert len((run_dir / "history.csv").read_text().splitlines()) == 1 + 2
    record = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
    stored = torch.load(run_dir / "last.pt", weights_only=True)["config"]
    assert record["epochs"] == stored["epochs"] == 2 and record["eval"]["iwae_k"] == stored["eval"]["iwae_k"] == 4
    assert (run_dir / "run.log").read_text().startswith(log_before)  # appended to, not replaced


def test_settings_changed_compares_nested_settings_and_ignores_those_that_may_change():
    stored = {"lr": 0.001, "epochs": 5, "net": {"widths": [64]}, "eval": {"iwae_k": 8}, "resume": False}
    current = {
        "lr": 0.001,
        "epochs": 9,
        "net": {"widths": [32]},
        "eval": {"iwae_k": 5000},
        "resume": True,
        "new_key": 1,
    }
    assert settings_changed(stored, current) == [("net.widths", [64], [32])]


def test_a_directory_holding_only_a_best_checkpoint_is_protected_too(tmp_path):
    (tmp_path / "checkpoint.pt").write_bytes(b"weights")
    with pytest.raises(RunDirectoryInUse, match=r"already holds a run \(checkpoint\.pt\)"):
        check_output_dir(compose_tiny("epochs=1"), tmp_path)


class CodeOnLoad:
    """Pickles as a call to print: a checkpoint holding it would run code when unpickled."""

    def __reduce__(self):
        return (print, ("code ran",))


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["truncated", "code"])
def test_a_damaged_or_code_holding_last_pt_is_refused_on_resume_in_one_line(finished_run, tmp_path, damage):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    last = run_dir / "last.pt"
    if damage == "truncated":
        last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    else:
        torch.save({"config": {}, "payload": CodeOnLoad()}, last)
    before = snapshot(run_dir)
    line = run_py_refused(*tiny("resume=true", "epochs=2"), f"hydra.run.dir={run_dir}")
    assert ("the file is damaged" if damage == "truncated" else "holds pickled Python objects besides tensors") in line
    assert "code ran" not in line
    assert snapshot(run_dir) == before  # checkpoint.pt, the best weights, untouched


@pytest.mark.slow
def test_code_holding_checkpoints_are_refused_by_load_and_by_tasks(finished_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    torch.save({"config": {}, "payload": CodeOnLoad()}, run_dir / "checkpoint.pt")
    with pytest.raises(DataError, match="holds pickled Python objects besides tensors"):
        pyro_vae.load(run_dir)
    line = run_py_refused("task=evaluate", f"task.run_dir={run_dir}", f"hydra.run.dir={tmp_path / 'evaluate'}")
    assert "holds pickled Python objects besides tensors" in line


@pytest.mark.slow
@pytest.mark.parametrize(
    "args, key",
    [
        (["hydra.run.dir=/proc/pyro_vae_run"], "hydra.run.dir=/proc/pyro_vae_run"),
        (["-m", "hydra.sweep.dir=/proc/pyro_vae_sweep", "latent_dim=2,3"], "hydra.sweep.dir=/proc/pyro_vae_sweep"),
    ],
)
def test_an_impossible_output_folder_is_one_line_before_hydra_writes(args, key):
    assert f"{key}: cannot be created or written" in run_py_refused(*args, timeout=120)


@pytest.mark.slow
def test_a_directory_whose_best_checkpoint_is_of_another_run_is_refused_before_training(finished_run, tmp_path):
    """The last.pt of a run of other settings copied into the directory, resumed with those settings:
    the end of the run would load checkpoint.pt, so it is checked before the first epoch."""
    other = tmp_path / "other"
    run_py(*tiny("epochs=1", "latent_dim=5", "net.widths=[32]"), f"hydra.run.dir={other}")
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    shutil.copy(other / "last.pt", run_dir / "last.pt")
    before = snapshot(run_dir)
    line = run_py_refused(
        *tiny("epochs=2", "latent_dim=5", "net.widths=[32]", "resume=true"), f"hydra.run.dir={run_dir}"
    )
    assert line.split(" - ", 1)[1].startswith(f"{run_dir / 'checkpoint.pt'}: was trained with ")
    assert "latent_dim=4" in line and "net.widths=[64]" in line and "unlike last.pt and this command" in line
    assert snapshot(run_dir) == before


@pytest.mark.slow
def test_a_last_pt_whose_weights_do_not_fit_its_recorded_settings_is_refused_before_training(finished_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(finished_run, run_dir)
    for name in ("last.pt", "checkpoint.pt"):  # both now claim a latent of 5 for weights of a latent of 4
        record = torch.load(run_dir / name, weights_only=True)
        record["config"]["latent_dim"] = 5
        torch.save(record, run_dir / name)
    before = snapshot(run_dir)
    line = run_py_refused(*tiny("epochs=2", "latent_dim=5", "resume=true"), f"hydra.run.dir={run_dir}")
    assert f"{run_dir / 'last.pt'}: weight " in line and "where the settings build one of shape" in line, line
    assert snapshot(run_dir) == before
