"""How uint8 pixels become the values the likelihood scores.

The likelihood config decides (``likelihoods.observes``): binary likelihoods see Bernoulli draws
of the grey levels (``data.binarize``: ``dynamic`` redraws every batch, ``static`` draws once);
densities on [0, 1] see the grey levels dequantized, (x + u) / 256 with u ~ U[0, 1), so that
they bound the discrete likelihood; likelihoods of the discrete grey levels see them as they
are, x / 255. Training batches get a fresh random view each time they are drawn; validation and
test sets get one fixed, seeded view so that their figures compare between epochs and runs.
"""

import torch

from ..errors import ConfigError
from ..likelihoods import LEVELS, observes

MODES = ("dynamic", "static", "none")

# Each fixed view gets its own seed offset, so no two of them share a random draw.
_VIEW_SALTS = {"train": 1, "val": 2, "test": 3, "figures": 4}


class PixelTransform:
    """Maps uint8 images to the float observations that ``likelihood`` (its config name) scores."""

    def __init__(self, binarize: str, seed: int, likelihood: str) -> None:
        if binarize not in MODES:
            raise ConfigError(f"data.binarize={binarize}: choose one of {', '.join(MODES)}")
        self.observes = observes(likelihood)
        if self.observes != "binary" and binarize != "none":
            raise ConfigError(
                f"data.binarize={binarize}: likelihood={likelihood} models grey levels; set data.binarize=none"
            )
        if self.observes == "binary" and binarize == "none":
            raise ConfigError(
                f"data.binarize=none: likelihood={likelihood} needs binary pixels; set data.binarize=dynamic or static, "
                "or use likelihood=gaussian or discretized_logistic for grey levels"
            )
        self.binarize = binarize
        self.seed = seed

    def _view(self, images: torch.Tensor, generator) -> torch.Tensor:
        if self.observes == "grey_levels":
            return images.float().div_(LEVELS - 1)
        uniform = torch.rand(images.shape, generator=generator, device=images.device)
        if self.observes == "dequantized":
            return uniform.add_(images).div_(LEVELS)
        # P(U < k/255) = k/255: a Bernoulli draw of each grey level, about 3x faster on the CPU
        # than torch.bernoulli (benchmarks/epoch_throughput.py).
        return (uniform < images.float().div_(LEVELS - 1)).float()

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
