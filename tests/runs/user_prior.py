"""A user's own prior, in a module of their own, for tests/runs/test_user_prior.py (docs/variants.md shows
it): a learnable mixture of K Gaussians, p(z) = sum_k w_k N(z; m_k, diag s_k^2), trained with the model."""

import pyro
import pyro.distributions as dist
import torch
from torch import nn

from pyro_vae.modelling.priors import LatentPrior


class MixturePrior(LatentPrior):
    """``components`` Gaussians with learned weights, means and scales (the means spread at the start)."""

    def __init__(self, latent_dim: int, image_shape, components: int = 2) -> None:
        super().__init__()
        self.logits = nn.Parameter(torch.zeros(components))
        self.locs = nn.Parameter(torch.randn(components, latent_dim))
        self.log_scales = nn.Parameter(torch.zeros(components, latent_dim))

    def forward(self, batch_size: int, encode) -> dist.TorchDistribution:
        pyro.module("latent_prior", self)  # its weights are parameters of the model
        gaussians = dist.Normal(self.locs, self.log_scales.exp()).to_event(1)
        return dist.MixtureSameFamily(dist.Categorical(logits=self.logits), gaussians).expand([batch_size])


class NotAPrior(nn.Module):
    def __init__(self, latent_dim: int, image_shape) -> None:
        super().__init__()
