"""The decoder's observation model p(x|z): turns decoder outputs into a distribution with one event per image."""
from typing import Tuple

import pyro.distributions as dist
import torch
from omegaconf import DictConfig
from torch import nn
from torch.nn import functional as F

from .errors import ConfigError

GAUSSIAN_SCALES = ("learned", "per_pixel", "predicted", "fixed")


class BernoulliPixels(nn.Module):
    """Independent Bernoulli pixels parameterised by logits (never sigmoid + clamp)."""

    params_per_pixel = 1
    continuous = False

    def forward(self, logits: torch.Tensor) -> dist.TorchDistribution:
        return dist.Bernoulli(logits=logits).to_event(3)


class GaussianPixels(nn.Module):
    """Independent Normal pixels: the mean from the decoder, the standard deviation by ``scale`` mode.

    ``learned``: one sigma for the whole image; ``per_pixel``: one per output dimension;
    ``predicted``: a second decoder output per pixel; ``fixed``: ``fixed_scale``. Learned and
    predicted sigmas are softplus plus ``min_scale``, so the density stays bounded.
    """

    continuous = True

    def __init__(self, image_shape: Tuple[int, int, int], scale: str, fixed_scale: float, min_scale: float) -> None:
        super().__init__()
        self.scale_mode = scale
        self.min_scale = min_scale
        self.params_per_pixel = 2 if scale == "predicted" else 1
        if scale == "learned":
            self.raw_scale = nn.Parameter(torch.zeros(()))
        elif scale == "per_pixel":
            self.raw_scale = nn.Parameter(torch.zeros(image_shape))
        elif scale == "fixed":
            self.register_buffer("fixed_scale", torch.tensor(float(fixed_scale)))

    def forward(self, out: torch.Tensor) -> dist.TorchDistribution:
        if self.scale_mode == "predicted":
            loc, raw_scale = out.chunk(2, dim=-3)
            scale = F.softplus(raw_scale) + self.min_scale
        elif self.scale_mode == "fixed":
            loc, scale = out, self.fixed_scale.expand(out.shape)
        else:
            loc, scale = out, (F.softplus(self.raw_scale) + self.min_scale).expand(out.shape)
        return dist.Normal(loc, scale).to_event(3)


def build_likelihood(likelihood: DictConfig, image_shape: Tuple[int, int, int]) -> nn.Module:
    """The pixel distribution named by ``likelihood.name``."""
    if likelihood.name == "bernoulli":
        return BernoulliPixels()
    if likelihood.name == "gaussian":
        if likelihood.scale not in GAUSSIAN_SCALES:
            raise ConfigError(f"likelihood.scale={likelihood.scale}: choose one of {', '.join(GAUSSIAN_SCALES)}")
        for key in ("fixed_scale", "min_scale"):
            if not likelihood[key] > 0:
                raise ConfigError(f"likelihood.{key}={likelihood[key]}: must be > 0")
        return GaussianPixels(image_shape, likelihood.scale, likelihood.fixed_scale, likelihood.min_scale)
    raise ConfigError(f"likelihood={likelihood.name}: unknown likelihood; choose bernoulli or gaussian")

