"""model=m2 through run.py: a tiny semi-supervised run on MNIST with a few labels, its outputs, every task on
it, exact resume after SIGKILL, loading, and the refusals of what M2 does not compose with.

The runs are tiny (a few hundred images, two epochs of narrow networks): they check the machinery, not the
error it reaches (docs/semi_supervised.md reports the full runs)."""

import json
import signal
from pathlib import Path

import pytest
import torch

import pyro_vae
from pyro_vae.data.labelled_subset import balanced_labelled_indices
from pyro_vae.modelling.semi_supervised import SemiSupervisedVAE, StackedSemiSupervisedVAE
from pyro_vae.runs.configuration.schema import option
from pyro_vae.runs.configuration.settings import M2_UNUSED, validate
from pyro_vae.runs.directory import checkpoints
from pyro_vae.runs.tasks import figures
from pyro_vae.runs.tasks.training_run import run_experiment

from ..helpers import (
    compose_config,
    read_history,
    read_metrics,
    refused_leaving_nothing,
    run_py,
    run_python,
    tiny,
    train_tiny_run,
)

pytestmark = pytest.mark.usefixtures("single_thread")

# A few hundred MNIST images, 20 of them labelled (2 a class); each step 64 unlabelled and 10 labelled images.
M2_OWN = ["model=m2", "dataset.num_labels=20", "model.labelled_batch_size=10", "model.classifier_widths=[32]"]
HISTORY = [
    "epoch",
    "train_loss",
    "val_error",
    "val_elbo_labelled",
    "val_elbo_unlabelled",
    "epoch_seconds",
    "images_per_second",
    "lr",
]
TIMINGS = {"epoch_seconds", "images_per_second"}


def m2_tiny(*overrides: str) -> list:
    """The tiny configuration as model=m2 (whose bounds need no importance samples: eval.*iwae_k left alone)."""
    base = [o for o in tiny(*M2_OWN) if not o.startswith(("eval.iwae_k", "eval.val_iwae_k"))]
    keys = {override.split("=", 1)[0] for override in overrides}
    return [o for o in base if o.split("=", 1)[0] not in keys] + list(overrides)


@pytest.fixture(scope="module")
def m2_run(tmp_path_factory) -> Path:
    """The tiny M2, trained in-process as ``python run.py`` trains it (the SIGKILL test runs run.py itself)."""
    out = tmp_path_factory.mktemp("m2") / "run"
    run_experiment(compose_config(m2_tiny()), out)
    return out


def task_in_process(task: str, run_dir: Path, out: Path, *overrides: str):
    """``task=TASK`` on ``run_dir`` through its function, as run.py calls it once its checks pass."""
    cfg = compose_config([f"task={task}", f"task.run_dir={run_dir}", "device=cpu", *overrides])
    validate(cfg)
    return option("task", task).component()(cfg, out)


def test_an_m2_run_writes_its_outputs_error_and_both_bounds(m2_run):
    for name in ("checkpoint.pt", "last.pt", "history.csv", "metrics.json"):
        assert (m2_run / name).is_file(), name
    figures = {p.name for p in (m2_run / "figures").iterdir()}
    assert figures == {"analogies.png", "confusion_matrix.png", "class_samples.png", "error_curve.png"}
    metrics = read_metrics(m2_run)
    assert 0 <= metrics["test_error"] <= 1 and metrics["num_labels"] == 20 and metrics["epochs_completed"] == 2
    # With the labels the bound includes log p(y) = -log 10; summed out, the entropy of q(y|x): both below 0.
    assert metrics["test_elbo_labelled"] < 0 and metrics["test_elbo_unlabelled"] < 0
    rows = read_history(m2_run)
    assert list(rows[0]) == HISTORY and [int(row["epoch"]) for row in rows] == [1, 2]
    errors = [float(row["val_error"]) for row in rows]
    best = checkpoints.read(m2_run / checkpoints.BEST)
    assert best["epoch"] == 1 + errors.index(min(errors))
    assert best["val_error"] == min(errors) == metrics["val_error_best"]
    scalars = (m2_run / "csv" / "version_0" / "metrics.csv").read_text().splitlines()[0]  # the logger's columns
    assert {"val/error", "val/elbo_unlabelled", "test/error"} <= set(scalars.split(","))


def test_the_labelled_images_come_from_the_training_split_balanced(m2_run):
    """The labelled images are those dataset.label_seed draws from the training split's labels alone."""
    cfg = compose_config(m2_tiny())
    from pyro_vae.runs.configuration.builders import load_dataset

    data = load_dataset(cfg, torch.device("cpu"))
    chosen = balanced_labelled_indices(data.train.labels, 20, cfg.dataset.label_seed)
    assert chosen.max() < len(data.train) and torch.bincount(data.train.labels[chosen]).tolist() == [2] * 10
    other = balanced_labelled_indices(data.train.labels, 20, cfg.dataset.label_seed + 1)
    assert not torch.equal(chosen, other)


