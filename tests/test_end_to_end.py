"""run.py as a user runs it, on a tiny configuration: every file of the output contract."""

import csv
import json
import os

import pytest
import torch

import pyro_vae
from pyro_vae.experiment import run_experiment

from .conftest import TINY, compose_config, one_line, run_py
from .test_cifar10 import write_archive

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
    out = tmp_path_factory.mktemp("run")
    run_py(*TINY, "latent_dim=2", f"hydra.run.dir={out}")
    return out


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
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert METRICS <= set(metrics)
    assert metrics["epochs_completed"] == 2 and metrics["iwae_k"] == 8
    assert metrics["test_log_likelihood"] >= metrics["test_elbo"] > -800
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [1, 2]
    assert {"train_elbo", "val_elbo", "epoch_seconds"} <= set(rows[0])
    leftovers = [p for p in run_dir.rglob(".*") if p.is_file() and p.parent.name != ".hydra"]
    assert not leftovers  # no temporary files from the atomic writes


def test_load_returns_the_trained_vae(run_dir):
    vae = pyro_vae.load(run_dir)
    x = torch.bernoulli(torch.full((3, 1, 28, 28), 0.2))
    q = vae.guide_dist(x)
    assert q.batch_shape == (3,) and q.event_shape == (2,)
    p = vae.likelihood(q.sample())
    assert p.batch_shape == (3,) and p.event_shape == (1, 28, 28)
    assert torch.isfinite(p.log_prob(x)).all()


def test_multirun_puts_each_job_in_its_own_directory(tmp_path):
    run_py("-m", *TINY, "epochs=1", "latent_dim=2,3", f"hydra.sweep.dir={tmp_path}")
    for job, latent in (("0", 2), ("1", 3)):
        metrics = json.loads((tmp_path / job / "metrics.json").read_text())
        assert metrics["latent_dim"] == latent


def test_gaussian_variant_on_mnist_grey_levels_reports_bits_per_dim(tmp_path):
    run_py(
        *TINY,
        "likelihood=gaussian",
        "dataset=mnist",
        "net=mlp",
        "likelihood.scale=per_pixel",
        f"hydra.run.dir={tmp_path}",
    )
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert metrics["likelihood"] == "gaussian" and metrics["dataset"] == "mnist"
    assert 0 < metrics["test_bits_per_dim"] <= metrics["test_bits_per_dim_elbo"] < 12
    assert {p.stem for p in (tmp_path / "figures").glob("*.png")} == FIGURES


def test_gaussian_cifar10_run_on_an_archive_in_the_official_format(tmp_path, monkeypatch):
    """The whole pipeline in-process (so that the archive's checksums can be patched in)."""
    (tmp_path / "data").mkdir()
    write_archive(tmp_path / "data", monkeypatch, per_batch=24)
    cfg = compose_config(
        [
            "likelihood=gaussian",
            f"data.root={tmp_path / 'data'}",
            "data.val_size=24",
            "batch_size=32",
            "epochs=2",
            "latent_dim=3",
            "net.channels=[8,16]",
            "eval.iwae_k=4",
            "device=cpu",
            "likelihood.scale=predicted",
        ]
    )
    assert cfg.data.name == "cifar10" and cfg.net.name == "conv"
    best_val = run_experiment(cfg, tmp_path / "run")
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["val_elbo_best"] == best_val and metrics["epochs_completed"] == 2
    assert metrics["test_bits_per_dim"] > 0
    assert {p.stem for p in (tmp_path / "run" / "figures").glob("*.png")} == FIGURES
    vae = pyro_vae.load(tmp_path / "run")
    assert vae.likelihood(torch.zeros(2, 3)).event_shape == (3, 32, 32)


def test_gaussian_variant_without_cifar10_says_where_to_put_it(tmp_path):
    line = one_line(
        run_py("likelihood=gaussian", f"data.root={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}", returncode=2)
    )
    assert "cifar-10-python.tar.gz: not found; download https://" in line and "data.download=true" in line


def test_multirun_over_both_likelihoods(tmp_path):
    run_py(
        "-m",
        *TINY,
        "epochs=1",
        "dataset=mnist",
        "net=mlp",
        "likelihood=bernoulli,gaussian",
        f"hydra.sweep.dir={tmp_path}",
    )
    likelihoods = [json.loads((tmp_path / job / "metrics.json").read_text())["likelihood"] for job in ("0", "1")]
    assert likelihoods == ["bernoulli", "gaussian"]


def test_outputs_have_the_usual_file_permissions(run_dir):
    mask = os.umask(0)
    os.umask(mask)
    for name in ("metrics.json", "checkpoint.pt", "figures/samples.png"):
        assert (run_dir / name).stat().st_mode & 0o777 == 0o666 & ~mask, name
