"""A user's own Lightning callback, in a module of its own, for tests/runs/test_user_callbacks.py: it
writes the epochs it saw end and the validation ELBO the run logged for each into ``path``."""

import json

import lightning.pytorch as pl


class RecordEpochs(pl.Callback):
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