def test_load_gives_the_m2_and_its_classifier(m2_run):
    m2 = pyro_vae.load(m2_run)
    assert isinstance(m2, SemiSupervisedVAE) and not m2.training
    assert m2.classify(torch.zeros(3, 1, 28, 28)).shape == (3,)


def test_evaluate_repeats_the_test_error(m2_run, tmp_path):
    bound = task_in_process("evaluate", m2_run, tmp_path)
    evaluated = json.loads((tmp_path / "metrics.json").read_text())
    assert evaluated["test_error"] == read_metrics(m2_run)["test_error"]  # argmax q(y|x): no random draw
    assert bound == evaluated["test_elbo_unlabelled"] < 0


# Every task but evaluate, with the file each writes.
OTHER_TASKS = [
    (["sample", "task.per_class=true", "task.n=3"], "samples.png"),
    (["reconstruct", "task.n=4"], "reconstructions.png"),
    (["interpolate", "task.steps=3"], "interpolation.png"),
]


@pytest.mark.parametrize("task, written", OTHER_TASKS)
def test_every_other_task_on_an_m2_run(m2_run, tmp_path, task, written):
    task_in_process(*task[:1], m2_run, tmp_path, *task[1:])
    assert (tmp_path / written).is_file()


KILL_AFTER_STEPS_OF_EPOCH_2 = """
import os, runpy, signal, sys
from pyro_vae.runs.loop.semi_supervised_training import SemiSupervisedTraining

training_step = SemiSupervisedTraining.training_step

def training_step_killed_in_epoch_2(module, index, step):
    if module.current_epoch + 1 == 2 and step == 3:
        os.kill(os.getpid(), signal.SIGKILL)
    return training_step(module, index, step)

SemiSupervisedTraining.training_step = training_step_killed_in_epoch_2
sys.argv = ["run.py", *sys.argv[1:]]
runpy.run_path("run.py", run_name="__main__")
"""


@pytest.mark.slow
def test_sigkill_mid_epoch_then_resume_is_bit_identical(m2_run, tmp_path):
    """run.py killed in epoch 2 and resumed ends as the run never stopped, and its log says what it did."""
    args = m2_tiny("threads=1")
    killed = tmp_path / "killed"
    run_python("-c", KILL_AFTER_STEPS_OF_EPOCH_2, *args, f"hydra.run.dir={killed}", returncode=-signal.SIGKILL)
    assert len(checkpoints.read(killed / checkpoints.LAST)["history"]) == 1
    run_py(*args, f"hydra.run.dir={killed}", "resume=true")
    log = (killed / "run.log").read_text()
    assert "20 labelled + 492 unlabelled training images" in log and "epoch 2/2  loss" in log and "test error" in log
    expected, got = (checkpoints.read(path / checkpoints.LAST) for path in (m2_run, killed))
    for name, tensor in expected["state_dict"].items():
        assert torch.equal(tensor, got["state_dict"][name]), name
    for index, state in expected["optimizer"]["state"].items():
        assert torch.equal(state["exp_avg_sq"], got["optimizer"]["state"][index]["exp_avg_sq"]), index
    drop = lambda history: [{k: v for k, v in row.items() if k not in TIMINGS} for row in history]  # noqa: E731
    assert drop(expected["history"]) == drop(got["history"])


@pytest.mark.parametrize("composed", [["guide=full"], ["prior=flow"]])
def test_an_in_process_run_returns_minus_the_best_validation_error(tmp_path, composed):
    """Also: a full-covariance q(z|x, y) and a flow prior compose with M2."""
    best = run_experiment(compose_config(m2_tiny("epochs=1", *composed)), tmp_path)
    assert best == -read_metrics(tmp_path)["val_error_best"]


def test_the_settings_m2_refuses_are_the_defaults():
    """M2_UNUSED's values are what conf/ gives, so that model=m2 with its labels is accepted."""
    validate(compose_config(["model=m2", "dataset.num_labels=100"]))
    assert {name for name, _, _ in M2_UNUSED} >= {"objective", "prior", "guide", "svi_step", "decoder.bayesian"}


@pytest.mark.parametrize(
    "overrides, line",
    [
        (["model=m2"], "model=m2 learns from a few labelled images and many unlabelled ones: set dataset.num_labels"),
        (["dataset.num_labels=100"], "dataset.num_labels=100: only model=m2 learns from part of the labels"),
        ([*M2_OWN, "prior=vampprior"], "q(z|u_k), which model=m2's encoder cannot form unlabelled"),
        ([*M2_OWN, "objective=iwae"], "objective=iwae: model=m2 sums the label out exactly (TraceEnum_ELBO)"),
        ([*M2_OWN, "guide=iaf"], "guide=iaf: model=m2's q(z|x, y) is a Gaussian: guide=diagonal or guide=full"),
        ([*M2_OWN, "dataset.num_labels=25"], "dataset.num_labels=25: must be a positive multiple of the 10 classes"),
        ([*M2_OWN, "dataset.num_labels=0"], "dataset.num_labels=0: must be a positive integer, or null"),
    ],
)
def test_refusals_are_one_line_before_anything_is_written(tmp_path, overrides, line):
    refused = refused_leaving_nothing(tmp_path, *overrides, "eval.iwae_k=1000", "eval.val_iwae_k=null")
    assert line in refused, refused


