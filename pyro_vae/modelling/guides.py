"""The variational family of q(z|x): how the encoder's outputs become a Gaussian over z.

``DiagonalGaussian`` is the paper's q(z|x) = N(mu(x), diag sigma(x)^2). ``FullCovarianceGaussian``
is the general Gaussian the paper derives the ELBO for before it specialises to a diagonal:
N(mu(x), L(x) L(x)^T) with L lower-triangular and its diagonal positive (a Cholesky factor).
A family says how many numbers the encoder's head must give per image (``num_params``), turns
them into the distribution's parameters (``parameters``), and builds the distribution from those
(``distribution``), one event of ``latent_dim`` per image.
"""

from typing import Tuple, Union

import pyro.distributions as dist
import torch
from torch.nn import functional as F


class DiagonalGaussian:
    """N(mu, diag sigma^2): the head gives mu and a raw sigma per dimension; sigma = softplus + ``min_scale``."""

    def __init__(self, latent_dim: int, min_scale: float) -> None:
        self.latent_dim, self.min_scale = latent_dim, min_scale

    @property
    def num_params(self) -> int:
        return 2 * self.latent_dim

    def parameters(self, head: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        loc, raw_scale = head.chunk(2, dim=-1)
        return loc, F.softplus(raw_scale) + self.min_scale

    @staticmethod
    def distribution(loc: torch.Tensor, scale: torch.Tensor) -> dist.TorchDistribution:
        return dist.Normal(loc, scale).to_event(1)


class FullCovarianceGaussian:
    """N(mu, L L^T): the head gives mu, then the lower triangle of L row by row (d (d + 1) / 2
    numbers); L's diagonal is softplus + ``min_scale``, so L is a Cholesky factor and the
    covariance is positive definite with every standard deviation above the floor's reach."""

    def __init__(self, latent_dim: int, min_scale: float) -> None:
        self.latent_dim, self.min_scale = latent_dim, min_scale
        self.rows, self.cols = torch.tril_indices(latent_dim, latent_dim)

    @property
    def num_params(self) -> int:
        return self.latent_dim + len(self.rows)

    def parameters(self, head: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        d = self.latent_dim
        loc, lower = head[..., :d], head[..., d:]
        factor = head.new_zeros(*head.shape[:-1], d, d)
        factor[..., self.rows, self.cols] = lower
        raw_diagonal = factor.diagonal(dim1=-2, dim2=-1)
        return loc, factor + torch.diag_embed(F.softplus(raw_diagonal) + self.min_scale - raw_diagonal)

    @staticmethod
    def distribution(loc: torch.Tensor, scale_tril: torch.Tensor) -> dist.TorchDistribution:
        return dist.MultivariateNormal(loc, scale_tril=scale_tril)


GuideFamily = Union[DiagonalGaussian, FullCovarianceGaussian]
