"""Shuffled minibatches drawn by indexing tensors already on the device (no per-item pipeline)."""

from typing import Callable, Iterator, Tuple

import numpy as np
import torch


class MinibatchSampler:
    """Yields ``len(self)`` full (images, labels) batches per epoch from a fresh permutation;
    the ragged tail is dropped."""

    def __init__(
        self,
        source: torch.Tensor,
        labels: torch.Tensor,
        batch_size: int,
        transform: Callable[[torch.Tensor], torch.Tensor],
    ) -> None:
        self.source = source
        self.labels = labels
        self.batch_size = batch_size
        self.transform = transform

    def __len__(self) -> int:
        return len(self.source) // self.batch_size

    def epoch(
        self, number: int, seed: int, rank: int = 0, world_size: int = 1
    ) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        """Epoch ``number`` in an order drawn from ``seed`` and ``number`` alone, split for data parallelism:
        process ``rank`` of ``world_size`` takes its contiguous part of every global batch of ``batch_size``,
        so the processes cover the epoch once, in global batches that do not depend on their number."""
        return map(self.batch, self.epoch_indices(number, seed, rank, world_size))

    def epoch_indices(self, number: int, seed: int, rank: int = 0, world_size: int = 1) -> Iterator[torch.Tensor]:
        """The indices of :meth:`epoch`'s batches: a loop that reads a batch ahead (Lightning's) takes these
        and makes each batch with :meth:`batch` in its step, so that dynamic binarization draws from the
        global stream in the order the steps do."""
        generator = torch.Generator().manual_seed(int(np.random.SeedSequence([seed, number]).generate_state(1)[0]))
        order = torch.randperm(len(self.source), generator=generator).to(self.source.device)
        local = self.batch_size // world_size
        return self.indices(order, rank * local, local)

    def batch(self, index: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """The (images, labels) at ``index``, the images transformed."""
        return self.transform(self.source[index]), self.labels[index]

    def indices(self, order: torch.Tensor, offset: int, size: int) -> Iterator[torch.Tensor]:
        """Per step, the ``size`` indices of ``order`` from ``offset`` within the step's global batch."""
        for step in range(len(self)):
            start = step * self.batch_size + offset
            yield order[start : start + size]


class ShuffledIndices:
    """The batch indices of one epoch of ``sampler``, in an order drawn from torch's global stream when the
    first batch is read (after the previous epoch's work, not when a loop makes the iterator), for a loop
    that reads a batch ahead and makes the batch in its step (Lightning's: the GAN, the feature classifier)."""

    def __init__(self, sampler: MinibatchSampler) -> None:
        self.sampler = sampler

    def __len__(self) -> int:
        return len(self.sampler)

    def __iter__(self) -> Iterator[torch.Tensor]:
        source = self.sampler.source
        # The loops before Lightning's drew two orders an epoch and used the second (``tqdm.auto`` made an
        # iterator of the sampler, unused, before the one it iterated); drawing both keeps their figures.
        torch.randperm(len(source), device=source.device)
        order = torch.randperm(len(source), device=source.device)
        yield from self.sampler.indices(order, 0, self.sampler.batch_size)
