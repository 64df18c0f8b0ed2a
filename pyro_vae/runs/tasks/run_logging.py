"""What the run's loggers get beyond the loop's scalars. With ``logger=tensorboard``: every
``logger.image_every`` epochs, validation images above their reconstructions and decoded prior draws;
at the end, the run's settings beside its results in TensorBoard's HParams view, which lays the jobs of a
sweep side by side (it shows the first five metrics by name: the test figures). Images are drawn under a
forked, seeded RNG: watching a run never changes its random numbers. Other loggers get the settings and
the results at the end."""

import math
from typing import Any, Dict, List

import lightning.pytorch as pl
import torch
from lightning.pytorch.loggers import Logger
from omegaconf import DictConfig
from torchvision.utils import make_grid

from ..loop.loggers import RunTensorBoardLogger, results, run_hparams
from . import figures

RECONSTRUCTED = 8  # validation images shown above their reconstructions
PRIOR_DRAWS = 64


class TensorBoardImages(pl.Callback):
    """Reconstructions and prior draws every ``image_every`` epochs, into the run's TensorBoard logger."""

    def __init__(self, image_every: int, seed: int) -> None:
        self.image_every, self.seed = image_every, seed

    @torch.no_grad()
    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        epoch = trainer.current_epoch + 1
        boards = [logger for logger in trainer.loggers if isinstance(logger, RunTensorBoardLogger)]
        if not boards or epoch % self.image_every or trainer.global_rank:
            return
        vae, x, y = module.vae, module.val_images[:RECONSTRUCTED], module.val_labels[:RECONSTRUCTED]
        with torch.random.fork_rng(devices=[x.device] if x.is_cuda else []):
            torch.manual_seed(self.seed)
            samples = figures.prior_draws(vae, PRIOR_DRAWS)
            pairs = torch.cat([x, figures.reconstruct(vae, x, y)])
        writer = boards[0].experiment
        writer.add_image("images/reconstructions", _grid(pairs, len(x)), epoch)
        writer.add_image("images/prior_samples", _grid(samples, math.isqrt(PRIOR_DRAWS)), epoch)


def _grid(images: torch.Tensor, per_row: int) -> torch.Tensor:
    return make_grid(images.float().clamp(0, 1).cpu(), nrow=per_row, padding=1, pad_value=1.0)


def write_session(writer, hparams: Dict[str, Any], results: Dict[str, float], step: int) -> None:
    """The session's start and end, without an experiment summary: TensorBoard then builds the HParams
    table from every session it finds, a sweep's jobs together."""
    from torch.utils.tensorboard.summary import hparams as hparams_summaries

    _, session_start, session_end = hparams_summaries(hparams, results)
    writer.file_writer.add_summary(session_start)
    for tag, value in results.items():
        writer.add_scalar(tag, value, step)
    writer.file_writer.add_summary(session_end)


def finish_logging(loggers: List[Logger], cfg: DictConfig, metrics: Dict[str, Any]) -> None:
    """Once ``metrics.json`` is written: the settings beside the results, at the last epoch's step."""
    for logger in loggers:
        if isinstance(logger, RunTensorBoardLogger):
            write_session(logger.experiment, run_hparams(cfg), results(metrics), metrics["epochs_completed"])
            logger.close()
        else:
            logger.log_hyperparams(run_hparams(cfg))
            logger.log_metrics(results(metrics), step=metrics["epochs_completed"])
            logger.finalize("success")


def logger_callbacks(cfg: DictConfig) -> List[pl.Callback]:
    """What ``cfg.logger`` draws beside the figures the loop logs: TensorBoard's images."""
    return [TensorBoardImages(cfg.logger.image_every, cfg.seed)] if cfg.logger.name == "tensorboard" else []
