"""run.py as a user runs it, on a tiny configuration: every file of the output contract."""

import os

import pytest
import torch

import pyro_vae
from pyro_vae.runs.tasks.training_run import run_experiment

from ..helpers import compose_config, read_history, read_metrics, run_py, run_py_refused, tiny, tiny_cifar10

pytestmark = pytest.mark.usefixtures("single_thread")

FIGURES = {"encoding", "decoding", "reconstructions", "samples", "elbo_curve", "latent_space"}
METRICS = {
    "test_elbo",
    "test_log_likelihood",
    "iwae_k",
    "val_elbo_best",
    "epochs_completed",
    "train_seconds",
    "images_per_second",
    "test_kl",
    "test_reconstruction",
    "test_active_units",
}


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    """A tiny run by ``python run.py``, with a two-dimensional latent space (so with a manifold figure)."""
    out = tmp_path_factory.mktemp("run")
    run_py(*tiny("latent_dim=2"), f"hydra.run.dir={out}")
    return out


@pytest.mark.slow
def test_run_writes_the_output_contract(run_dir):
    assert {p.stem for p in (run_dir / "figures").glob("*.png")} == FIGURES | {"manifold"}
    for name in (
        "checkpoint.pt",
        "last.pt",
        "history.csv",
        "metrics.json",
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
    ):
        assert (run_dir / name).is_file(), name
    metrics = read_metrics(run_dir)
    assert METRICS <= set(metrics)
    assert metrics["epochs_completed"] == 2 and metrics["iwae_k"] == 8
    assert metrics["test_log_likelihood"] >= metrics["test_elbo"] > -800
    rows = read_history(run_dir)
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"train_elbo", "val_elbo", "epoch_seconds"} <= set(rows[0])
    leftovers = [p for p in run_dir.rglob(".*") if p.is_file() and p.parent.name != ".hydra"]
    assert not leftovers  # no temporary files from the atomic writes


@pytest.mark.slow
def test_load_returns_the_trained_vae(run_dir):
    vae = pyro_vae.load(run_dir)
    x = torch.bernoulli(torch.full((3, 1, 28, 28), 0.2))
    q = vae.encode(x)
    assert q.batch_shape == (3,) and q.event_shape == (2,)
    p = vae.decode(q.sample())
    assert p.batch_shape == (3,) and p.event_shape == (1, 28, 28)
    assert torch.isfinite(p.log_prob(x)).all()


@pytest.mark.slow
def test_multirun_puts_each_job_in_its_own_directory(tmp_path):
    run_py("-m", *tiny("epochs=1", "latent_dim=2,3"), f"hydra.sweep.dir={tmp_path}")
    for job, latent in (("0", 2), ("1", 3)):
        assert read_metrics(tmp_path / job)["latent_dim"] == latent


@pytest.mark.slow
def test_gaussian_variant_on_mnist_grey_levels_reports_bits_per_dim(tmp_path):
    run_py(
        *tiny("likelihood=gaussian", "dataset=mnist", "net=mlp", "likelihood.scale_mode=per_pixel"),
        f"hydra.run.dir={tmp_path}",
    )
    metrics = read_metrics(tmp_path)
    assert metrics["likelihood"] == "gaussian" and metrics["dataset"] == "mnist"
    assert 0 < metrics["test_bits_per_dim"] <= metrics["test_bits_per_dim_elbo"] < 12
    assert {p.stem for p in (tmp_path / "figures").glob("*.png")} == FIGURES


def test_gaussian_cifar10_run_on_an_archive_in_the_official_format(tmp_path, monkeypatch):
    """The whole pipeline in-process (so that the archive's checksums can be patched in)."""
    cfg = compose_config(
        ["likelihood=gaussian", "likelihood.scale_mode=predicted", *tiny_cifar10(tmp_path, monkeypatch)]
    )
    assert cfg.dataset.name == "cifar10" and cfg.net.name == "conv"
    best_val = run_experiment(cfg, tmp_path / "run")
    metrics = read_metrics(tmp_path / "run")
    assert metrics["val_elbo_best"] == best_val and metrics["epochs_completed"] == 2
    assert metrics["test_bits_per_dim"] > 0
    assert {p.stem for p in (tmp_path / "run" / "figures").glob("*.png")} == FIGURES
    vae = pyro_vae.load(tmp_path / "run")
    assert vae.decode(torch.zeros(2, 3)).event_shape == (3, 32, 32)


@pytest.mark.slow
def test_gaussian_variant_without_cifar10_says_where_to_put_it(tmp_path):
    line = run_py_refused("likelihood=gaussian", f"dataset.root={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}")
    assert "cifar-10-python.tar.gz: not found; download https://" in line and "dataset.download=true" in line


@pytest.mark.slow
def test_multirun_over_both_likelihoods(tmp_path):
    run_py(
        "-m",
        *tiny("epochs=1", "dataset=mnist", "net=mlp", "likelihood=bernoulli,gaussian"),
        f"hydra.sweep.dir={tmp_path}",
    )
    likelihoods = [read_metrics(tmp_path / job)["likelihood"] for job in ("0", "1")]
    assert likelihoods == ["bernoulli", "gaussian"]


@pytest.mark.slow
def test_outputs_have_the_usual_file_permissions(run_dir):
    mask = os.umask(0)
    os.umask(mask)
    for name in ("metrics.json", "checkpoint.pt", "figures/samples.png"):
        assert (run_dir / name).stat().st_mode & 0o777 == 0o666 & ~mask, name
