"""task=sample_quality on tiny finished runs: what it scores, against what, and what it keeps.

The runs and the feature classifier are tiny (512 training images, a few epochs), so the figures
say nothing of MNIST; the tests check what is scored and recorded, the cache of the reference
rows, and the refusals. The metrics themselves are checked in tests/quality/test_metrics.py.
"""

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from pyro_vae.runs.tasks import sample_quality
from pyro_vae.runs.tasks.training_run import run_experiment
from tests.helpers import (
    compose_config,
    gan_tiny,
    read_metrics,
    run_py,
    run_py_refused,
    run_python,
    snapshot,
    tiny_cifar10,
    train_tiny_run,
)

pytestmark = pytest.mark.usefixtures("single_thread")

SCORING = ["task.n=200", "task.kid_subset_size=50", "task.kid_subsets=10"]


@pytest.fixture(scope="module")
def cache_dir(tmp_path_factory) -> Path:
    """One classifier cache for the module: the classifier of the tiny data set is trained once."""
    return tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def vae_run(tmp_path_factory) -> Path:
    return train_tiny_run(tmp_path_factory.mktemp("vae") / "run")


def task_args(run_dir: Path, cache_dir: Path) -> list:
    return ["task=sample_quality", f"task.run_dir={run_dir}", f"quality.cache_dir={cache_dir}", "device=cpu", *SCORING]


def score(run_dir: Path, out: Path, cache_dir: Path) -> dict:
    """``python run.py task=sample_quality`` on ``run_dir``, as a user runs it; its metrics.json."""
    run_py(*task_args(run_dir, cache_dir), f"hydra.run.dir={out}")
    return read_metrics(out)


def score_in_process(run_dir: Path, out: Path, cache_dir: Path) -> dict:
    """The task's function itself, so that what it calls can be counted."""
    return sample_quality.sample_quality_run(compose_config(task_args(run_dir, cache_dir)), out)


@pytest.mark.slow  # a tiny run (vae_run) and run.py in a process; trains the classifier
def test_a_bernoulli_vae_is_scored_by_its_means_and_its_binary_draws(vae_run, cache_dir, tmp_path):
    before = snapshot(vae_run)
    quality = score(vae_run, tmp_path / "q", cache_dir)["sample_quality"]
    sets = quality["sets"]
    assert set(sets) == {"prior_mean", "prior_binary", "reconstruction_mean"}
    assert sets["prior_mean"]["reference"] == "grey test images"
    assert sets["prior_binary"]["reference"] == "binarized test images"
    assert sets["prior_mean"]["n_generated"] == 200 and sets["prior_mean"]["n_real"] == 128
    assert sets["reconstruction_mean"]["n_generated"] == 128  # every test image once
    assert set(quality["reference"]) == {"train_images_grey", "train_images_binary"}
    for row in [*sets.values(), *quality["reference"].values()]:
        assert row["fd"] >= 0 and 0 <= row["precision"] <= 1 and 0 <= row["recall"] <= 1
    # Two epochs on 512 images: the training images lie far closer to the test images than its samples.
    assert quality["reference"]["train_images_grey"]["fd"] < sets["prior_mean"]["fd"]
    assert "FD (LeNet)" in quality["feature_space"] and "not comparable with Inception FID" in quality["feature_space"]
    assert (tmp_path / "q" / "sample_quality.png").stat().st_size > 0
    assert snapshot(vae_run) == before  # the run itself is never written


@pytest.mark.slow  # a tiny run (vae_run); trains the classifier unless an earlier test did
def test_the_reference_rows_are_computed_once_per_data_set(vae_run, cache_dir, tmp_path, monkeypatch):
    score_in_process(vae_run, tmp_path / "first", cache_dir)  # computes them, unless an earlier test did
    stored = sorted(cache_dir.glob("*.reference-*.json"))
    assert len(stored) == 1
    scored = []
    real = sample_quality.quality_metrics
    monkeypatch.setattr(sample_quality, "quality_metrics", lambda *a, **k: scored.append(1) or real(*a, **k))
    first = score_in_process(vae_run, tmp_path / "again", cache_dir)
    assert len(scored) == 3  # the run's three sets; the two reference rows came from the cache
    stored[0].write_text("{not json")  # a damaged entry is computed again, never trusted
    second = score_in_process(vae_run, tmp_path / "damaged", cache_dir)
    assert len(scored) == 3 + 5
    reference, stored_again = first["sample_quality"]["reference"], json.loads(stored[0].read_text())
    assert set(second["sample_quality"]["reference"]) == set(stored_again) == set(reference)
    for name, row in reference.items():  # recomputed, so equal up to float summation order
        assert second["sample_quality"]["reference"][name] == pytest.approx(row)
        assert stored_again[name] == pytest.approx(row)


