"""Log-densities written out by hand, the references the objective and estimator tests compare
against: they share no code with the project (no torch.distributions, no pyro_vae)."""
import math

import torch
from torch.nn.functional import logsigmoid

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
