"""``task=train`` for model=m2: Kingma et al.'s semi-supervised VAE on ``dataset.num_labels`` labelled training
images (balanced over the classes, drawn by ``dataset.label_seed``) and the rest of the training split unlabelled.

The data pipeline, run directory, checkpoints, Ctrl-C handling and loggers are the VAE run's; what differs is
the step (:mod:`..loop.semi_supervised_training`), the figure that chooses ``checkpoint.pt`` (the validation
error of q(y|x)), and what ``metrics.json`` holds: the test error, and the test bounds with and without labels.
"""

import logging
from pathlib import Path
from typing import Any, Dict

import torch
from omegaconf import DictConfig

from ...data import DataSplits
from ...data.labelled_subset import balanced_labelled_indices, unlabelled_indices
from ...errors import DivergenceError
from ...modelling.semi_supervised import SemiSupervisedVAE, classification_error, mean_bounds, predictions
from ..configuration.builders import build_semi_supervised, pixel_transform
from ..configuration.settings import apply_threads, resolve_device
from ..directory import checkpoints
from ..directory.reporting import write_history, write_metrics
from ..directory.run_record import Begin, nothing_to_begin
from ..loop.loggers import make_loggers
from ..loop.semi_supervised_training import fit
from ..loop.user_callbacks import build_callbacks
from . import semi_supervised_figures
from .run_logging import finish_logging
from .training_run import epochs_done, prepare

log = logging.getLogger(__name__)


def train_m2(cfg: DictConfig, run_dir: Path, begin: Begin = nothing_to_begin) -> float:
    """``task=train`` with model=m2 on settings and a directory already checked: train, then write
    ``history.csv``, ``metrics.json`` and the figures; return minus the best validation error, the figure
    that a sweep maximises (as the VAE's validation ELBO)."""
    device = resolve_device(cfg.device)
    threads = apply_threads(cfg.threads)
    data, m2 = prepare(cfg, run_dir, device, _untrained_m2)
    labelled_at = balanced_labelled_indices(data.train.labels, cfg.dataset.num_labels, cfg.dataset.label_seed)
    unlabelled = data.train.subset(unlabelled_indices(len(data.train), labelled_at))
    labelled = data.train.subset(labelled_at)
    callbacks = build_callbacks(cfg)  # a user's own: refused before anything is written
    begin()
    transform = pixel_transform(cfg)
    log.info(
        "%s: %d labelled + %d unlabelled training images, %d val / %d test, of shape %s on %s, %d torch thread(s)",
        data.name,
        len(labelled),
        len(unlabelled),
        len(data.val),
        len(data.test),
        data.image_shape,
        device,
        torch.get_num_threads(),
    )
    loggers = make_loggers(cfg, run_dir, epochs_done(cfg, run_dir))
    state = fit(m2, data, labelled, unlabelled, transform, cfg, run_dir, threads, loggers, callbacks)
    write_history(run_dir / "history.csv", state.history)
    if state.divergence is not None:
        write_metrics(run_dir / "metrics.json", {"model": "m2", "diverged": True, "divergence": state.divergence})
        raise DivergenceError(f"{state.divergence}; {run_dir / 'metrics.json'} records it")

    best = checkpoints.read(run_dir / checkpoints.BEST, device)
    m2.load_state_dict(best["state_dict"])
    m2.eval()
    test_images = transform.fixed(data.test.images, "test")
    metrics = {
        **test_metrics(m2, test_images, data.test.labels, cfg.eval.chunk_size),
        "val_error_best": best["val_error"],
        "best_epoch": best["epoch"],
        "num_labels": len(labelled),
        "label_seed": cfg.dataset.label_seed,
        "epochs_completed": state.epochs_completed,
        "train_seconds": state.train_seconds,
        "images_per_second": state.images_per_second,
        "dataset": data.name,
        "data_verified": data.verified,
        "device": str(device),
    }
    write_metrics(run_dir / "metrics.json", metrics)
    finish_logging(loggers, cfg, metrics)
    predicted = predictions(m2, test_images, cfg.eval.chunk_size)
    semi_supervised_figures.write_all(
        m2, test_images, data.test.labels, predicted, list(data.class_names), state.history, run_dir / "figures"
    )
    log.info(
        "test error %.2f%% (val %.2f%%, epoch %d); test ELBO %.2f with labels, %.2f without",
        100 * metrics["test_error"],
        100 * metrics["val_error_best"],
        metrics["best_epoch"],
        metrics["test_elbo_labelled"],
        metrics["test_elbo_unlabelled"],
    )
    log.info("wrote %s", run_dir)
    return -best["val_error"]


def test_metrics(m2: SemiSupervisedVAE, images: torch.Tensor, labels: torch.Tensor, chunk_size: int) -> Dict[str, Any]:
    """The test error of argmax q(y|x), and the mean test bounds with the labels and with them summed out."""
    with_labels, without_labels = mean_bounds(m2, images, labels, chunk_size)
    return {
        "test_error": classification_error(m2, images, labels, chunk_size),
        "test_elbo_labelled": with_labels,
        "test_elbo_unlabelled": without_labels,
    }


def _untrained_m2(cfg: DictConfig, data: DataSplits) -> SemiSupervisedVAE:
    m1 = checkpoints.features_model(cfg, data.image_shape)  # M1+M2's M1, or None
    return build_semi_supervised(cfg, data.image_shape, data.num_classes, len(data.train), m1)
