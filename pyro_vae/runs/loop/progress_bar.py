"""Lightning's TQDM bar as the run showed it before: ``epoch 3/30`` on the terminal's stderr, gone when
the epoch ends (run.log has the epoch's line), and nothing where stderr is not a terminal."""

import sys

import lightning.pytorch as pl
from lightning.pytorch.callbacks import TQDMProgressBar
from lightning.pytorch.callbacks.progress.tqdm_progress import Tqdm


class EpochBar(TQDMProgressBar):
    def init_train_tqdm(self) -> Tqdm:
        return Tqdm(desc="epoch", leave=False, dynamic_ncols=True, file=sys.stderr, smoothing=0, unit="batch")

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        super().on_train_epoch_start(trainer, module)
        self.train_progress_bar.set_description(f"epoch {trainer.current_epoch + 1}/{trainer.max_epochs}")

    def get_metrics(self, trainer: pl.Trainer, module: pl.LightningModule) -> dict:
        return {}


def shows_progress() -> bool:
    """A bar only on a terminal: in a log file or a test's pipe it would be a line per refresh."""
    return sys.stderr.isatty()
