"""Held-out figures of a trained VAE, in nats per image.

All of them come from the same importance weights
    log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x),   z_k ~ q(z|x),  k = 1..K:
the ELBO is their mean, the log-likelihood estimate logsumexp_k log w_k - log K (Burda et
al. 2016), which is >= the ELBO in expectation and tightens as K grows.

A Bayesian decoder's ELBO is the bound it was trained on, per image: E_q(W)[ELBO(x | W)] minus
KL(q(W) || p(W)) / N for the N training images that share the weights, on every split; the
figure conditional on W is reported beside it as ``elbo_given_weights``.
"""

import itertools
import math
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Protocol

import pyro
import torch
from torch.distributions import Distribution as TorchDistribution
from torch.distributions import MultivariateNormal, kl_divergence

from .vae import VAE

# Active-unit threshold on Cov_x(E_q[z_u]) from Burda et al. (2016), section 5.2.
ACTIVE_UNIT_THRESHOLD = 0.01


class Shards(Protocol):
    """A group of processes that each hold a shard of the images (``pyro_vae.runs.loop.processes.Processes``)."""

    def sum(self, values: Dict[str, float]) -> Dict[str, float]: ...

    def cat(self, tensor: torch.Tensor) -> torch.Tensor: ...


@dataclass(frozen=True)
class Evaluation:
    elbo: float
    log_likelihood: float
    reconstruction: float
    kl: float  # KL(q(z|x) || p(z)): closed form, or the mean of log q - log p over the K draws (flows, VampPrior)
    active_units: int
    # Two stochastic layers only: the active units of each, z1 (next to x) first.
    active_units_per_layer: Optional[List[int]] = None
    # Bayesian decoder only: E_q(W)[ELBO(x | W)], and KL(q(W) || p(W)) / N with elbo = their difference.
    elbo_given_weights: Optional[float] = None
    weight_kl: Optional[float] = None

    def as_dict(self, prefix: str) -> Dict[str, float]:
        """The figures by name, ``prefix_elbo`` and so on; each layer's active units as ``prefix_active_units_z1``..."""
        figures = {f"{prefix}_{key}": value for key, value in asdict(self).items() if value is not None}
        for layer, units in enumerate(figures.pop(f"{prefix}_active_units_per_layer", ()), start=1):
            figures[f"{prefix}_active_units_z{layer}"] = units
        return figures


