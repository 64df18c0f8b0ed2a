"""The training batches of the epoch Lightning is in, as indices: the step makes the batch."""

from typing import Callable, Iterator

import torch

from ...data.batches import MinibatchSampler


class EpochBatches:
    """Epoch ``epoch()``'s batch indices of ``sampler`` for this process: the order depends on the seed and
    the epoch alone, so a resumed run sees the batches it would have seen. Indices, not images: Lightning
    reads a batch ahead, and a batch's dynamic binarization must draw after the previous step's draws."""

    def __init__(self, sampler: MinibatchSampler, seed: int, epoch: Callable[[], int], rank: int, world_size: int):
        self.sampler, self.seed, self.epoch = sampler, seed, epoch
        self.rank, self.world_size = rank, world_size

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return self.sampler.epoch_indices(self.epoch(), self.seed, self.rank, self.world_size)
