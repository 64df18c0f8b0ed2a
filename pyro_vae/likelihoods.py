"""The decoder's observation model p(x|z): turns decoder outputs into a distribution with one event per image."""
import pyro.distributions as dist
import torch
from omegaconf import DictConfig
from torch import nn

from .errors import ConfigError


class BernoulliPixels(nn.Module):
    """Independent Bernoulli pixels parameterised by logits (never sigmoid + clamp).

    ``grey_targets`` lets grey levels in [0, 1] be scored as Bernoulli targets (the Pyro
    tutorial's protocol, ``data.binarize=none``): the log-probability is then a cross-entropy,
    not the log-likelihood of a normalised density, so validation of the values is switched off.
    """

    params_per_pixel = 1

    def __init__(self, grey_targets: bool = False) -> None:
        super().__init__()
        self.validate_args = False if grey_targets else None

    def forward(self, logits: torch.Tensor) -> dist.TorchDistribution:
        return dist.Bernoulli(logits=logits, validate_args=self.validate_args).to_event(3)


def build_likelihood(likelihood: DictConfig, binary_pixels: bool) -> nn.Module:
    """The pixel distribution named by ``likelihood.name``."""
    if likelihood.name == "bernoulli":
        return BernoulliPixels(grey_targets=not binary_pixels)
    raise ConfigError(f"likelihood.name={likelihood.name}: unknown likelihood; choose bernoulli")
