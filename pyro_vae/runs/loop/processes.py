"""The processes of one training run (``trainer.*``): which one this is, and the sums and
concatenations that make every evaluation figure the whole data set's.

Lightning's Trainer joins the processes (DDP over gloo or nccl) and averages the gradients;
:mod:`.spawn` starts them for ``trainer.strategy=ddp_spawn``, and srun or torchrun do for ``ddp``.
:class:`Processes` is what the run asks of the group beside training: which shard of an evaluation
split is this process's, and the collectives over ``torch.distributed`` that join the shards' figures.
"""

import os
from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import torch
from omegaconf import DictConfig

# What trainer.* asks for, read without torch (run.py and settings.validate ask it before torch is loaded).
from ..configuration.trainer_settings import (  # noqa: F401
    SINGLE_PRECISION,
    follows_rank_zero,
    leave_the_log_to_rank_zero,
    started_outside,
    strategy,
    world_size,
)


@dataclass
class Processes:
    """This process's place in the run: ``rank`` of ``world_size``, on ``device``. Rank 0 writes every file."""

    rank: int = 0
    world_size: int = 1
    device: Optional[torch.device] = None

    @property
    def writes(self) -> bool:
        return self.rank == 0

    def shard(self, tensor: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """This process's contiguous part of ``tensor`` (images or labels of an evaluation split)."""
        if tensor is None or self.world_size == 1:
            return tensor
        return torch.tensor_split(tensor, self.world_size)[self.rank]

    def sum(self, values: Dict[str, float]) -> Dict[str, float]:
        """``values`` summed over the processes, in float64."""
        if self.world_size == 1:
            return values
        stacked = torch.tensor(list(values.values()), dtype=torch.float64, device=self.device)
        torch.distributed.all_reduce(stacked)
        return dict(zip(values, stacked.tolist()))

    def mean(self, tensor: torch.Tensor) -> torch.Tensor:
        """``tensor``'s mean over the processes."""
        if self.world_size == 1:
            return tensor
        summed = tensor.clone()
        torch.distributed.all_reduce(summed)
        return summed / self.world_size

    def cat(self, tensor: torch.Tensor) -> torch.Tensor:
        """The processes' ``tensor`` (rows of their shards, which may differ by one) joined in rank order."""
        if self.world_size == 1:
            return tensor
        counts = [int(count) for count in self._gather(torch.tensor([len(tensor)], device=tensor.device))]
        padded = tensor.new_zeros(max(counts), *tensor.shape[1:])
        padded[: len(tensor)] = tensor
        return torch.cat([rows[:count] for rows, count in zip(self._gather(padded), counts)])

    def _gather(self, tensor: torch.Tensor) -> List[torch.Tensor]:
        gathered = [torch.empty_like(tensor) for _ in range(self.world_size)]
        torch.distributed.all_gather(gathered, tensor)
        return gathered

    def barrier(self) -> None:
        """Wait until every process is here."""
        if self.world_size > 1:
            torch.distributed.barrier()

    def gather_objects(self, value: Any) -> List[Any]:
        """Every process's ``value`` (picklable), in rank order."""
        if self.world_size == 1:
            return [value]
        gathered: List[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(gathered, value)
        return gathered


ONE_PROCESS = Processes()


def external_processes(trainer: DictConfig, device: torch.device) -> Processes:
    """This process's place among those srun or torchrun started (``trainer.strategy=ddp``)."""
    rank = int(os.environ.get("RANK", os.environ.get("SLURM_PROCID", "0")))
    local = int(os.environ.get("LOCAL_RANK", os.environ.get("SLURM_LOCALID", "0")))
    return Processes(rank, world_size(trainer), on_local_device(device, local))


def on_local_device(device: torch.device, local_rank: int) -> torch.device:
    """The device of the process ``local_rank`` of its node: its own GPU, or the CPU."""
    return torch.device("cuda", local_rank) if device.type == "cuda" else device


def rank_seed(seed: int, rank: int) -> int:
    """The seed of process ``rank``'s random draws (z, dynamic binarization): ``seed`` itself on rank 0,
    so that one process draws what a single-process run draws."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, np.uint32)[0])