@pytest.mark.slow  # trains a tiny run and the classifier
def test_a_gaussian_vae_has_no_binary_draws_to_score(tmp_path, cache_dir):
    run_dir = train_tiny_run(tmp_path / "run", "likelihood=gaussian", "dataset=mnist")
    quality = score_in_process(run_dir, tmp_path / "q", cache_dir)["sample_quality"]
    assert set(quality["sets"]) == {"prior_mean", "reconstruction_mean"}
    assert set(quality["reference"]) == {"train_images_grey"}


@pytest.mark.slow  # trains a tiny run and the classifier
def test_a_conditional_vae_reports_the_classifier_accuracy_on_its_samples(tmp_path, cache_dir):
    run_dir = train_tiny_run(tmp_path / "run", "model=cvae")
    quality = score_in_process(run_dir, tmp_path / "q", cache_dir)["sample_quality"]
    accuracy = quality["class_accuracy"]
    assert accuracy["n"] == 200 and len(accuracy["per_class"]) == 10
    assert accuracy["accuracy"] == pytest.approx(sum(accuracy["per_class"]) / 10)  # 20 draws each class


def test_class_accuracy_counts_the_draws_named_as_asked():
    """Prior draws cycle through the classes; a classifier right on every other draw scores 1/2."""
    draws = torch.zeros(12, 1, 2, 2)
    asked = torch.arange(12) % 3
    answers = torch.where(torch.arange(12) % 2 == 0, asked, (asked + 1) % 3)
    classifier = SimpleNamespace(predict=lambda images: answers, head=SimpleNamespace(weight=torch.zeros(1)))
    accuracy = sample_quality._class_accuracy(classifier, draws, 3)
    assert accuracy["accuracy"] == pytest.approx(0.5)
    assert accuracy["per_class"] == pytest.approx([0.5, 0.5, 0.5])


@pytest.mark.slow  # a tiny run (vae_run) and run.py in a process
def test_a_kid_subset_larger_than_a_scored_set_is_refused_before_anything_is_written(vae_run, cache_dir, tmp_path):
    line = run_py_refused(
        "task=sample_quality",
        f"task.run_dir={vae_run}",
        f"quality.cache_dir={cache_dir}",
        "task.kid_subset_size=500",
        f"hydra.run.dir={tmp_path / 'q'}",
    )
    assert "task.kid_subset_size=500" in line and "128 images" in line
    assert not (tmp_path / "q").exists()  # the folder the refused command made is gone: no .hydra, no run.log


@pytest.mark.slow  # a tiny run (vae_run); trains the classifier unless an earlier test did
def test_a_kid_subset_left_at_its_default_follows_a_small_test_set(vae_run, cache_dir, tmp_path, caplog):
    """The tiny run holds 128 test images, fewer than the usual subsets of 1,000: left null,
    task.kid_subset_size takes all 128 and the log says so, where a value set by hand is refused (above)."""
    args = [arg for arg in task_args(vae_run, cache_dir) if not arg.startswith("task.kid_subset_size=")]
    with caplog.at_level(logging.INFO, logger="pyro_vae"):
        quality = sample_quality.sample_quality_run(compose_config(args), tmp_path / "q")["sample_quality"]
    assert quality["kid_subset_size"] == 128
    assert "KID subsets of 128 images (the smallest scored set has 128); set task.kid_subset_size to choose" in [
        record.getMessage() for record in caplog.records
    ]


