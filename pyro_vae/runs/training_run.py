"""One run end to end: config -> data -> VAE -> SVI training -> test evaluation -> figures.

``run.py`` wraps :func:`run_experiment` in Hydra; tests call it directly on composed configs.
"""

import logging
from pathlib import Path
from typing import Optional

import pyro
from omegaconf import DictConfig

from ..data import DataSplits
from ..errors import ConfigError, DivergenceError
from . import checkpoints, figures
from .builders import build_vae, load_dataset, pixel_transform, training_bound_name
from .metrics import test_metrics, validation_metrics
from .reporting import write_history, write_metrics
from .run_directory import check_output_dir
from .run_record import Begin, nothing_to_begin
from .schema import option
from .settings import apply_threads, resolve_device, validate
from .tensorboard_logger import make_logger
from .training import TrainingState, fit

log = logging.getLogger(__name__)


def run_experiment(cfg: DictConfig, run_dir: Path) -> Optional[float]:
    """Train and evaluate the VAE of ``cfg`` into ``run_dir``; return the best validation ELBO.

    The Python entry point: it checks the settings and the directory, as ``run.py`` does before
    it runs :func:`train` (``task=train``)."""
    validate(cfg)
    check_output_dir(cfg, run_dir)
    return train(cfg, run_dir)


def train(cfg: DictConfig, run_dir: Path, begin: Begin = nothing_to_begin) -> Optional[float]:
    """``task=train`` on settings and a directory already checked: :func:`run_experiment`'s work.
    ``begin`` is called once the data and every checkpoint of a resumed run have been checked.
    A model with a training task of its own (model=gan, which has no ELBO) is trained by that task."""
    declared = option("model", cfg.model.name)
    if declared.trains is not None:
        return declared.component("trains")(cfg, run_dir, begin)
    device = resolve_device(cfg.device)
    apply_threads(cfg.threads)
    pyro.clear_param_store()
    pyro.set_rng_seed(cfg.seed)

    data = load_dataset(cfg, device)
    check_batch_size(cfg, data)
    vae = build_vae(cfg, data.image_shape, data.num_classes).to(device)
    if cfg.resume:
        checkpoints.check_resume_fits(vae, run_dir)
    begin()
    transform = pixel_transform(cfg)
    log.info(
        "%s: %d train / %d val / %d test images of shape %s on %s",
        data.name,
        len(data.train),
        len(data.val),
        len(data.test),
        data.image_shape,
        device,
    )

    logger = make_logger(cfg, run_dir)
    state = fit(vae, data, transform, cfg, run_dir, logger)
    if state.divergence is not None:
        _record_divergence(state, run_dir, data.name, device)

    best = checkpoints.read(run_dir / checkpoints.BEST, device)
    vae.load_state_dict(best["state_dict"])
    vae.eval()
    test_images = transform.fixed(data.test.images, "test")
    val_images = transform.fixed(data.val.images, "val")
    metrics = {
        **test_metrics(vae, test_images, data.test.labels, cfg, len(data.train)),
        **validation_metrics(vae, val_images, data.val.labels, cfg, len(data.train)),
        "val_elbo_best": state.best_val_elbo,
        "best_epoch": best["epoch"],
        "epochs_completed": state.epochs_completed,
        "train_seconds": state.train_seconds,
        "images_per_second": state.images_per_second,
        "dataset": data.name,
        "data_verified": data.verified,  # false: dataset.verify=false read files that are not the official release
        "device": str(device),
    }
    write_history(run_dir / "history.csv", state.history)
    write_metrics(run_dir / "metrics.json", metrics)
    logger.finish(metrics)
    train_figure_images = transform.fixed(data.train.images[:16], "figures")
    figures.write_all(
        vae,
        (train_figure_images, data.train.labels[:16]),
        (test_images, data.test.labels),
        list(data.class_names),
        state.history,
        run_dir / "figures",
        training_bound_name(cfg),
        [figures.test_bound_mark(metrics)],
    )
    log.info("wrote %s", run_dir)
    return state.best_val_elbo


def check_batch_size(cfg: DictConfig, data: DataSplits) -> None:
    """Refuse a batch larger than the training split: known once the data is, still before anything is written."""
    if cfg.batch_size > len(data.train):
        raise ConfigError(
            f"batch_size={cfg.batch_size} exceeds the {len(data.train)} training images; lower it or raise "
            "dataset.train_size"
        )


def _record_divergence(state: TrainingState, run_dir: Path, dataset: str, device) -> None:
    """A diverged run's ``metrics.json`` says so, with the reason and no test figures; run.py then
    exits with status 2 (a sweep lists the job as failed)."""
    write_history(run_dir / "history.csv", state.history)
    metrics = {
        "diverged": True,
        "divergence": state.divergence,
        "untrained_val_elbo": state.untrained_val_elbo,
        "epochs_completed": state.epochs_completed,
        "val_elbo_best": state.best_val_elbo if state.history else None,
        "dataset": dataset,
        "device": str(device),
    }
    write_metrics(run_dir / "metrics.json", metrics)
    raise DivergenceError(f"{state.divergence}; {run_dir / 'metrics.json'} records it, without test figures")
