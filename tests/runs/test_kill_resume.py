"""A run killed with SIGKILL in the middle of an epoch, then resumed with ``resume=true``, ends with
weights, optimizer state and history bit-identical to a run that was never interrupted (CPU).

The kill is real: a wrapper around ``run.py`` sends the process SIGKILL to itself after the
third training step of epoch 2, so nothing gets to clean up, flush or save; epoch 1's ``last.pt``
is all that survives, as after a power cut or the OOM killer. SIGINT (Ctrl-C) and SIGTERM at the
same point stop the run with one line that names the saved epoch and the command that resumes it.
"""

import os
import shlex
import signal
import sys
from pathlib import Path

import pytest
import torch

from pyro_vae.runs.directory import checkpoints

from ..helpers import ROOT, run_py, run_python, tiny

KILL_AFTER_STEPS_OF_EPOCH_2 = """
import os, runpy, signal, sys
from pyro_vae.runs.loop.vae_training import VAETraining

SIGNAL = signal.Signals[os.environ.get("KILL_SIGNAL", "SIGKILL")]

training_step = VAETraining.training_step

def training_step_killed_in_epoch_2(module, index, step):
    if module.current_epoch + 1 == 2 and step == 3:
        os.kill(os.getpid(), SIGNAL)
    return training_step(module, index, step)

VAETraining.training_step = training_step_killed_in_epoch_2
sys.argv = ["run.py", *sys.argv[1:]]
runpy.run_path("run.py", run_name="__main__")
"""

# Each variant puts together settings whose state a resume must restore (the schedule's, early
# stopping's count, the KL weight's place in its warm-up, the labels and the particles); the
# constant schedule is the SIGTERM test's below.
VARIANTS = {
    "plateau, kl_warmup, early_stopping": [
        "schedule=plateau",
        "schedule.patience=1",
        "schedule.threshold=1000",
        "kl_warmup_epochs=3",
        "early_stopping.patience=2",
        "early_stopping.threshold=1000",
    ],
    "cosine": ["schedule=cosine", "schedule.final_factor=0.1"],
    "burda, iwae, cvae": ["schedule=burda", "objective=iwae", "objective.num_particles=3", "model=cvae"],
}


@pytest.mark.slow
@pytest.mark.parametrize("variant", VARIANTS)
def test_sigkill_mid_epoch_then_resume_is_bit_identical_to_an_uninterrupted_run(variant, tmp_path):
    args = tiny("epochs=3", "eval.iwae_k=2", "threads=1", *VARIANTS[variant])
    run_py(*args, f"hydra.run.dir={tmp_path / 'straight'}")

    killed_dir = tmp_path / "killed"
    run_python("-c", KILL_AFTER_STEPS_OF_EPOCH_2, *args, f"hydra.run.dir={killed_dir}", returncode=-signal.SIGKILL)
    assert len(checkpoints.read(killed_dir / checkpoints.LAST)["history"]) == 1
    assert not (killed_dir / "metrics.json").exists()

    run_py(*args, f"hydra.run.dir={killed_dir}", "resume=true")

    expected = checkpoints.read(tmp_path / "straight" / checkpoints.LAST)
    got = checkpoints.read(killed_dir / checkpoints.LAST)
    assert got["history"] and [row["epoch"] for row in got["history"]] == [row["epoch"] for row in expected["history"]]
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(tensor, got["state_dict"][name]), name
    assert_same_tree(expected["optimizer"], got["optimizer"])
    columns = ("train_elbo", "val_elbo", "lr", "kl_weight")
    assert [[row[c] for c in columns] for row in got["history"]] == [
        [row[c] for c in columns] for row in expected["history"]
    ]


# SIGINT takes the same handler; tests/runs/test_data_parallel.py sends it to a run's processes.
@pytest.mark.parametrize("signum", [signal.SIGTERM])
def test_sigint_or_sigterm_stops_with_one_line_and_the_resume_command_continues_bit_identically(signum, tmp_path):
    args = tiny("epochs=2", "eval.iwae_k=2", "eval.val_iwae_k=2", "threads=1")
    run_py(*args, f"hydra.run.dir={tmp_path / 'straight'}")

    stopped_dir = tmp_path / "stopped"
    env = {**os.environ, "KILL_SIGNAL": signum.name}
    stopped = run_python(
        "-c", KILL_AFTER_STEPS_OF_EPOCH_2, *args, f"hydra.run.dir={stopped_dir}", returncode=128 + signum, env=env
    )
    assert "Traceback" not in stopped.stderr, stopped.stderr
    last_line = stopped.stderr.strip().splitlines()[-1]
    # The interpreter as typed from the repository root (.venv/bin/python after the README's first command).
    python = Path(sys.executable)
    typed = python.relative_to(ROOT).as_posix() if python.is_relative_to(ROOT) else str(python)
    resume = shlex.join([typed, "run.py", *args, f"hydra.run.dir={stopped_dir}", "resume=true"])
    assert last_line.endswith(
        f"[ERROR] - {signum.name}: stopped after epoch 1, saved in {stopped_dir / 'last.pt'}; resume with: {resume}"
    )
    assert last_line in (stopped_dir / "run.log").read_text()
    assert not (stopped_dir / "metrics.json").exists()

    run_py(*shlex.split(resume)[2:])

    expected = checkpoints.read(tmp_path / "straight" / checkpoints.LAST)
    got = checkpoints.read(stopped_dir / checkpoints.LAST)
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(tensor, got["state_dict"][name]), name
    assert_same_tree(expected["optimizer"], got["optimizer"])
    assert [row["val_elbo"] for row in got["history"]] == [row["val_elbo"] for row in expected["history"]]


def assert_same_tree(expected, got, path="optimizer"):
    """Equal nested dicts and lists of tensors and plain values (the optimizer's state)."""
    if isinstance(expected, torch.Tensor):
        assert torch.equal(expected, got), path
    elif isinstance(expected, dict):
        assert expected.keys() == got.keys(), path
        for key in expected:
            assert_same_tree(expected[key], got[key], f"{path}.{key}")
    elif isinstance(expected, (list, tuple)):
        assert len(expected) == len(got), path
        for index, (a, b) in enumerate(zip(expected, got)):
            assert_same_tree(a, b, f"{path}[{index}]")
    else:
        assert expected == got, path
