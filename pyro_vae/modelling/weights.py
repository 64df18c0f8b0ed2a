"""A Bayesian decoder: Normal priors on every decoder weight, and a mean-field Gaussian guide for them.

The decoder becomes a ``PyroModule`` whose parameters are ``PyroSample`` sites, so each call
draws its weights; ``MeanFieldWeights`` is their guide q(W) = prod N(loc, scale^2).
"""

import math
from typing import Dict

import pyro
import pyro.distributions as dist
import torch
from pyro.nn.module import PyroSample, to_pyro_module_
from torch import nn
from torch.distributions import kl_divergence

from ..setting_types import MIN_WEIGHT_SCALE  # noqa: F401 (its place in docs/renames.md; the bound of decoder.weight_*)


def make_bayesian_(decoder: nn.Module, prior_scale: float) -> Dict[str, torch.Tensor]:
    """Turn ``decoder``'s parameters, in place, into weights with N(0, prior_scale^2) priors.

    Returns the initial parameter values by site name, to start the guide's means from.
    """
    initial = {name: param.detach().clone() for name, param in decoder.named_parameters()}
    to_pyro_module_(decoder)
    for module in decoder.modules():
        for name, param in list(module.named_parameters(recurse=False)):
            prior = dist.Normal(torch.zeros_like(param), prior_scale).to_event(param.dim())
            setattr(module, name, PyroSample(prior))
    return initial


class MeanFieldWeights(nn.Module):
    """q(W): an independent Normal per weight, its scale stored as log sigma.

    Every positive ``init_scale`` is a finite log sigma, and the entropy term of the ELBO gives
    each log sigma a gradient of 1 whatever sigma is, so even tiny initial scales learn (a
    softplus minus a floor is -inf, with no gradient, at ``init_scale`` = floor). No floor is
    needed: the data term's expected pull on log sigma shrinks like sigma^2, the entropy's does not.
    """

    def __init__(self, initial: Dict[str, torch.Tensor], init_scale: float, prior_scale: float) -> None:
        super().__init__()
        self.sites = list(initial)
        self.prior_scale = prior_scale
        keys = [self._key(name) for name in self.sites]
        self.locs = nn.ParameterDict({k: nn.Parameter(v) for k, v in zip(keys, initial.values())})
        log_scale = math.log(init_scale)
        self.log_scales = nn.ParameterDict(
            {k: nn.Parameter(torch.full_like(v, log_scale)) for k, v in zip(keys, initial.values())}
        )

    @staticmethod
    def _key(site: str) -> str:
        return site.replace(".", "__")  # ParameterDict keys cannot hold dots

    def distribution(self, site: str) -> dist.TorchDistribution:
        loc = self.locs[self._key(site)]
        scale = self.log_scales[self._key(site)].exp()
        return dist.Normal(loc, scale).to_event(loc.dim())

    def forward(self) -> None:
        """The guide's sample statements, one per weight site of the model."""
        for site in self.sites:
            pyro.sample(site, self.distribution(site))

    def kl_to_prior(self) -> torch.Tensor:
        """KL(q(W) || p(W)) in closed form: the term a Bayesian decoder's ELBO pays once per
        training set, which every reported bound charges as KL / N per image."""
        kls = []
        for site in self.sites:
            q = self.distribution(site)
            kls.append(kl_divergence(q, dist.Normal(torch.zeros_like(q.mean), self.prior_scale).to_event(q.event_dim)))
        return torch.stack(kls).sum()

    def draw(self) -> Dict[str, torch.Tensor]:
        """One draw W ~ q(W), by site name, to condition the decoder on outside of inference."""
        return {site: self.distribution(site).sample() for site in self.sites}
