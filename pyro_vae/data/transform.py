"""The data transform: how uint8 pixels become the values the likelihood scores.

The likelihood config decides (``OBSERVED_VIEWS``): binary likelihoods see Bernoulli draws
of the grey levels (``dataset.binarize``: ``dynamic`` redraws every batch, ``static`` draws once);
densities on [0, 1] see the grey levels dequantized, (x + u) / 256 with u ~ U[0, 1), so that
they bound the discrete likelihood; likelihoods of the discrete grey levels see them as they
are, x / 255. Training batches get a fresh random view each time they are drawn; validation and
test sets get one fixed, seeded view so that their figures compare between epochs and runs.
"""

import torch
from omegaconf import DictConfig

from ..errors import ConfigError
from .batches import MinibatchSampler
from .splits import LabelledImages

LEVELS = 256  # grey levels of an 8-bit image
MODES = ("dynamic", "static", "none")

# likelihood=NAME -> the view of the pixels it scores: Bernoulli draws of them (binary), the grey
# levels dequantized for a density on [0, 1], or the grey levels themselves for a mass on them.
OBSERVED_VIEWS = {"bernoulli": "binary", "gaussian": "dequantized", "discretized_logistic": "grey_levels"}

# Each fixed view gets its own seed offset, so no two of them share a random draw.
_VIEW_SALTS = {"train": 1, "val": 2, "test": 3, "figures": 4}


def observed_view(likelihood: str) -> str:
    """The view of the pixels that ``likelihood=NAME`` scores: binary, dequantized or grey_levels."""
    if likelihood not in OBSERVED_VIEWS:
        raise ConfigError(f"likelihood={likelihood}: unknown likelihood; choose one of {', '.join(OBSERVED_VIEWS)}")
    return OBSERVED_VIEWS[likelihood]


class PixelTransform:
    """Maps uint8 images to the float observations that ``likelihood`` (its config name) scores."""

    def __init__(self, binarize: str, seed: int, likelihood: str) -> None:
        if binarize not in MODES:
            raise ConfigError(f"dataset.binarize={binarize}: choose one of {', '.join(MODES)}")
        self.observes = observed_view(likelihood)
        if self.observes != "binary" and binarize != "none":
            raise ConfigError(
                f"dataset.binarize={binarize}: likelihood={likelihood} models grey levels; set dataset.binarize=none"
            )
        if self.observes == "binary" and binarize == "none":
            raise ConfigError(
                f"dataset.binarize=none: likelihood={likelihood} needs binary pixels; set dataset.binarize=dynamic "
                "or static, "
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

    @classmethod
    def of_run(cls, cfg: DictConfig) -> "PixelTransform":
        """The transform of a run's config: its ``dataset.binarize``, ``seed`` and ``likelihood``."""
        return cls(cfg.dataset.binarize, cfg.seed, cfg.likelihood.name)

    def minibatches(self, train: LabelledImages, batch_size: int) -> MinibatchSampler:
        """Shuffled training batches of ``train``, each with a fresh view (or the static one)."""
        return MinibatchSampler(self.training_source(train.images), train.labels, batch_size, self.training_batch)
