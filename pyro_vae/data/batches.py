"""Shuffled minibatches drawn by indexing a tensor already on the device (no per-item pipeline)."""
from typing import Callable, Iterator

import torch


class MinibatchSampler:
    """Yields ``len(self)`` full batches per epoch from a fresh permutation; the ragged tail is dropped."""

    def __init__(self, source: torch.Tensor, batch_size: int, transform: Callable[[torch.Tensor], torch.Tensor]) -> None:
        self.source = source
        self.batch_size = batch_size
        self.transform = transform

    def __len__(self) -> int:
        return len(self.source) // self.batch_size

    def __iter__(self) -> Iterator[torch.Tensor]:
        order = torch.randperm(len(self.source), device=self.source.device)
        for step in range(len(self)):
            index = order[step * self.batch_size : (step + 1) * self.batch_size]
            yield self.transform(self.source[index])
