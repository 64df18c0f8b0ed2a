"""Native torch optimizers over the VAE's parameters, by the name used in ``conf/optimizer/``.

Pyro's ``PyroOptim`` keeps one optimizer per parameter; a single torch optimizer over all of
them updates them in one fused or foreach kernel, which is most of Pyro's per-step overhead.
"""
from typing import Iterable

import torch
from omegaconf import DictConfig
from pyro.optim.clipped_adam import ClippedAdam

from .errors import ConfigError

NAMES = ("adam", "clipped_adam", "rmsprop", "adagrad")


def make_optimizer(optimizer: DictConfig, lr: float, params: Iterable[torch.nn.Parameter], images_per_loss: int) -> torch.optim.Optimizer:
    """The optimizer ``optimizer.name`` at learning rate ``lr``.

    The loss sums ``images_per_loss`` images, so ClippedAdam's per-image ``clip_norm`` is scaled
    by it: the clamp then means the same thing whatever the dataset or batch size.
    """
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ConfigError(f"lr={lr}: must be a positive number, e.g. lr=1e-3")
    params = list(params)
    name = optimizer.name
    if name == "adam":
        return torch.optim.Adam(params, lr=lr, betas=tuple(optimizer.betas), eps=optimizer.eps, fused=True)
    if name == "clipped_adam":
        clip = optimizer.clip_norm * images_per_loss
        return ClippedAdam(params, lr=lr, betas=tuple(optimizer.betas), eps=optimizer.eps, clip_norm=clip)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, alpha=optimizer.alpha, foreach=True)
    if name == "adagrad":
        return torch.optim.Adagrad(params, lr=lr, foreach=True)
    raise ConfigError(f"optimizer={name}: unknown optimizer; choose one of {', '.join(NAMES)}")
