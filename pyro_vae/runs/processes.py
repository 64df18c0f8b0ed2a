"""One training run over several processes, by Lightning Fabric: DDP, its launchers, SLURM and
mixed precision, around the project's own loop (``trainer.*`` in conf/config.yaml). This module
joins the processes' figures (:mod:`.trainer_settings` reads the settings, without torch);
``fabric_launch`` starts them.

Fabric rather than bare ``torch.distributed``: it starts the processes (``ddp_spawn``), reads the
ranks that ``srun`` or ``torchrun`` gives them (``ddp``), wraps the loss module in
``DistributedDataParallel`` and runs its forward under autocast, all without a launcher or a
gradient exchange of the project's own. One process with float32 (the default) uses none of it.

:class:`Processes` is what the loop asks of the group: which shard of the data is this
process's, and the sums and concatenations that make every figure the whole data set's.
"""

from dataclasses import dataclass
from typing import Any, Dict, List, Optional

import numpy as np
import torch

# What trainer.* asks for, read without torch (run.py and settings.validate ask it before torch is loaded).
from .trainer_settings import (  # noqa: F401
    SINGLE_PRECISION,
    follows_rank_zero,
    leave_the_log_to_rank_zero,
    started_outside,
    strategy,
    uses_fabric,
    world_size,
)


@dataclass
class Processes:
    """This process's place in the run: ``rank`` of ``world_size``, and the Fabric that joins them
    (None for one float32 process). Rank 0 writes every file."""

    rank: int = 0
    world_size: int = 1
    fabric: Any = None

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
        stacked = torch.tensor(list(values.values()), dtype=torch.float64, device=self.fabric.device)
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
            self.fabric.barrier()

    def gather_objects(self, value: Any) -> List[Any]:
        """Every process's ``value`` (picklable), in rank order."""
        if self.world_size == 1:
            return [value]
        gathered: List[Any] = [None] * self.world_size
        torch.distributed.all_gather_object(gathered, value)
        return gathered


ONE_PROCESS = Processes()


def rank_seed(seed: int, rank: int) -> int:
    """The seed of process ``rank``'s random draws (z, dynamic binarization): ``seed`` itself on rank 0,
    so that one process draws what a single-process run draws."""
    if rank == 0:
        return seed
    return int(np.random.SeedSequence([seed, rank]).generate_state(1, np.uint32)[0])