@pytest.mark.slow  # trains a tiny GAN and the classifier
@pytest.mark.parametrize(("binarize", "reference"), [("dynamic", "binarized"), ("none", "grey")])
def test_a_gans_samples_are_scored_against_the_view_it_was_trained_on(binarize, reference, tmp_path, cache_dir):
    """A GAN sees binary draws or grey levels as dataset.binarize says; its samples meet the same view."""
    sizes = ["dataset.train_size=512", "dataset.val_size=256", "dataset.test_size=128"]  # the tiny VAE's data
    run_experiment(compose_config(gan_tiny(*sizes, f"dataset.binarize={binarize}")), tmp_path / "run")
    metrics = score_in_process(tmp_path / "run", tmp_path / "q", cache_dir)
    quality = metrics["sample_quality"]
    assert metrics["model"] == "gan" and "test_elbo" not in metrics
    assert set(quality["sets"]) == {"generator"}
    assert quality["sets"]["generator"]["reference"] == f"{reference} test images"
    assert quality["sets"]["generator"]["n_generated"] == 200


@pytest.mark.slow  # a tiny run (vae_run), a tiny GAN and a script in a process
def test_compare_samples_draws_each_run_beside_the_training_images(vae_run, tmp_path):
    run_experiment(compose_config(gan_tiny()), tmp_path / "gan")
    out = tmp_path / "compare.png"
    run_python("docs/compare_samples.py", str(out), f"VAE={vae_run}", f"GAN={tmp_path / 'gan'}", "--count", "16")
    assert out.stat().st_size > 0


def test_runs_that_held_out_another_validation_size_share_the_standard_split(monkeypatch):
    """burda_vae and hour_nll validate on 1,000 images; their samples are scored by the classifier of
    MNIST's own split (10,000), as the default run's are."""
    loaded = []
    monkeypatch.setattr(sample_quality, "load_dataset", lambda cfg, device: loaded.append(cfg.dataset) or "standard")

    own = SimpleNamespace(train=range(50000), val=range(10000))

    def run(data=own, **dataset):
        cfg = compose_config([f"dataset.{key}={value}" for key, value in dataset.items()])
        return SimpleNamespace(cfg=cfg, data=data, device=torch.device("cpu"))

    assert sample_quality._standard_split(run()) is own
    assert sample_quality._standard_split(run(val_size=1000, train_size=512)) is own  # a subset
    small = SimpleNamespace(train=range(9000), val=range(1000))  # a user's smaller IDX files
    assert sample_quality._standard_split(run(small, val_size=1000)) is small
    assert sample_quality._standard_split(run(val_size=1000)) == "standard"
    assert [dataset.val_size for dataset in loaded] == [10000]


@pytest.mark.slow  # trains a VAE, a GAN and a ResNet on CIFAR-10
def test_cifar10_runs_of_both_models_are_scored_by_a_resnet(tmp_path, monkeypatch):
    """The small CIFAR-10 archive the tests write (random pixels and labels: the figures mean nothing):
    a Gaussian VAE and a GAN, each scored in the features of a ResNet trained on it."""
    cifar = tiny_cifar10(tmp_path, monkeypatch)
    vae_dir = tmp_path / "vae"
    run_experiment(compose_config(["likelihood=gaussian", *cifar]), vae_dir)
    gan = [o for o in cifar if not o.startswith(("net.", "eval."))]
    sizes = ["dataset.train_size=null", "dataset.test_size=null"]  # the archive's own, not GAN_TINY's for MNIST
    run_experiment(compose_config(gan_tiny("dataset=cifar10", "dataset.binarize=none", *gan, *sizes)), tmp_path / "gan")
    scoring = ["task.n=48", "task.kid_subset_size=12"]
    for run_dir, sets in ((vae_dir, {"prior_mean", "reconstruction_mean"}), (tmp_path / "gan", {"generator"})):
        cfg = compose_config([*task_args(run_dir, tmp_path / "cache"), *scoring])
        quality = sample_quality.sample_quality_run(cfg, tmp_path / f"{run_dir.name}_quality")["sample_quality"]
        assert set(quality["sets"]) == sets and quality["classifier"]["architecture"] == "resnet"
        assert "FD (ResNet)" in quality["feature_space"] and quality["n_reference"] == 24
