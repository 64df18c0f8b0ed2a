"""The data transform: how uint8 pixels become the values a likelihood scores.

A likelihood declares what it observes (:class:`Observation`), and the transform makes that view:
Bernoulli draws of the grey levels (``dataset.binarize``: ``dynamic`` redraws every batch,
``static`` draws once); the grey levels dequantized, (x + u) / 256 with u ~ U[0, 1), for a density
on [0, 1] that bounds the discrete likelihood; or the grey levels as they are, x / 255, for a
probability mass on them. Training batches get a fresh random view each time they are drawn;
validation and test sets get one fixed view, seeded per split, so that their figures compare
between epochs and runs.
"""

import torch

from ..errors import ConfigError
from ..setting_types import Binarization, Choice
from .batches import MinibatchSampler
from .splits import LabelledImages

LEVELS = 256  # grey levels of an 8-bit image


class Observation(Choice):
    """The view of the 8-bit pixels that a likelihood scores."""

    binary = "binary"  # Bernoulli draws of the grey levels
    dequantized = "dequantized"  # (k + u) / 256: a density on [0, 1]
    grey_levels = "grey_levels"  # k / 255: a mass on the 256 levels


# Each fixed view gets its own seed offset, so no two of them share a random draw.
_SPLIT_SALTS = {"train": 1, "val": 2, "test": 3, "figures": 4}


def binarization_mismatch(binarize: str, observes: Observation, likelihood: str) -> "str | None":
    """Why ``dataset.binarize=binarize`` cannot feed ``likelihood`` (which observes ``observes``), or None."""
    if observes != Observation.binary and binarize != Binarization.none:
        return f"dataset.binarize={binarize}: likelihood={likelihood} models grey levels; set dataset.binarize=none"
    if observes == Observation.binary and binarize == Binarization.none:
        return (
            f"dataset.binarize=none: likelihood={likelihood} needs binary pixels; set dataset.binarize=dynamic "
            "or static, or use likelihood=gaussian or discretized_logistic for grey levels"
        )
    return None


class PixelTransform:
    """Maps uint8 images to the float observations of ``observes``, the view a likelihood scores."""

    def __init__(self, binarize: str, seed: int, observes: Observation, likelihood: str = "the likelihood") -> None:
        if binarize not in Binarization.values():
            raise ConfigError(f"dataset.binarize={binarize}: choose one of {', '.join(Binarization.values())}")
        mismatch = binarization_mismatch(binarize, observes, likelihood)
        if mismatch:
            raise ConfigError(mismatch)
        self.observes = Observation(observes)
        self.binarize = Binarization(binarize)
        self.seed = seed

    def _view(self, images: torch.Tensor, generator) -> torch.Tensor:
        if self.observes == Observation.grey_levels:
            return images.float().div_(LEVELS - 1)
        uniform = torch.rand(images.shape, generator=generator, device=images.device)
        if self.observes == Observation.dequantized:
            return uniform.add_(images).div_(LEVELS)
        # P(U < k/255) = k/255: a Bernoulli draw of each grey level, about 3x faster on the CPU
        # than torch.bernoulli (benchmarks/epoch_throughput.py).
        return (uniform < images.float().div_(LEVELS - 1)).float()

    def fixed(self, images: torch.Tensor, split: str) -> torch.Tensor:
        """One reproducible view of ``images`` for ``split`` (train, val, test or figures), seeded by ``seed``."""
        generator = torch.Generator(device=images.device).manual_seed(self.seed * 1_000_003 + _SPLIT_SALTS[split])
        return self._view(images, generator)

    def training_source(self, images: torch.Tensor) -> torch.Tensor:
        """What the minibatch sampler indexes: precomputed once for static binarization, raw otherwise."""
        return self.fixed(images, "train") if self.binarize == Binarization.static else images

    def training_batch(self, source_batch: torch.Tensor) -> torch.Tensor:
        """A fresh view of a minibatch drawn from :meth:`training_source`."""
        if self.binarize == Binarization.static:
            return source_batch
        return self._view(source_batch, generator=None)

    def minibatches(self, train: LabelledImages, batch_size: int) -> MinibatchSampler:
        """Shuffled training batches of ``train``, each with a fresh view (or the static one)."""
        return MinibatchSampler(self.training_source(train.images), train.labels, batch_size, self.training_batch)