@torch.no_grad()
@pyro.validation_enabled(False)
def evaluate(
    vae: VAE,
    images: torch.Tensor,
    labels: Optional[torch.Tensor] = None,
    num_samples: int = 1,
    chunk_size: int = 2048,
    weight_draws: int = 1,
    num_data: Optional[int] = None,
    across: Optional[Shards] = None,
    progress: Optional[Callable[[int], None]] = None,
) -> Evaluation:
    """Evaluate ``vae`` on float observations ``images`` (with their ``labels``, which a
    conditional VAE conditions on) with K = ``num_samples`` draws per image; a Bayesian decoder
    also needs ``num_data``, the size of the training set that shares its weights' KL.

    At most ``chunk_size`` (image, sample) pairs are decoded at once, so memory stays bounded
    whatever K: few images with many samples each when K is large. A Bayesian decoder draws its
    weights from q(W) afresh for each chunk of samples, and the K samples of an image are split
    into at least ``weight_draws`` chunks, so the likelihood is averaged over weight draws.
    Distribution argument checks are off: they would re-read every decoded pixel.
    ``across``: ``images`` is this process's shard of a split held by a group of processes; the
    figures are then the whole split's, the same in every process.
    ``progress``: called with the number of images of each chunk once it is done (a bound over
    10,000 images at K = 1000 takes minutes: the caller shows how far it has got).
    """
    if vae.bayesian and num_data is None:
        raise ValueError("a Bayesian decoder's ELBO charges KL(q(W) || p(W)) / num_data per image: pass num_data")
    images_per_chunk = max(1, chunk_size // num_samples)
    samples_per_chunk = min(num_samples, chunk_size)
    if vae.bayesian:
        samples_per_chunk = min(samples_per_chunk, math.ceil(num_samples / weight_draws))
    label_chunks = labels.split(images_per_chunk) if labels is not None else itertools.repeat(None)
    totals = dict(elbo=0.0, log_likelihood=0.0, reconstruction=0.0, kl=0.0)
    # Filled in place: small tensors kept across the loop would pin the large freed ones in the
    # heap and let it fragment (measured: +1.4 GB on 2,000 images at K = 5000).
    means = images.new_empty(len(images), vae.latent_dim)
    # KL(q || p) in closed form where there is one, else the mean of log q - log p over the K draws.
    closed_form_kl = vae.closed_form_kl
    start = 0
    for x, y in zip(images.split(images_per_chunk), label_chunks):
        guide = vae.encode(x, y)
        prior = vae.prior(len(x))
        log_weights, log_likelihoods, log_ratios = [], [], []
        for count in _chunk_sizes(num_samples, samples_per_chunk):
            z = guide.sample((count,))
            log_lik = vae.decode(z, y).log_prob(x)
            log_likelihoods.append(log_lik)
            log_prior, log_q = prior.log_prob(z), guide.log_prob(z)
            log_weights.append(log_lik + log_prior - log_q)
            if not closed_form_kl:
                log_ratios.append(log_q - log_prior)
        log_w = torch.cat(log_weights)
        totals["elbo"] += log_w.mean(0).sum().item()
        totals["log_likelihood"] += (torch.logsumexp(log_w, 0) - math.log(num_samples)).sum().item()
        totals["reconstruction"] += torch.cat(log_likelihoods).mean(0).sum().item()
        kl = latent_kl(guide, prior) if closed_form_kl else torch.cat(log_ratios).mean(0)
        totals["kl"] += kl.sum().item()
        means[start : start + len(x)] = guide.mean
        start += len(x)
        if progress is not None:
            progress(len(x))
    num_images = len(images)
    if across is not None:
        totals = across.sum({**totals, "num_images": num_images})
        num_images, means = round(totals.pop("num_images")), across.cat(means)
    per_layer = [active_units(layer) for layer in means.split(list(vae.layer_dims), dim=-1)]
    units = dict(active_units=sum(per_layer), active_units_per_layer=per_layer if len(per_layer) > 1 else None)
    figures = {key: value / num_images for key, value in totals.items()}
    if not vae.bayesian:
        return Evaluation(**figures, **units)
    weight_kl = vae.weight_guide.kl_to_prior().item() / num_data
    figures["elbo_given_weights"], figures["elbo"] = figures["elbo"], figures["elbo"] - weight_kl
    return Evaluation(**figures, **units, weight_kl=weight_kl)


def active_units(means: torch.Tensor) -> int:
    """The units u whose posterior mean E_q[z_u | x] varies over the images ``means`` (one row each)
    by more than Burda et al.'s threshold; a single image shows no variation."""
    return int((means.var(0) > ACTIVE_UNIT_THRESHOLD).sum()) if len(means) > 1 else 0


def latent_kl(q: TorchDistribution, p: TorchDistribution) -> torch.Tensor:
    """KL(q(z|x) || p(z)) per image in closed form; a full-covariance q against a diagonal p goes
    through p written as a MultivariateNormal, for which torch has the closed form."""
    if isinstance(q, MultivariateNormal) and not isinstance(p, MultivariateNormal):
        p = MultivariateNormal(p.mean, scale_tril=torch.diag_embed(p.stddev))
    return kl_divergence(q, p)


def bits_per_dim(log_likelihood: float, num_dims: int, dequantized: bool = True) -> float:
    """Bits per dimension of the discrete 8-bit data, -log2 P(x_discrete) / D, from ``log_likelihood`` in nats.

    ``dequantized``: a log density of pixels dequantized into [0, 1]. Scaling grey levels by
    1/256 multiplies the density by 256 per dimension, so -log P(x_discrete) <= -log p(x) + D log 256.
    Otherwise ``log_likelihood`` is already the log-probability of the discrete image.
    """
    nats = -log_likelihood + (num_dims * math.log(256) if dequantized else 0.0)
    return nats / (num_dims * math.log(2))


def _chunk_sizes(total: int, chunk: int):
    for start in range(0, total, chunk):
        yield min(chunk, total - start)
