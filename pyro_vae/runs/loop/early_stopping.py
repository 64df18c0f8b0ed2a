"""``early_stopping.patience``: Lightning's ``EarlyStopping`` on the validation ELBO, by the rule the
plateau schedule uses (an epoch improves when it beats the best by more than ``threshold`` nats)."""

import logging
from typing import Dict, List

import lightning.pytorch as pl
import torch
from lightning.pytorch.callbacks import EarlyStopping

log = logging.getLogger(__name__)


class StopWithoutImprovement(EarlyStopping):
    """Stops after ``patience`` epochs without a better validation ELBO; a resumed run counts from its history."""

    def __init__(self, patience: int, threshold: float) -> None:
        super().__init__(
            monitor="val_elbo", mode="max", patience=patience, min_delta=threshold, check_on_train_epoch_end=True
        )

    def start_from(self, history: List[Dict[str, float]]) -> None:
        for row in history:
            value = torch.tensor(row["val_elbo"], dtype=torch.float64)
            if value - self.min_delta > self.best_score:
                self.best_score, self.wait_count = value, 0
            else:
                self.wait_count += 1

    @property
    def exhausted(self) -> bool:
        """Whether a resumed run had already stopped."""
        return self.wait_count >= self.patience

    def on_train_epoch_end(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        super().on_train_epoch_end(trainer, module)
        if trainer.should_stop and trainer.current_epoch + 1 < trainer.max_epochs:
            log.info("early stopping: no better validation ELBO in the last %d epochs", self.patience)
