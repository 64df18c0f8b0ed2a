"""Watching a run as it trains: ``logger=none`` (the default) or ``logger=tensorboard``.

TensorBoard's event files go to ``RUN_DIR/tensorboard/``. Each epoch: every column of
``history.csv`` (``val_elbo`` as ``val/elbo``, ``lr`` as ``train/lr``: see :func:`scalar_tag`),
and the validation pass's closed-form KL(q(z|x) || p(z)) and reconstruction term E_q[log p(x|z)]
(``val/kl``, ``val/reconstruction``: :func:`~pyro_vae.modelling.estimators.evaluate` computes them beside
the validation ELBO, so they cost no extra pass). Every ``logger.image_every`` epochs:
reconstructions of validation images and decoded prior draws. At the end: the run's settings as
hparams beside its results, the ``test_*`` and ``val_*`` figures of ``metrics.json`` (``test_elbo``
as ``test/elbo``), so that TensorBoard's HParams view lays the jobs of a sweep side by side (it
shows the first five metrics by name: the test figures).

The folder is created at the first finished epoch, so a refused command writes nothing; a
resumed run adds an event file beside the earlier ones, and TensorBoard drops the steps that
the resumed epochs replace (``purge_step``). Images are drawn under a forked RNG: watching a
run never changes its random numbers, so a run trains the same with or without a logger.
"""

import importlib
import math
from pathlib import Path
from typing import Any, Dict, Optional

import torch
from omegaconf import DictConfig, OmegaConf
from torchvision.utils import make_grid

from ..errors import ConfigError
from ..modelling.estimators import Evaluation
from ..modelling.vae import VAE
from . import figures
from .commands import pip_install_extra
from .run_directory import changeable_on_resume, flatten
from .schema import option

FOLDER = "tensorboard"
RECONSTRUCTED = 8  # validation images shown above their reconstructions
PRIOR_DRAWS = 64
RESULTS = ("test_", "val_")  # the figures of metrics.json that the HParams view compares


def require_tensorboard() -> None:
    """Refuse ``logger=tensorboard`` in one line, before any work, when its package is missing."""
    try:
        importlib.import_module("tensorboard")
    except ImportError as exc:
        raise ConfigError(
            f"logger=tensorboard: the tensorboard package is not installed; {pip_install_extra('tensorboard')} or use "
            "logger=none"
        ) from exc


class RunLogger:
    """``logger=none``: the hooks that training calls, doing nothing."""

    def epoch(
        self, vae: VAE, row: Dict[str, float], val: Evaluation, images: torch.Tensor, labels: torch.Tensor
    ) -> None:
        """After each finished (and saved) epoch: ``row`` of history.csv, ``val`` the validation
        pass, ``images`` and ``labels`` the fixed validation split."""

    def finish(self, metrics: Dict[str, Any]) -> None:
        """Once ``metrics.json`` is written."""


NO_LOGGER = RunLogger()


class TensorBoardLogger(RunLogger):
    """``logger=tensorboard``: scalars, images and hparams in ``run_dir/tensorboard/``."""

    def __init__(self, cfg: DictConfig, run_dir: Path) -> None:
        self.folder = run_dir / FOLDER
        self.image_every = cfg.logger.image_every
        self.seed = cfg.seed
        self.hparams = run_hparams(cfg)
        self._writer = None

    def _open(self, purge_step: Optional[int]):
        if self._writer is None:
            from torch.utils.tensorboard import SummaryWriter  # the tensorboard extra: imported only when used

            # purge_step: on resume, TensorBoard discards whatever an interrupted process logged
            # for the epochs that are now trained again.
            self._writer = SummaryWriter(str(self.folder), purge_step=purge_step)
        return self._writer

    def epoch(
        self, vae: VAE, row: Dict[str, float], val: Evaluation, images: torch.Tensor, labels: torch.Tensor
    ) -> None:
        step = row["epoch"]
        writer = self._open(purge_step=step)
        scalars = {**row, "val_kl": val.kl, "val_reconstruction": val.reconstruction}
        for name, value in scalars.items():
            if name != "epoch":
                writer.add_scalar(scalar_tag(name), value, step)
        if step % self.image_every == 0:
            self._images(writer, vae, images[:RECONSTRUCTED], labels[:RECONSTRUCTED], step)
        writer.flush()

    @torch.no_grad()
    def _images(self, writer, vae: VAE, x: torch.Tensor, y: torch.Tensor, step: int) -> None:
        """Inputs above their reconstructions, and the same prior draws every time (seeded)."""
        with torch.random.fork_rng(devices=[x.device] if x.is_cuda else []):
            torch.manual_seed(self.seed)
            samples = figures.prior_draws(vae, PRIOR_DRAWS)
            pairs = torch.cat([x, figures.reconstruct(vae, x, y)])
        writer.add_image("images/reconstructions", _grid(pairs, len(x)), step)
        writer.add_image("images/prior_samples", _grid(samples, math.isqrt(PRIOR_DRAWS)), step)

    def finish(self, metrics: Dict[str, Any]) -> None:
        from torch.utils.tensorboard.summary import hparams

        writer = self._open(purge_step=None)
        results = {
            scalar_tag(key): float(value)
            for key, value in metrics.items()
            if key.startswith(RESULTS) and not key.endswith("iwae_k")  # a sample count, not a result
        }
        # The session's start and end, without an experiment summary: TensorBoard then builds
        # the HParams table from every session it finds, a sweep's jobs together.
        _, session_start, session_end = hparams(self.hparams, results)
        writer.file_writer.add_summary(session_start)
        for tag, value in results.items():
            writer.add_scalar(tag, value, metrics["epochs_completed"])
        writer.file_writer.add_summary(session_end)
        writer.close()
        self._writer = None


def scalar_tag(key: str) -> str:
    """The tag of a figure of ``history.csv`` or ``metrics.json``: ``val_elbo`` -> ``val/elbo``,
    ``test_kl`` -> ``test/kl``; the rest of an epoch (``lr``, ``images_per_second``, ...) under
    ``train/``. TensorBoard groups the tags by what comes before the slash."""
    split, _, name = key.partition("_")
    return f"{split}/{name}" if split in ("train", "val", "test") else f"train/{key}"


def _grid(images: torch.Tensor, per_row: int) -> torch.Tensor:
    return make_grid(images.float().clamp(0, 1).cpu(), nrow=per_row, padding=1, pad_value=1.0)


def run_hparams(cfg: DictConfig) -> Dict[str, Any]:
    """The settings a run keeps for its whole life (those ``resume=true`` may not change), as
    TensorBoard hparams: numbers and strings as they are, true/false and lists as text; null
    settings are left out. TensorBoard keeps the first value of an hparam that it reads in a run,
    which a resumed run with new ``epochs`` or ``eval.*`` would leave stale."""
    settings = flatten(OmegaConf.to_container(cfg, resolve=True, enum_to_str=True))
    return {
        key: _hparam(value) for key, value in settings.items() if value is not None and not changeable_on_resume(key)
    }


def _hparam(value: Any) -> Any:
    if isinstance(value, bool):  # else TensorBoard shows true as 1
        return str(value).lower()
    return value if isinstance(value, (int, float, str)) else str(value)


def make_logger(cfg: DictConfig, run_dir: Path) -> RunLogger:
    """The logger of ``cfg.logger`` for the run in ``run_dir``; it writes nothing until an epoch ends."""
    declared = option("logger", cfg.logger.name)  # schema.OPTIONS: logger=none builds nothing
    return declared.component()(cfg, run_dir) if declared.builds else NO_LOGGER
