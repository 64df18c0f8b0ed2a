"""The evaluation after training as a user meets it: each bound announced with its work and timed,
and a quick run's lowered K never overridden by a default it did not set (issue 37)."""

import logging

import pytest
import torch

from pyro_vae.runs.configuration.builders import build_vae
from pyro_vae.runs.tasks.metrics import validation_metrics
from pyro_vae.runs.tasks.progress import phase
from pyro_vae.runs.tasks.training_run import run_experiment

from ..helpers import compose_tiny, read_metrics

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.fixture
def tiny_vae_and_images():
    """The tiny config's VAE, untrained, and 12 binary 28x28 images."""
    return build_vae(compose_tiny(), (1, 28, 28), 10).eval(), torch.bernoulli(torch.full((12, 1, 28, 28), 0.3))


@pytest.mark.parametrize(("k", "estimated"), [("null", False), ("5", True)])
def test_the_validation_bound_is_estimated_only_where_asked_for(k, estimated, tiny_vae_and_images, caplog):
    """Left null (the default), the validation bound costs nothing and the log says how to ask for it."""
    vae, images = tiny_vae_and_images
    cfg = compose_tiny(f"eval.val_iwae_k={k}")
    with caplog.at_level(logging.INFO, logger="pyro_vae"):
        figures = validation_metrics(vae, images, None, cfg, num_data=len(images))
    said = [r.getMessage() for r in caplog.records]
    if estimated:
        assert figures["val_iwae_k"] == 5 and figures["val_log_likelihood"] < 0
        assert "validation bound: 12 images, K = 5 ..." in said
    else:
        assert figures == {}
        asked_for = "set eval.val_iwae_k (e.g. 100) to rank runs by val_log_likelihood"
        assert said == [f"validation bound: not estimated; {asked_for}"]


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


def test_a_quick_run_estimates_only_what_it_asks_for_and_says_where_the_time_went(tmp_path, caplog):
    """``eval.iwae_k=3`` with eval.val_iwae_k left null (the defaults): the test bound at K = 3, no
    validation bound, no phase at a K the user did not ask for, and the test bound announced (its
    images and K) and timed in run.log's words."""
    cfg = compose_tiny("eval.iwae_k=3", "eval.val_iwae_k=null", "epochs=1")
    with caplog.at_level(logging.INFO, logger="pyro_vae"):
        run_experiment(cfg, tmp_path / "run")
    metrics = read_metrics(tmp_path / "run")
    assert metrics["iwae_k"] == 3 and "val_log_likelihood" not in metrics and "val_iwae_k" not in metrics
    said = [r.getMessage() for r in caplog.records]
    assert "test bound: 128 images, K = 3 ..." in said
    assert any(line.startswith("test bound: 128 images in ") for line in said)
    assert not any(line.startswith("validation bound: ") and "images" in line for line in said)
    assert not any("K = 1000" in line or "K=1000" in line for line in said)
