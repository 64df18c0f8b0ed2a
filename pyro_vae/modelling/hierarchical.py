"""Two stochastic layers: the VAE of Burda et al. (2016, section 5) with z1 next to the image and z2 above it.

    model:  z2 ~ p(z2),  z1 | z2 ~ N(mu(z2), diag sigma(z2)^2),  x | z1 ~ p(x | decoder(z1))
    guide:  z1 | x ~ q(z1 | x),  z2 | z1 ~ N(mu(z1), diag sigma(z1)^2)

p(z2) is any prior of ``priors.py`` over the top layer; q(z1|x) is the encoder's family (diagonal or
full covariance). Outside the Pyro program (the estimators, tasks and figures) the two layers are one
latent z = (z1, z2): ``encode`` gives q(z1, z2 | x), ``prior`` p(z1, z2), ``decode`` reads z1, so every
figure and estimate of the one-layer VAE holds for it unchanged.
"""

from typing import Callable, Optional, Tuple

import pyro
import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from torch import nn

from .flows import EMPTY_SHAPE, MonteCarloMoments
from .priors import StandardNormal
from .vae import VAE

Conditional = Callable[[torch.Tensor], dist.TorchDistribution]


class TwoLayerLatent(MonteCarloMoments, dist.TorchDistribution):
    """The joint of two stochastic layers over z = (z1, z2), one event per image: ``root`` the layer
    drawn first and ``conditional`` the other given it; ``root_is_z1`` says which is which (the guide
    draws z1 first, the prior z2). Its log-density is the sum of the two factors'."""

    arg_constraints = {}
    support = constraints.real_vector
    has_rsample = True

    def __init__(
        self, root: dist.TorchDistribution, conditional: Conditional, root_is_z1: bool, layer_dims: Tuple[int, int]
    ) -> None:
        self.root, self.conditional, self.root_is_z1, self.z1_dim = root, conditional, root_is_z1, layer_dims[0]
        super().__init__(root.batch_shape, torch.Size([sum(layer_dims)]), validate_args=False)

    def rsample(self, sample_shape: torch.Size = EMPTY_SHAPE) -> torch.Tensor:
        first = self.root.rsample(sample_shape)
        second = self.conditional(first).rsample()
        return torch.cat([first, second] if self.root_is_z1 else [second, first], dim=-1)

    def log_prob(self, z: torch.Tensor) -> torch.Tensor:
        z1, z2 = z[..., : self.z1_dim], z[..., self.z1_dim :]
        first, second = (z1, z2) if self.root_is_z1 else (z2, z1)
        return self.root.log_prob(first) + self.conditional(first).log_prob(second)


class HierarchicalVAE(VAE):
    """Two stochastic layers (Burda et al. 2016): the generative path z2 -> z1 -> x, the guide x -> z1 -> z2.

    Generative process, for each image:  z2 ~ p(z2);  z1 ~ N(mu(z2), diag sigma(z2)^2);  x ~ likelihood(decoder(z1)).
    Guide:  q(z1|x) from the encoder (its family), then q(z2|z1) = N(mu(z1), diag sigma(z1)^2).

    ``encoder``/``decoder`` connect x and z1 as in the one-layer VAE; ``top_encoder`` is q(z2|z1) and
    ``top_decoder`` p(z1|z2) (``networks.GaussianLayer``); ``prior`` is over z2. ``latent_dim`` is
    the joint's, z1's plus z2's, and ``layer_dims`` the two.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: nn.Module,
        top_encoder: nn.Module,
        top_decoder: nn.Module,
        layer_dims: Tuple[int, int],
        num_data: Optional[int] = None,
        prior: Optional[nn.Module] = None,
    ) -> None:
        top_prior = prior or StandardNormal(layer_dims[1])
        super().__init__(encoder, decoder, likelihood, sum(layer_dims), num_data, top_prior)
        self.top_encoder, self.top_decoder = top_encoder, top_decoder
        self.layer_dims = tuple(layer_dims)

    @property
    def closed_form_kl(self) -> bool:
        """KL(q(z1, z2 | x) || p(z1, z2)) has no closed form: q(z2|z1) and p(z1|z2) depend on a draw."""
        return False

    # The two layers as one latent, for the estimators, tasks and figures.

    def prior(self, batch_size: int) -> TwoLayerLatent:
        """p(z1, z2) = p(z2) p(z1 | z2)."""
        return TwoLayerLatent(self.latent_prior(batch_size, self.encode), self.top_decoder, False, self.layer_dims)

    def encode(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> TwoLayerLatent:
        """q(z1, z2 | x) = q(z1 | x) q(z2 | z1)."""
        return TwoLayerLatent(self.encode_z1(x), self.top_encoder, True, self.layer_dims)

    def encode_z1(self, x: torch.Tensor) -> dist.TorchDistribution:
        """q(z1 | x): the encoder's family, as the one-layer VAE's q(z|x)."""
        return super().encode(x)

    def decode(
        self, z: torch.Tensor, y: Optional[torch.Tensor] = None, observed: Optional[torch.Tensor] = None
    ) -> dist.TorchDistribution:
        """p(x | z1), from z = (z1, z2) or from z1 alone."""
        return super().decode(z[..., : self.layer_dims[0]], observed=observed)

    # The Pyro program: one site per layer.

    def model(self, x: torch.Tensor) -> None:
        """p(z2) p(z1|z2) p(x|z1)."""
        pyro.module("decoder", self.decoder)
        pyro.module("top_decoder", self.top_decoder)
        pyro.module("likelihood", self.likelihood)
        with self.data_plate(x):
            z2 = pyro.sample("z2", self.latent_prior(len(x), self.encode))
            z1 = pyro.sample("z1", self.top_decoder(z2))
            pyro.sample("x", self.decode(z1, observed=x), obs=x)

    def guide(self, x: torch.Tensor) -> None:
        """q(z1|x) q(z2|z1)."""
        pyro.module("encoder", self.encoder)
        pyro.module("top_encoder", self.top_encoder)
        with self.data_plate(x):
            z1 = pyro.sample("z1", self.encode_z1(x))
            pyro.sample("z2", self.top_encoder(z1))
