"""threads=null as a callback: torch's threads follow the cores other processes leave idle
(:class:`~pyro_vae.runs.configuration.cores.ThreadsFollowLoad`), re-read every ``LOSS_CHECK_EVERY`` steps."""

import lightning.pytorch as pl

from ..configuration.cores import ThreadsFollowLoad
from .divergence import check_due


class FollowIdleCores(pl.Callback):
    def __init__(self, threads: ThreadsFollowLoad) -> None:
        self.threads = threads

    def on_train_batch_end(self, trainer: pl.Trainer, module: pl.LightningModule, outputs, batch, index: int) -> None:
        if check_due(trainer, index):
            self.threads.update()
