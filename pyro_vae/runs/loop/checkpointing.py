"""``checkpoint.pt`` and ``last.pt`` by Lightning's ``ModelCheckpoint``, written durably.

The LightningModule says what each file of the run directory holds (``checkpoint["pyro_vae"]``, by
file name: tensors and plain containers that ``torch.load(weights_only=True)`` reads, the format of
every earlier run); :class:`DurableCheckpointIO` writes it atomically and fsyncs it and its folder.
:class:`RunCheckpoint` holds SIGINT and SIGTERM back while it writes both files, so that they always
hold epochs of one run, and starts a resumed run from the best validation ELBO of its history.
"""

import logging
from pathlib import Path
from typing import Any, Callable, ContextManager, Dict, List, Optional

import lightning.pytorch as pl
import torch
from lightning.fabric.plugins import CheckpointIO
from lightning.pytorch.callbacks import ModelCheckpoint

from ...atomic import save_torch
from ...errors import ConfigError
from ..directory.checkpoints import read
from ..directory.run_directory import BEST, LAST
from .state import TrainingState

log = logging.getLogger(__name__)

RECORDS = "pyro_vae"  # the key of a Lightning checkpoint under which the module puts each file's record


class DurableCheckpointIO(CheckpointIO):
    """Writes the record the module gave for the file's name, nothing of Lightning's own state: a crash
    leaves the previous file or the new one, never a torn one."""

    def save_checkpoint(self, checkpoint: Dict[str, Any], path, storage_options: Optional[Any] = None) -> None:
        save_torch(checkpoint[RECORDS][Path(path).name], Path(path))

    def load_checkpoint(self, path, map_location: Optional[Any] = None, weights_only: Optional[bool] = None):
        raise NotImplementedError("pyro-vae resumes from its own records (resume=true), not Trainer.fit(ckpt_path=)")

    def remove_checkpoint(self, path) -> None:
        Path(path).unlink(missing_ok=True)


class RunCheckpoint(ModelCheckpoint):
    """``last.pt`` after every epoch; ``checkpoint.pt`` whenever ``monitor`` beats its best (higher, or lower with
    ``mode="min"``), or after every epoch too (a GAN, which has no validation figure)."""

    FILE_EXTENSION = Path(BEST).suffix
    CHECKPOINT_NAME_LAST = Path(LAST).stem

    def __init__(
        self, run_dir: Path, saving: Callable[[], ContextManager[None]], monitor: Optional[str], mode: str = "max"
    ) -> None:
        super().__init__(
            dirpath=run_dir,
            filename=Path(BEST).stem,
            monitor=monitor,
            mode=mode,
            save_top_k=1,
            save_last=True,
            save_on_train_epoch_end=True,
            enable_version_counter=False,
            auto_insert_metric_name=False,
        )
        self.saving = saving

    def start_from(self, history: List[Dict[str, float]]) -> None:
        """A resumed run's best so far, so that ``checkpoint.pt`` is replaced only by a better epoch."""
        scores = [row[self.monitor] for row in history if self.monitor is not None]
        if not scores:
            return
        best = torch.tensor(max(scores) if self.mode == "max" else min(scores), dtype=torch.float64)
        path = str(Path(self.dirpath) / BEST)
        self.best_k_models = {path: best}
        self.best_model_path, self.best_model_score = path, best
        self.kth_best_model_path, self.kth_value = path, best

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        with self.saving():
            super().on_train_epoch_end(trainer, module)

    def _should_skip_saving_checkpoint(self, trainer: pl.Trainer) -> bool:
        return False  # every epoch is saved, including one that the loop ran again after a resume


def resume_refusal(run_dir: Path) -> ConfigError:
    """``last.pt`` of ``run_dir`` does not fit the model or optimizer that the settings build."""
    return ConfigError(
        f"resume=true: {run_dir / LAST} holds a different network or optimizer; resume with the settings of that run"
    )


def resume(module: pl.LightningModule, model: torch.nn.Module, run_dir: Path, device: torch.device) -> Dict[str, Any]:
    """A resumed run's ``last.pt``, its weights loaded into ``model`` and its history into ``module.state``;
    the record stays as ``module.resumed`` for the optimizers' states, which the Trainer builds later."""
    record = read(run_dir / LAST, device)
    try:
        model.load_state_dict(record["state_dict"])
    except (RuntimeError, ValueError, KeyError) as exc:
        raise resume_refusal(run_dir) from exc
    module.resumed = record
    module.state = TrainingState(history=list(record["history"]), untrained_val_elbo=record.get("untrained_val_elbo"))
    log.info("resuming %s after epoch %d", run_dir, module.state.epochs_completed)
    return record
