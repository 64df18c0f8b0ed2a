"""What a run carries over between epochs and across a resume: its history, one row per epoch."""

import math
from dataclasses import dataclass, field
from typing import Dict, List, Optional


@dataclass
class TrainingState:
    """The rows of ``history.csv`` so far, and what the divergence check needs."""

    history: List[Dict[str, float]] = field(default_factory=list)
    # The validation ELBO before the first step: an epoch that ends below it has diverged.
    untrained_val_elbo: Optional[float] = None
    # Why training stopped early, diverged; None while it has not.
    divergence: Optional[str] = None

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
