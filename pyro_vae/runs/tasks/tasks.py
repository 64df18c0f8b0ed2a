"""Tasks: ``python run.py task=NAME task.run_dir=PATH``.

Each task rebuilds the run's VAE from its ``checkpoint.pt`` on this machine's device (so a
GPU-trained model works on a CPU), reads the run's own data settings from the config stored in
the checkpoint, and writes only into its own Hydra output directory: the run directory is
never modified. Each task calls ``begin`` once the run is loaded, before its first write
(:mod:`pyro_vae.runs.directory.run_record`). ``task=train`` (the default) is
:func:`pyro_vae.runs.tasks.training_run.run_experiment`. Loading the run is
:mod:`pyro_vae.runs.directory.finished_run`; its figures are drawn by :mod:`pyro_vae.runs.tasks.figures`.
"""

import logging
from pathlib import Path
from typing import Any, List

import torch
from omegaconf import DictConfig, OmegaConf

from ...data.image_files import read_image
from ...errors import ConfigError
from ...modelling.semi_supervised import SemiSupervisedVAE
from ..configuration.values import is_integer
from ..directory.finished_run import FinishedRun, open_run
from ..directory.reporting import write_metrics
from ..directory.run_record import Begin, nothing_to_begin
from . import figures
from .metrics import test_metrics
from .semi_supervised_run import test_metrics as semi_supervised_test_metrics

log = logging.getLogger(__name__)


def evaluate_run(cfg: DictConfig, output_dir: Path, begin: Begin = nothing_to_begin) -> float:
    """Recompute the run's test figures, e.g. with ``eval.iwae_k=5000`` for a tighter log p(x); return the test ELBO
    (of a model=m2 run: its test error and bounds; return the bound without labels)."""
    run = open_run(cfg, output_dir)
    begin()
    data = run.data
    test_images = run.test_view(data.test.images)
    if isinstance(run.vae, SemiSupervisedVAE):
        metrics = semi_supervised_test_metrics(run.vae, test_images, data.test.labels, run.cfg.eval.chunk_size)
    else:
        metrics = test_metrics(run.vae, test_images, data.test.labels, run.cfg, len(data.train))
    path = output_dir / "metrics.json"
    provenance = {
        "run_dir": str(run.path),
        "best_epoch": run.epoch,
        "dataset": data.name,
        "data_verified": data.verified,  # as training's metrics.json: false for files not of the official release
        "device": str(run.device),
    }
    write_metrics(path, {**metrics, **provenance})
    if isinstance(run.vae, SemiSupervisedVAE):
        log.info("%s: test error %.2f%% -> %s", run.path, 100 * metrics["test_error"], path)
        return metrics["test_elbo_unlabelled"]
    log.info(
        "%s: test ELBO %.2f, test log-likelihood %.2f (K=%d) -> %s",
        run.path,
        metrics["test_elbo"],
        metrics["test_log_likelihood"],
        metrics["iwae_k"],
        path,
    )
    return metrics["test_elbo"]


def sample_run(cfg: DictConfig, output_dir: Path, begin: Begin = nothing_to_begin) -> None:
    """Decode ``task.n`` draws from the prior into ``samples.png``; with ``task.per_class``, ``task.n`` per class."""
    run = open_run(cfg, output_dir)
    begin()
    path = output_dir / "samples.png"
    if cfg.task.per_class:
        if not run.vae.conditional:
            raise ConfigError(
                f"task.per_class=true: {run.path} holds an unconditional VAE; "
                "drop task.per_class or pass the task.run_dir of a model=cvae run"
            )
        figures.class_samples(run.vae, path, list(run.data.class_names), per_class=cfg.task.n)
    else:
        figures.samples(run.vae, path, cfg.task.n)
    log.info("%s: %d samples%s -> %s", run.path, cfg.task.n, " per class" if cfg.task.per_class else "", path)


def reconstruct_run(cfg: DictConfig, output_dir: Path, begin: Begin = nothing_to_begin) -> None:
    """Inputs and their reconstructions (decoded posterior means) into ``reconstructions.png``:
    the first ``task.n`` test images, or the image files of ``task.images``."""
    settings = cfg.task
    run = open_run(cfg, output_dir)
    begin()
    if settings.images is None:
        if settings.labels is not None:
            raise ConfigError("task.labels: goes with task.images=[...]; test images bring their own labels")
        test = run.data.test
        source, images, labels = "test", run.test_view(test.images)[: settings.n], test.labels[: settings.n]
    else:
        files = [Path(name).expanduser() for name in _listed("task.images", settings.images)]
        images = torch.stack([read_image(file, run.image_shape) for file in files]).to(run.device)
        source, images, labels = "files", run.test_view(images), _file_labels(run, settings.labels, len(files))
    path = output_dir / "reconstructions.png"
    figures.reconstructions(run.vae, {source: (images, labels)}, path, count=len(images))
    log.info("%s: %d %s images reconstructed -> %s", run.path, len(images), source, path)


def _listed(name: str, value: Any) -> List[Any]:
    """A non-empty list setting; a bare value (``task.images=a.png``) is refused rather than read letter by letter."""
    if not OmegaConf.is_list(value) or len(value) == 0:
        raise ConfigError(f"{name}={value}: must be a non-empty list, e.g. {name}=[a.png,b.png]")
    return list(value)


def _file_labels(run: FinishedRun, labels: Any, count: int) -> torch.Tensor:
    """The class indices a conditional VAE encodes and decodes the files with."""
    if not run.vae.conditional:
        if labels is not None:
            raise ConfigError(f"task.labels: {run.path} holds an unconditional VAE, which takes no labels; drop them")
        return torch.zeros(count, dtype=torch.long, device=run.device)  # ignored by an unconditional VAE
    classes = run.vae.num_classes
    if labels is None or not OmegaConf.is_list(labels) or len(labels) != count:
        shown = "null" if labels is None else labels
        raise ConfigError(
            f"task.labels={shown}: {run.path} holds a conditional VAE (model=cvae); give one class "
            f"index per file of task.images, e.g. task.labels=[{','.join(['0'] * count)}]"
        )
    if not all(isinstance(label, int) and 0 <= label < classes for label in labels):
        raise ConfigError(f"task.labels={list(labels)}: class indices must be integers from 0 to {classes - 1}")
    return torch.tensor(list(labels), dtype=torch.long, device=run.device)


def interpolate_run(cfg: DictConfig, output_dir: Path, begin: Begin = nothing_to_begin) -> None:
    """Decode a straight line between the posterior means of test images ``task.start`` and
    ``task.end`` into ``interpolation.png``, with the two inputs at the ends."""
    settings = cfg.task
    run = open_run(cfg, output_dir)
    begin()
    test = run.data.test
    ends = [_test_index(f"task.{key}", settings[key], len(test)) for key in ("start", "end")]
    path = output_dir / "interpolation.png"
    title = f"test images {ends[0]} and {ends[1]} (ends), decoded along the line between their posterior means"
    figures.interpolation(run.vae, run.test_view(test.images)[ends], test.labels[ends], settings.steps, title, path)
    log.info("%s: %d steps from test image %d to %d -> %s", run.path, settings.steps, ends[0], ends[1], path)


def _test_index(name: str, index: Any, size: int) -> int:
    if not (is_integer(index) and 0 <= index < size):
        raise ConfigError(f"{name}={index}: must be the index of a test image, from 0 to {size - 1}")
    return index
