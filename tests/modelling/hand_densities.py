"""Log-densities written out by hand, the references the objective and estimator tests compare
against: they share no code with the project (no torch.distributions, no pyro_vae)."""

import math

import torch
from torch.nn.functional import logsigmoid, softplus

LOG_2PI = math.log(2 * math.pi)


def bernoulli_log_density(x: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
    """sum over the last dimension (the pixels) of x log sigmoid(l) + (1 - x) log sigmoid(-l)."""
    return (x * logsigmoid(logits) + (1 - x) * logsigmoid(-logits)).sum(-1)


def normal_log_density(z: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """log N(z; loc, diag scale^2), summed over the last dimension."""
    return (-0.5 * ((z - loc) / scale) ** 2 - torch.log(scale) - 0.5 * LOG_2PI).sum(-1)


def standard_normal_log_density(z: torch.Tensor) -> torch.Tensor:
    """log N(z; 0, I), summed over the last dimension."""
    return (-0.5 * z**2 - 0.5 * LOG_2PI).sum(-1)


def kl_to_standard_normal(loc: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """KL(N(loc, diag scale^2) || N(0, I)) = 1/2 sum (loc^2 + scale^2 - 1 - log scale^2), over the last dimension."""
    return 0.5 * (loc**2 + scale**2 - 1 - torch.log(scale**2)).sum(-1)


def discretized_logistic_log_mass(
    x: torch.Tensor, loc: torch.Tensor, scale: torch.Tensor, levels: int = 256
) -> torch.Tensor:
    """log P(X = x) for grey levels x = k / (levels - 1) of a logistic(loc, scale) rounded to the
    nearest level, summed over the last dimension, in float64: the difference of the logistic CDF
    sigmoid((t - loc) / scale) at the bin's two edges x +- 1 / (2 (levels - 1)), with the CDF
    taken as 1 above the top level's bin and 0 below the bottom level's (open edge bins).

    Above loc both CDF values approach 1 and their difference cancels (float64 loses whole nats
    20 scales out); the logistic and the bins are symmetric about 1/2, so there the mass is taken
    at the mirror image, P(1 - x; 1 - loc), where both values are small and exact."""
    x, loc, scale = torch.broadcast_tensors(x.double(), loc.double(), scale.double())
    above = x > loc
    x, loc = torch.where(above, 1 - x, x), torch.where(above, 1 - loc, loc)
    half_bin = 0.5 / (levels - 1)
    cdf_upper = torch.where(x > 1 - half_bin, 1.0, torch.sigmoid((x + half_bin - loc) / scale))
    cdf_lower = torch.where(x < half_bin, 0.0, torch.sigmoid((x - half_bin - loc) / scale))
    return torch.log(cdf_upper - cdf_lower).sum(-1)


def loc_and_scale_by_hand(out: torch.Tensor, mode: str, raw_scale, likelihood) -> tuple:
    """The decoder's output split into location and scale as each ``likelihood.scale_mode`` mode defines
    them: ``predicted`` from its second half of channels, ``fixed`` the constant, else the learned
    ``raw_scale``; every learned scale is softplus plus ``likelihood.min_pixel_scale``."""
    floor = likelihood.min_pixel_scale
    if mode == "predicted":
        half = out.shape[1] // 2
        return out[:, :half], softplus(out[:, half:]) + floor
    if mode == "fixed":
        return out, torch.full_like(out, likelihood.fixed_scale)
    return out, (softplus(raw_scale) + floor).expand_as(out)


def hand_elbo_loss(vae, x: torch.Tensor, log_likelihood, num_data: int) -> torch.Tensor:
    """-(N/B) sum_i [log p(x_i|z_i) + log p(z_i) - log q(z_i|x_i)], z = mu + sigma eps drawn as
    Pyro draws it; ``log_likelihood(out)`` gives log p(x|z) per image from the decoder output."""
    loc_z, scale_z = vae.encoder(x, None)
    z = loc_z + scale_z * torch.randn(loc_z.shape)
    log_lik = log_likelihood(vae.decoder(z))
    return (
        -(num_data / len(x)) * (log_lik + standard_normal_log_density(z) - normal_log_density(z, loc_z, scale_z)).sum()
    )
