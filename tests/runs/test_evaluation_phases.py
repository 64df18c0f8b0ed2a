"""The evaluation after training as a user meets it: each bound announced with its work and timed,
and a quick run's lowered K never overridden by a default it did not set (issue 37)."""

import logging

import pytest

from pyro_vae.runs.metrics import DEFAULT_VAL_IWAE_K, validation_samples
from pyro_vae.runs.progress import phase
from pyro_vae.runs.training_run import run_experiment

from ..helpers import compose_config, compose_tiny, read_metrics

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize(
    ("overrides", "k", "logged"),
    [
        ([], DEFAULT_VAL_IWAE_K, True),  # the default run: K = 1000 on test images, 100 on validation images
        (["eval.iwae_k=10"], 10, True),  # a quick run's K is the validation bound's too
        (["eval.iwae_k=10", "eval.val_iwae_k=1000"], 1000, False),  # what the user sets is what runs
    ],
)
def test_the_validation_bound_follows_eval_iwae_k_unless_set(overrides, k, logged, caplog):
    with caplog.at_level(logging.INFO, logger="pyro_vae"):
        assert validation_samples(compose_config(overrides)) == k
    said = [r.getMessage() for r in caplog.records if "eval.val_iwae_k" in r.getMessage()]
    assert said == ([f"validation bound with K={k}: min(eval.iwae_k, 100); set eval.val_iwae_k to choose"] * logged)


def test_a_phase_logs_its_work_at_the_start_and_its_time_at_the_end(caplog):
    with caplog.at_level(logging.INFO, logger="pyro_vae"), phase("test bound", 10_000, "images", "K = 1000") as advance:
        for _ in range(4):
            advance(2_500)
    start, end = [r.getMessage() for r in caplog.records]
    assert start == "test bound: 10,000 images, K = 1000 ..."
    assert end.startswith("test bound: 10,000 images in ") and end.endswith(" images/s")


def test_a_phase_of_a_process_that_does_not_write_says_nothing(caplog):
    with caplog.at_level(logging.INFO, logger="pyro_vae"), phase("test bound", 10, "images", shown=False) as advance:
        advance(10)
    assert caplog.records == []


def test_a_quick_run_estimates_every_bound_at_its_own_k_and_says_where_the_time_went(tmp_path, caplog):
    """``eval.iwae_k=3`` with eval.val_iwae_k left null: no phase runs at a K the user did not ask
    for, and each bound is announced (its images and K) and timed in run.log's words."""
    cfg = compose_tiny("eval.iwae_k=3", "eval.val_iwae_k=null", "epochs=1")
    with caplog.at_level(logging.INFO, logger="pyro_vae"):
        run_experiment(cfg, tmp_path / "run")
    metrics = read_metrics(tmp_path / "run")
    assert (metrics["iwae_k"], metrics["val_iwae_k"]) == (3, 3)
    said = [r.getMessage() for r in caplog.records]
    assert "test bound: 128 images, K = 3 ..." in said and "validation bound: 256 images, K = 3 ..." in said
    assert any(line.startswith("test bound: 128 images in ") for line in said)
    assert any(line.startswith("validation bound: 256 images in ") for line in said)
    assert not any("K = 1000" in line or "K=1000" in line for line in said)
