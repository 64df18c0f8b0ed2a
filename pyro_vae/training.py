"""The SVI loop: epochs over on-device minibatches, validation, checkpoints and resuming."""
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List

import torch
from omegaconf import DictConfig
from pyro.infer import SVI
from tqdm.auto import tqdm

from . import checkpoints
from .data import DataSplits, PixelTransform
from .data.batches import MinibatchSampler
from .errors import ConfigError, DivergenceError
from .evaluation import evaluate
from .objectives import make_objective
from .optimizers import make_optimizer
from .vae import VAE

log = logging.getLogger(__name__)


@dataclass
class TrainingState:
    """What carries over between epochs and across a resume."""

    history: List[Dict[str, float]] = field(default_factory=list)

    @property
    def epochs_completed(self) -> int:
        return len(self.history)

    @property
    def best_val_elbo(self) -> float:
        return max((row["val_elbo"] for row in self.history), default=-math.inf)

    @property
    def train_seconds(self) -> float:
        return sum(row["epoch_seconds"] for row in self.history)

    @property
    def images_per_second(self) -> float:
        images = sum(row["images_per_second"] * row["epoch_seconds"] for row in self.history)
        return images / self.train_seconds


def _resume(vae: VAE, optimizer, run_dir: Path, device: torch.device) -> TrainingState:
    record = checkpoints.read(run_dir / checkpoints.LAST, device)
    try:
        vae.load_state_dict(record["state_dict"])
    except RuntimeError as exc:
        raise ConfigError(
            f"resume=true: {run_dir / checkpoints.LAST} holds a different network; resume with the settings of that run"
        ) from exc
    optimizer.set_state(record["optimizer"])
    torch.set_rng_state(record["rng"])
    if device.type == "cuda" and "cuda_rng" in record:
        torch.cuda.set_rng_state(record["cuda_rng"], device)
    log.info("resuming %s after epoch %d", run_dir, len(record["history"]))
    return TrainingState(history=list(record["history"]))


def _refuse_overwrite(run_dir: Path) -> None:
    if (run_dir / checkpoints.LAST).exists():
        raise ConfigError(
            f"{run_dir} already holds a run ({checkpoints.LAST}); pass resume=true to continue it or choose another hydra.run.dir"
        )


def fit(vae: VAE, data: DataSplits, pixels: PixelTransform, cfg: DictConfig, run_dir: Path) -> TrainingState:
    """Train ``vae`` by SVI for ``cfg.epochs`` epochs, writing ``checkpoint.pt`` and ``last.pt`` each epoch."""
    device = data.train.images.device
    num_data = len(data.train)
    if cfg.batch_size > num_data:
        raise ConfigError(f"batch_size={cfg.batch_size} exceeds the {num_data} training images; lower it or raise data.train_size")
    sampler = MinibatchSampler(pixels.training_source(data.train.images), cfg.batch_size, pixels.training_batch)
    val_images = pixels.fixed(data.val.images, "val")

    objective = make_objective(cfg.elbo)
    images_per_loss = objective.images_per_loss(cfg.batch_size, num_data)
    optimizer = make_optimizer(cfg.optimizer, cfg.lr, images_per_loss)
    svi = SVI(vae.model, vae.guide, optimizer, loss=objective.elbo)

    if cfg.resume:
        state = _resume(vae, optimizer, run_dir, device)
    else:
        _refuse_overwrite(run_dir)
        state = TrainingState()

    for epoch in range(state.epochs_completed + 1, cfg.epochs + 1):
        start = time.perf_counter()
        loss_total = 0.0
        progress = tqdm(sampler, desc=f"epoch {epoch}/{cfg.epochs}", leave=False, disable=None, unit="batch")
        for step, x in enumerate(progress):
            loss = svi.step(x, num_data=num_data)
            if not math.isfinite(loss):
                raise DivergenceError(
                    f"training loss became {loss} at epoch {epoch}, step {step}; lower lr (now {cfg.lr}) "
                    f"or use optimizer=clipped_adam ({run_dir / checkpoints.LAST} keeps the last finished epoch)"
                )
            loss_total += loss / images_per_loss
        seconds = time.perf_counter() - start
        images = len(sampler) * cfg.batch_size
        row = {
            "epoch": epoch,
            "train_elbo": -loss_total / len(sampler),
            "val_elbo": evaluate(vae, val_images, num_samples=1, chunk_size=cfg.eval.chunk_size).elbo,
            "epoch_seconds": seconds,
            "images_per_second": images / seconds,
        }
        improved = row["val_elbo"] > state.best_val_elbo
        state.history.append(row)
        _save_epoch(vae, optimizer, cfg, data, pixels, state, run_dir, improved)
        log.info(
            "epoch %d/%d  train ELBO %.2f  val ELBO %.2f%s  (%.1f s, %.0f images/s)",
            epoch, cfg.epochs, row["train_elbo"], row["val_elbo"], "  best" if improved else "", seconds, row["images_per_second"],
        )
    return state


def _save_epoch(vae, optimizer, cfg, data, pixels, state: TrainingState, run_dir: Path, improved: bool) -> None:
    record = checkpoints.model_record(vae, cfg, data.image_shape)
    if improved:
        checkpoints.save(run_dir / checkpoints.BEST, {**record, "epoch": state.epochs_completed, "val_elbo": state.best_val_elbo})
    resume = {"optimizer": optimizer.get_state(), "history": state.history, "rng": torch.get_rng_state()}
    if data.train.images.is_cuda:
        resume["cuda_rng"] = torch.cuda.get_rng_state(data.train.images.device)
    checkpoints.save(run_dir / checkpoints.LAST, {**record, **resume})
