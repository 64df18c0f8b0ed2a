"""The prior p(z): the paper's N(0, I), or a prior learned with the model (the VampPrior, a flow).

A prior is a module called as ``prior(batch_size, encode)``: ``encode`` is the VAE's q(z|x), which
the VampPrior is made of. ``closed_form_kl`` says whether KL(q(z|x) || p(z)) has a closed form
(the estimators fall back to a Monte Carlo estimate where it has none, and ``objective=meanfield``
is refused).
"""

from abc import ABC, abstractmethod
from typing import Callable, Sequence, Tuple

import pyro
import pyro.distributions as dist
import torch
import zuko
from torch import nn
from torch.nn import functional as F

from .flows import PyroFlow

Encode = Callable[[torch.Tensor], dist.TorchDistribution]


class LatentPrior(nn.Module, ABC):
    """What every prior is, a user's own included (``prior._target_=my_module.MyPrior``; docs/variants.md,
    "Your own prior"): built as ``Prior(latent_dim, image_shape, **its settings)``, called as
    ``prior(batch_size, encode)`` for one event of ``latent_dim`` per image. ``closed_form_kl``: True only
    where KL(q(z|x) || p(z)) of a Gaussian q has a closed form, which the estimators then use."""

    closed_form_kl = False

    @abstractmethod
    def forward(self, batch_size: int, encode: Encode) -> dist.TorchDistribution:
        """p(z) for ``batch_size`` images: a batch of ``batch_size`` events of ``latent_dim``."""


class StandardNormal(LatentPrior):
    """p(z) = N(0, I): the paper's prior. Its mean and standard deviation are buffers, so that they
    follow the VAE's device and dtype."""

    closed_form_kl = True

    def __init__(self, latent_dim: int, image_shape: Tuple[int, int, int] = (1, 1, 1)) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.register_buffer("loc", torch.zeros(latent_dim), persistent=False)
        self.register_buffer("scale", torch.ones(latent_dim), persistent=False)

    def forward(self, batch_size: int, encode: Encode) -> dist.TorchDistribution:
        return dist.Normal(self.loc, self.scale).expand([batch_size, self.latent_dim]).to_event(1)


class VampPrior(LatentPrior):
    """p(z) = (1/K) sum_k q(z | u_k): the guide's own posterior at K learned pseudo-inputs u_k,
    each kept in [0, 1] (Tomczak and Welling 2018, "VAE with a VampPrior"). The pseudo-inputs
    start at 0.05 +- 0.01 (their code draws them around -0.05, where the clip at 0 would hold
    them without a gradient here) and learn with the model; the prior shares the encoder with
    the guide, so it moves with it."""

    def __init__(self, latent_dim: int, image_shape: Tuple[int, int, int], num_pseudo_inputs: int) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.pseudo_inputs = nn.Parameter(0.05 + 0.01 * torch.randn(num_pseudo_inputs, *image_shape))

    def components(self, encode: Encode) -> dist.TorchDistribution:
        """q(z | u_k) for every pseudo-input: a batch of K distributions over z."""
        return encode(F.hardtanh(self.pseudo_inputs, 0.0, 1.0))

    def forward(self, batch_size: int, encode: Encode) -> dist.TorchDistribution:
        pyro.module("latent_prior", self)  # its pseudo-inputs are parameters of the model
        components = self.components(encode)
        weights = dist.Categorical(logits=components.mean.new_zeros(len(self.pseudo_inputs)))
        return dist.MixtureSameFamily(weights, components).expand([batch_size])


class FlowPrior(LatentPrior):
    """p(z): N(0, I) pushed through a masked autoregressive flow of ``steps`` affine steps (Papamakarios
    et al. 2017; Zuko's ``MAF``, as in Pyro's flow-prior tutorial), learned with the model. Zuko's MAF
    maps z to the base in one pass, so scoring the guide's draws, which training does at every step,
    is cheap; drawing from it (only to generate) takes ``latent_dim`` passes per step."""

    def __init__(self, latent_dim: int, image_shape: Tuple[int, int, int], steps: int, widths: Sequence[int]) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.flow = zuko.flows.MAF(latent_dim, transforms=steps, hidden_features=tuple(widths))

    def forward(self, batch_size: int, encode: Encode) -> PyroFlow:
        pyro.module("latent_prior", self)  # the flow's weights are parameters of the model
        return PyroFlow(self.flow().expand([batch_size]))
