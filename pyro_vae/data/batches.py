"""Shuffled minibatches drawn by indexing tensors already on the device (no per-item pipeline)."""

from typing import Callable, Iterator, Tuple

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

    def __iter__(self) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
        order = torch.randperm(len(self.source), device=self.source.device)
        for step in range(len(self)):
            index = order[step * self.batch_size : (step + 1) * self.batch_size]
            yield self.transform(self.source[index]), self.labels[index]
