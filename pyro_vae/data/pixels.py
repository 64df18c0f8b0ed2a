"""How uint8 pixels become the values the likelihood scores.

Training batches get a fresh random view every time they are drawn (dynamic binarization,
dequantization noise); validation and test sets get one fixed, seeded view so that their
figures are comparable between epochs and runs.
"""
from typing import Optional

import torch

from ..errors import ConfigError

MODES = ("dynamic", "static", "none")

# Each fixed view gets its own seed offset, so no two of them share a random draw.
_VIEW_SALTS = {"train": 1, "val": 2, "test": 3, "figures": 4}


class PixelTransform:
    """Maps uint8 images to float observations according to ``data.binarize``."""

    def __init__(self, binarize: str, seed: int) -> None:
        if binarize not in MODES:
            raise ConfigError(f"data.binarize={binarize}: choose one of {', '.join(MODES)}")
        self.binarize = binarize
        self.seed = seed

    @property
    def is_binary(self) -> bool:
        return self.binarize != "none"

    def _view(self, images: torch.Tensor, generator: Optional[torch.Generator]) -> torch.Tensor:
        intensities = images.float().div_(255.0)
        if self.binarize == "none":
            return intensities
        return torch.bernoulli(intensities, generator=generator)

    def fixed(self, images: torch.Tensor, view: str) -> torch.Tensor:
        """One reproducible view of ``images`` for ``view`` (train, val, test or figures), seeded by ``seed``."""
        generator = torch.Generator(device=images.device).manual_seed(self.seed * 1_000_003 + _VIEW_SALTS[view])
        return self._view(images, generator)

    def training_source(self, images: torch.Tensor) -> torch.Tensor:
        """What the minibatch sampler indexes: precomputed once for static binarization, raw otherwise."""
        return self.fixed(images, "train") if self.binarize == "static" else images

    def training_batch(self, source_batch: torch.Tensor) -> torch.Tensor:
        """A fresh view of a minibatch drawn from :meth:`training_source`."""
        if self.binarize == "static":
            return source_batch
        return self._view(source_batch, generator=None)
