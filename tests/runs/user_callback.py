"""A user's own Lightning callback and logger, in a module of their own, for tests/runs/test_user_callbacks.py."""

import json

import lightning.pytorch as pl
from lightning.pytorch.loggers import Logger


class RecordEpochs(pl.Callback):
    """Writes the epochs it saw end, and the validation ELBO the run logged last, into ``path``."""

    def __init__(self, path: str) -> None:
        self.path, self.seen = path, []

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        self.seen.append(trainer.current_epoch + 1)

    def on_fit_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        with open(self.path, "w") as file:
            json.dump({"epochs": self.seen, "val_elbo": float(trainer.callback_metrics["val_elbo"])}, file)


class NotACallback:
    def __init__(self, path: str = "") -> None:
        self.path = path


class RecordingLogger(Logger):
    """A user's own Lightning logger: keeps what it is given in memory (``RecordingLogger.seen``)."""

    seen: list = []

    def __init__(self, save_dir: str, name: str) -> None:
        super().__init__()
        self.save_dir_given = save_dir

    @property
    def name(self) -> str:
        return "recording"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        RecordingLogger.seen.append(("hparams", dict(params)))

    def log_metrics(self, metrics, step=None) -> None:
        RecordingLogger.seen.append(("metrics", step, dict(metrics)))
