"""The divergence check: a non-finite training loss (read on the host every ``LOSS_CHECK_EVERY`` steps,
so a GPU is not made to wait within an epoch) or a validation ELBO below the untrained model's
stops the run with one line naming the settings that likely caused it. The epoch is not saved."""

import math
from pathlib import Path
from typing import Optional

import lightning.pytorch as pl
from omegaconf import DictConfig

from ...errors import DivergenceError
from ..directory import checkpoints

LOSS_CHECK_EVERY = 100
# optimizer.eps below torch's default lets Adam and RMSprop divide by a vanishing second moment.
TINY_EPS = 1e-8


class DivergenceCheck(pl.Callback):
    """Raises :class:`DivergenceError` when the mean over the processes of the epoch's summed loss
    (``module.loss_total``) stops being finite; every process checks alike, at the same steps."""

    def __init__(self, cfg: DictConfig, run_dir: Path) -> None:
        self.cfg, self.run_dir = cfg, run_dir
        self.window_start = 0

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.window_start = 0

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs, batch, index: int) -> None:
        if not check_due(trainer, index):
            return
        mean_total = module.processes.mean(module.loss_total)
        if not mean_total.isfinite():
            epoch = trainer.current_epoch + 1
            reason = f"training loss became {mean_total.item()} at epoch {epoch}, steps {self.window_start}-{index}"
            raise DivergenceError(divergence_message(reason, self.cfg, self.run_dir))
        self.window_start = index + 1


def check_due(trainer: pl.Trainer, index: int) -> bool:
    """Whether step ``index`` of the epoch reads the host: every ``LOSS_CHECK_EVERY`` steps, and the last."""
    return (index + 1) % LOSS_CHECK_EVERY == 0 or index + 1 == trainer.num_training_batches


def divergence_message(reason: str, cfg: DictConfig, run_dir: Path) -> str:
    """``reason`` with the settings that likely caused it, and the saved epoch where there is one."""
    eps = cfg.optimizer.get("eps")
    causes = [f"lower lr (now {cfg.lr})"]
    if eps is not None and eps < TINY_EPS:
        causes.append(f"raise optimizer.eps (now {eps}; {TINY_EPS:g} is torch's default)")
    if cfg.optimizer.name != "clipped_adam":
        causes.append("use optimizer=clipped_adam")
    last = run_dir / checkpoints.LAST
    saved = f"; {last} keeps epoch {len(checkpoints.read(last)['history'])}" if last.is_file() else ""
    advice = f"{', '.join(causes[:-1])} or {causes[-1]}" if len(causes) > 1 else causes[0]
    return f"diverged: {reason}; {advice}{saved}"


def validation_divergence(val_elbo: float, untrained: Optional[float], epoch: int) -> Optional[str]:
    """Why an epoch whose validation ELBO is ``val_elbo`` has diverged, or None."""
    if not math.isfinite(val_elbo):
        return f"validation ELBO became {val_elbo} at epoch {epoch}"
    if untrained is not None and val_elbo < untrained:
        return f"validation ELBO {val_elbo:.4g} at epoch {epoch} is below the untrained model's {untrained:.2f}"
    return None
