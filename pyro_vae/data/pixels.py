"""How uint8 pixels become the values the likelihood scores.

Binary likelihoods see Bernoulli draws of the grey levels (``data.binarize``: ``dynamic``
redraws every batch, ``static`` draws once); continuous likelihoods see the grey levels
dequantized, (x + u) / 256 with u ~ U[0, 1), so that a density on [0, 1] bounds the discrete
likelihood. Training batches get a fresh random view each time they are drawn; validation and
test sets get one fixed, seeded view so that their figures compare between epochs and runs.
"""
import torch

from ..errors import ConfigError

MODES = ("dynamic", "static", "none")

# Each fixed view gets its own seed offset, so no two of them share a random draw.
_VIEW_SALTS = {"train": 1, "val": 2, "test": 3, "figures": 4}


class PixelTransform:
    """Maps uint8 images to float observations for a binary or a continuous likelihood."""

    def __init__(self, binarize: str, seed: int, continuous: bool) -> None:
        if binarize not in MODES:
            raise ConfigError(f"data.binarize={binarize}: choose one of {', '.join(MODES)}")
        if continuous and binarize != "none":
            raise ConfigError(
                f"data.binarize={binarize}: a Gaussian likelihood models grey levels; set data.binarize=none"
            )
        if not continuous and binarize == "none":
            raise ConfigError(
                "data.binarize=none: a Bernoulli likelihood needs binary pixels; "
                "set data.binarize=dynamic or static, or use likelihood=gaussian for grey levels"
            )
        self.binarize = binarize
        self.seed = seed
        self.continuous = continuous

    def _view(self, images: torch.Tensor, generator) -> torch.Tensor:
        uniform = torch.rand(images.shape, generator=generator, device=images.device)
        if self.continuous:
            return uniform.add_(images).div_(256.0)
        # P(U < k/255) = k/255: a Bernoulli draw of each grey level, about 3x faster on the CPU
        # than torch.bernoulli (benchmarks/epoch_throughput.py).
        return (uniform < images.float().div_(255.0)).float()

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
