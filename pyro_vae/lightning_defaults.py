"""What every Lightning Trainer of the project shares (the run's, the feature classifier's): Lightning kept
quiet where it has nothing a user can act on, and its TQDM bar as the loops showed it before: ``epoch
3/30`` on the terminal's stderr, gone when the epoch ends (the log has the epoch's line), and nothing
where stderr is not a terminal."""

import logging
import os
import sys
import warnings
from typing import List

import lightning.pytorch as pl
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm

# Importing Lightning sets PYTORCH_NVML_BASED_CUDA_CHECK=1, which keeps a fork before CUDA starts safe; with it,
# each torch.cuda.is_available() (torch.optim's graph-capture check asks once an optimizer step) loads NVML anew
# on a machine without a GPU driver: 0.05 to 0.3 ms a step, the bulk of what Lightning seemed to cost a step
# (benchmarks/loop_overhead.py). The project forks nothing: its processes are spawned (runs/loop/spawn.py).
os.environ.pop("PYTORCH_NVML_BASED_CUDA_CHECK", None)
# Lightning announces its accelerators and tips at INFO on every process; the project's lines say what trains.
for name in ("lightning.pytorch", "lightning.fabric", "lightning_fabric", "pytorch_lightning"):
    logging.getLogger(name).setLevel(logging.WARNING)
# Lightning 2.6 asks torch's pytree in a way torch 2.14 deprecates; nothing a user can act on.
warnings.filterwarnings("ignore", message=".*isinstance\\(treespec, LeafSpec\\)` is deprecated")


class EpochBar(TQDMProgressBar):
    """``PREFIX 3/30``: the epoch's batches."""

    def __init__(self, prefix: str) -> None:
        super().__init__()
        self.prefix = prefix

    def init_train_tqdm(self) -> Tqdm:
        return Tqdm(desc=self.prefix, leave=False, dynamic_ncols=True, file=sys.stderr, smoothing=0, unit="batch")

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        super().on_train_epoch_start(trainer, module)
        self.train_progress_bar.set_description(f"{self.prefix} {trainer.current_epoch + 1}/{trainer.max_epochs}")

    def get_metrics(self, trainer: pl.Trainer, module: pl.LightningModule) -> dict:
        return {}


def epoch_bars(prefix: str) -> List[pl.Callback]:
    """The bar, only on a terminal: in a log file or a test's pipe it would be a line per refresh."""
    return [EpochBar(prefix)] if sys.stderr.isatty() else []
