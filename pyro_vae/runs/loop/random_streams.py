"""Every process's random streams saved with ``last.pt`` and put back on resume, so that a resumed run
draws what the run never stopped would have drawn (z, dynamic binarization). Lightning's loop draws no
random numbers of its own, so the streams are put back before ``Trainer.fit``."""

import logging
from typing import Any, Dict, List

import lightning.pytorch as pl
import torch

from .processes import Processes, rank_seed

log = logging.getLogger(__name__)
KEY = "random_streams"  # where the module's checkpoint finds them


def rng_state(device: torch.device) -> Dict[str, torch.Tensor]:
    """torch's stream, and the GPU's when the run trains on one."""
    state = {"rng": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda_rng"] = torch.cuda.get_rng_state(device)
    return state


def restore_rng(record: Dict[str, Any], device: torch.device) -> None:
    """Put back the streams that :func:`rng_state` stored in ``record``."""
    torch.set_rng_state(record["rng"])
    if device.type == "cuda" and "cuda_rng" in record:
        torch.cuda.set_rng_state(record["cuda_rng"], device)


def saved_fields(rng_by_rank: List[Dict[str, torch.Tensor]]) -> Dict[str, Any]:
    """The fields of ``last.pt``: rank 0's streams at the top level (as a one-process run saves them),
    every rank's under ``rng_by_rank`` when there are several."""
    return {**rng_by_rank[0], **({"rng_by_rank": rng_by_rank} if len(rng_by_rank) > 1 else {})}


def restore_streams(record: Dict[str, Any], processes: Processes, device: torch.device, seed: int) -> None:
    """Before a resumed run's first step (or its figures, when it had finished): this rank's streams of
    ``record`` (``last.pt``). Resumed on another number of processes, the streams are new ones, seeded
    from the seed and the epoch."""
    saved_by_rank = record.get("rng_by_rank") or [record]
    if len(saved_by_rank) == processes.world_size:
        restore_rng(saved_by_rank[processes.rank], device)
        return
    torch.manual_seed(rank_seed(seed + len(record["history"]), processes.rank))
    if processes.writes:
        log.warning(
            "resuming on %d processes a run saved on %d: the order of the data and the global batches are "
            "those of the saved run, the random draws are new ones",
            processes.world_size,
            len(saved_by_rank),
        )


class RandomStreams(pl.Callback):
    """Gathers every rank's streams into the checkpoint being saved (``last.pt``)."""

    def __init__(self, processes: Processes, device: torch.device) -> None:
        self.processes, self.device = processes, device

    def on_save_checkpoint(self, trainer: pl.Trainer, module: pl.LightningModule, checkpoint: Dict[str, Any]) -> None:
        checkpoint[KEY] = saved_fields(self.processes.gather_objects(rng_state(self.device)))