def test_tensorboard_shows_the_error_and_both_bounds_per_epoch(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_experiment(compose_config(m2_tiny("logger=tensorboard")), tmp_path)
    events = EventAccumulator(str(tmp_path / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    scalars = events.Tags()["scalars"]
    for tag in ("val/error", "val/elbo_labelled", "val/elbo_unlabelled", "train/loss"):
        assert [event.step for event in events.Scalars(tag)] == [1, 2], tag
    rows = read_history(tmp_path)
    logged = [event.value for event in events.Scalars("val/error")]
    assert logged == pytest.approx([float(row["val_error"]) for row in rows])
    assert {"test/error", "val/error_best"} <= set(scalars)  # metrics.json's, at the last epoch


def test_a_run_on_fashion_mnist(tmp_path, monkeypatch):
    """Fashion-MNIST's files (small ones in its format, checksums patched in) train M2 the same way."""
    from pyro_vae.data import fashion_mnist

    from ..helpers import write_idx_release

    write_idx_release(tmp_path / "fashion", fashion_mnist.RELEASE, monkeypatch, train=400, test=64)
    data = [f"dataset.root={tmp_path / 'fashion'}", "dataset.val_size=100", "batch_size=32", "epochs=1"]
    unbounded = ["dataset.train_size=null", "dataset.test_size=null"]
    run_experiment(compose_config(m2_tiny("dataset=fashion_mnist", *data, *unbounded)), tmp_path / "run")
    metrics = read_metrics(tmp_path / "run")
    assert metrics["dataset"] == "fashion_mnist" and metrics["num_labels"] == 20 and 0 <= metrics["test_error"] <= 1


@pytest.fixture(scope="module")
def m1_run(tmp_path_factory) -> Path:
    """A tiny VAE (M1) on the same MNIST images, whose posterior means a tiny M1+M2 models."""
    return train_tiny_run(tmp_path_factory.mktemp("m1") / "run", "epochs=1")


@pytest.fixture(scope="module")
def m1m2_run(m1_run, tmp_path_factory) -> Path:
    """A tiny M1+M2 on the tiny M1's posterior means."""
    out = tmp_path_factory.mktemp("m1m2") / "run"
    run_experiment(compose_config(m2_tiny("epochs=1", f"model.features_from={m1_run}")), out)
    return out


def test_an_m1_m2_run_trains_m2_on_m1s_means_and_loads(m1_run, m1m2_run, tmp_path):
    """model.features_from: M2 of the means of M1's q(z|x) (4 numbers an image), M1's weights saved unchanged;
    its pictures are M1's images, means and draws."""
    metrics = read_metrics(m1m2_run)
    assert 0 <= metrics["test_error"] <= 1 and {p.name for p in (m1m2_run / "figures").iterdir()} >= {"analogies.png"}
    m1m2, m1 = pyro_vae.load(m1m2_run), pyro_vae.load(m1_run)
    images = torch.zeros(2, 1, 28, 28)
    assert isinstance(m1m2, StackedSemiSupervisedVAE) and m1m2.represent(images).shape == (2, 1, 1, 4)
    for name, weight in m1.state_dict().items():
        assert torch.equal(m1m2.m1.state_dict()[name], weight), name
    draws = figures.prior_draws(m1m2, 3, sampled=True)
    assert draws.shape == (3, 1, 28, 28) and set(draws.unique().tolist()) <= {0.0, 1.0}
    task_in_process("evaluate", m1m2_run, tmp_path)  # argmax q(y|x) of M1's means: no random draw
    assert read_metrics(tmp_path)["test_error"] == metrics["test_error"]


@pytest.mark.parametrize("task, written", OTHER_TASKS)
def test_every_other_task_on_an_m1_m2_run(m1m2_run, tmp_path, task, written):
    task_in_process(*task[:1], m1m2_run, tmp_path, *task[1:])
    assert (tmp_path / written).is_file()


@pytest.mark.parametrize(
    "features_from, line",
    [
        ("m2", "a model=m2 guide=diagonal run; M1 must be a model=vae run with guide=diagonal or full"),
        ("nowhere", "no checkpoint here; is this the directory of a finished pyro-vae run?"),
    ],
)
def test_m1_m2_refuses_what_is_not_a_trained_vae(m2_run, tmp_path, features_from, line):
    folder = m2_run if features_from == "m2" else tmp_path / features_from
    refused = refused_leaving_nothing(
        tmp_path, *M2_OWN, f"model.features_from={folder}", "eval.iwae_k=1000", "eval.val_iwae_k=null"
    )
    assert line in refused, refused
