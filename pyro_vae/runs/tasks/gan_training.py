"""``task=train`` for model=gan: the DCGAN trained in Lightning's loop on the VAE's data pipeline.

The images, minibatches, run directory, checkpoints, Ctrl-C handling, history and figures are the
VAE run's (:mod:`.training_run`, :mod:`.loop`); what differs is the step (a discriminator update then
a generator update, each with its own Adam: :mod:`.loop.gan_training`) and what is recorded. A GAN has
no validation figure to choose an epoch by, so ``checkpoint.pt`` holds the last epoch, as ``last.pt``
does, and ``metrics.json`` holds no ELBO or log p(x) and says why.
"""

import logging
from pathlib import Path
from typing import Any, Dict

from omegaconf import DictConfig

from ...data import DataSplits
from ...errors import DivergenceError
from ..configuration.builders import build_gan, pixel_transform
from ..configuration.settings import apply_threads, resolve_device
from ..directory.reporting import write_history, write_metrics
from ..directory.run_record import Begin, nothing_to_begin
from ..loop.gan_training import STEP_FIGURES, fit
from ..loop.loggers import make_loggers
from ..loop.state import TrainingState
from ..loop.user_callbacks import build_callbacks
from . import gan_figures
from .run_logging import finish_logging
from .training_run import epochs_done, prepare

log = logging.getLogger(__name__)

NO_LIKELIHOOD = (
    "a GAN defines no density p(x): its generator maps z ~ N(0, I) to images without a likelihood, so there is "
    "no ELBO or log p(x) to report; score its samples instead"
)
CHECKPOINT_HOLDS = "the last epoch: a GAN has no validation figure to choose one by"


def train_gan(cfg: DictConfig, run_dir: Path, begin: Begin = nothing_to_begin) -> None:
    """``task=train`` with model=gan on settings and a directory already checked: train, then write
    ``history.csv``, ``metrics.json`` and the figures. ``begin`` is called once the data and every
    checkpoint of a resumed run have been checked. Returns None: there is no validation ELBO to maximise."""
    device = resolve_device(cfg.device)
    apply_threads(cfg.threads)
    data, gan = prepare(cfg, run_dir, device, lambda cfg, data: build_gan(cfg, data.image_shape))
    callbacks = build_callbacks(cfg)  # a user's own: refused before anything is written
    begin()
    transform = pixel_transform(cfg)
    log.info(
        "%s: %d training images of shape %s (%s) on %s",
        data.name,
        len(data.train),
        data.image_shape,
        transform.observes,
        device,
    )
    loggers = make_loggers(cfg, run_dir, epochs_done(cfg, run_dir))
    state = fit(gan, data, transform, cfg, run_dir, loggers, callbacks)
    write_history(run_dir / "history.csv", state.history)
    if state.divergence is not None:
        write_metrics(
            run_dir / "metrics.json",
            {"model": cfg.model.name, "diverged": True, "divergence": state.divergence, **_provenance(state, data)},
        )
        raise DivergenceError(f"{state.divergence}; {run_dir / 'metrics.json'} records it")
    last = state.history[-1]
    metrics = {
        "model": cfg.model.name,
        "likelihood": None,
        "no_likelihood": NO_LIKELIHOOD,
        "latent_dim": cfg.latent_dim,
        "observation": str(transform.observes),  # the view of the pixels the generator learned to imitate
        "checkpoint_epoch": state.epochs_completed,
        "checkpoint_holds": CHECKPOINT_HOLDS,
        **{f"final_{name}": last[name] for name in STEP_FIGURES},
        "train_seconds": state.train_seconds,
        "images_per_second": state.images_per_second,
        **_provenance(state, data),
    }
    write_metrics(run_dir / "metrics.json", metrics)
    finish_logging(loggers, cfg, metrics)
    gan_figures.write_all(gan, state.history, run_dir / "figures")
    log.info("wrote %s", run_dir)


def _provenance(state: TrainingState, data: DataSplits) -> Dict[str, Any]:
    return {
        "epochs_completed": state.epochs_completed,
        "dataset": data.name,
        "data_verified": data.verified,
        "device": str(data.train.images.device),
    }
