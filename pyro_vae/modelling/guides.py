"""The variational family of q(z|x): how the encoder's outputs become a Gaussian over z.

``DiagonalGaussian`` is the paper's q(z|x) = N(mu(x), diag sigma(x)^2). ``FullCovarianceGaussian``
is the general Gaussian the paper derives the ELBO for before it specialises to a diagonal:
N(mu(x), L(x) L(x)^T) with L lower-triangular and its diagonal positive (a Cholesky factor).
``InverseAutoregressiveFlow`` pushes the diagonal Gaussian through learned autoregressive steps
conditioned on the image (Kingma et al. 2016). A family says how many numbers the encoder's head
must give per image (``num_params``), turns them into the distribution's parameters
(``split_head``), and builds the distribution from those (``distribution``), one event of
``latent_dim`` per image; ``closed_form_kl`` says whether KL(q(z|x) || N(0, I)) has a closed form.
"""

from typing import Sequence, Tuple, Union

import pyro.distributions as dist
import torch
import zuko
from torch import nn
from torch.distributions import Independent, Normal
from torch.nn import functional as F

from .flows import PyroFlow


class DiagonalGaussian:
    """N(mu, diag sigma^2): the head gives mu and a raw sigma per dimension; sigma = softplus + ``min_scale``."""

    closed_form_kl = True

    def __init__(self, latent_dim: int, min_scale: float) -> None:
        self.latent_dim, self.min_scale = latent_dim, min_scale

    @property
    def num_params(self) -> int:
        return 2 * self.latent_dim

    def split_head(self, head: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        loc, raw_scale = head.chunk(2, dim=-1)
        return loc, F.softplus(raw_scale) + self.min_scale

    @staticmethod
    def distribution(loc: torch.Tensor, scale: torch.Tensor) -> dist.TorchDistribution:
        return dist.Normal(loc, scale).to_event(1)


class FullCovarianceGaussian:
    """N(mu, L L^T): the head gives mu, then the lower triangle of L row by row (d (d + 1) / 2
    numbers); L's diagonal is softplus + ``min_scale``, so L is a Cholesky factor and the
    covariance is positive definite with every standard deviation above the floor's reach."""

    closed_form_kl = True

    def __init__(self, latent_dim: int, min_scale: float) -> None:
        self.latent_dim, self.min_scale = latent_dim, min_scale
        self.rows, self.cols = torch.tril_indices(latent_dim, latent_dim)

    @property
    def num_params(self) -> int:
        return self.latent_dim + len(self.rows)

    def split_head(self, head: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        d = self.latent_dim
        loc, lower = head[..., :d], head[..., d:]
        factor = head.new_zeros(*head.shape[:-1], d, d)
        factor[..., self.rows, self.cols] = lower
        raw_diagonal = factor.diagonal(dim1=-2, dim2=-1)
        return loc, factor + torch.diag_embed(F.softplus(raw_diagonal) + self.min_scale - raw_diagonal)

    @staticmethod
    def distribution(loc: torch.Tensor, scale_tril: torch.Tensor) -> dist.TorchDistribution:
        return dist.MultivariateNormal(loc, scale_tril=scale_tril)


class InverseAutoregressiveFlow(nn.Module):
    """q(z|x): z_0 ~ N(mu(x), diag sigma(x)^2), then ``steps`` inverse autoregressive steps
    z_t = z_{t-1} * exp(a_t) + b_t, where (a_t, b_t)_i come from a masked network of z_{t-1, <i} and a
    context h(x) that the encoder's head gives beside mu and sigma (Kingma et al. 2016), so that

        log q(z_T | x) = log N(z_0; mu, diag sigma^2) - sum_t sum_i a_t,i.

    Each step is Zuko's ``MaskedAutoregressiveTransform``, taken in the direction that draws in one
    pass (its inverse would take ``latent_dim`` passes); the order of the dimensions alternates
    from step to step. A draw's log-density is cached, so scoring it is free; scoring any other z
    inverts the steps (``latent_dim`` network passes each). The family is a module: its steps are
    learned with the encoder that holds it."""

    closed_form_kl = False

    def __init__(
        self, latent_dim: int, min_scale: float, steps: int = 2, context_dim: int = 50, widths: Sequence[int] = (200,)
    ) -> None:
        super().__init__()
        self.latent_dim, self.min_scale, self.context_dim = latent_dim, min_scale, context_dim
        order = torch.arange(latent_dim)
        self.steps = nn.ModuleList(
            zuko.flows.MaskedAutoregressiveTransform(
                latent_dim, context_dim, order=order if t % 2 == 0 else order.flip(0), hidden_features=tuple(widths)
            ).inv
            for t in range(steps)
        )

    @property
    def num_params(self) -> int:
        return 2 * self.latent_dim + self.context_dim

    def split_head(self, head: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        d = self.latent_dim
        return head[..., :d], F.softplus(head[..., d : 2 * d]) + self.min_scale, head[..., 2 * d :]

    def distribution(self, loc: torch.Tensor, scale: torch.Tensor, context: torch.Tensor) -> PyroFlow:
        # Zuko's flow maps z_T back to z_0; its inverse, which draws, runs steps[0] first.
        to_base = zuko.transforms.ComposedTransform(*(step(context) for step in reversed(self.steps)))
        return PyroFlow(zuko.distributions.NormalizingFlow(to_base, Independent(Normal(loc, scale), 1)))


GuideFamily = Union[DiagonalGaussian, FullCovarianceGaussian, InverseAutoregressiveFlow]
