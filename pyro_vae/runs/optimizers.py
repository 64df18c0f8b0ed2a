"""Optimizers over the VAE's parameters, by the name used in ``conf/optimizer/``.

One table gives each name's torch class and arguments; the fast path builds a single torch
optimizer over all parameters (one fused or foreach kernel per step), and ``elbo=trace_pyro``
wraps the same class and arguments in Pyro's ``PyroOptim``, which keeps one per parameter.
"""

import logging
from functools import cache
from typing import Any, Dict, Iterable, Tuple, Type

import torch
from omegaconf import DictConfig
from pyro.optim import PyroOptim
from pyro.optim.clipped_adam import ClippedAdam

from ..errors import ConfigError
from .values import is_number

NAMES = ("adam", "clipped_adam", "rmsprop", "adagrad")

log = logging.getLogger(__name__)


def optimizer_arguments(
    optimizer: DictConfig, lr: float, num_data: int
) -> Tuple[Type[torch.optim.Optimizer], Dict[str, Any]]:
    """The torch class of ``optimizer.name`` and its arguments at learning rate ``lr``.

    Each loss estimates the bound of all ``num_data`` training images, so ClippedAdam's
    per-image ``clip_norm`` is scaled by it: the clamp then means the same whatever the data.
    """
    if not (is_number(lr) and lr > 0):
        raise ConfigError(f"lr={lr}: must be a positive finite number, e.g. lr=1e-3")
    name = optimizer.name
    if name == "adam":
        return torch.optim.Adam, dict(lr=lr, betas=tuple(optimizer.betas), eps=optimizer.eps)
    if name == "clipped_adam":
        return ClippedAdam, dict(
            lr=lr, betas=tuple(optimizer.betas), eps=optimizer.eps, clip_norm=optimizer.clip_norm * num_data
        )
    if name == "rmsprop":
        return torch.optim.RMSprop, dict(lr=lr, alpha=optimizer.alpha)
    if name == "adagrad":
        return torch.optim.Adagrad, dict(lr=lr)
    raise ConfigError(f"optimizer={name}: unknown optimizer; choose one of {', '.join(NAMES)}")


def make_optimizer(
    optimizer: DictConfig, lr: float, params: Iterable[torch.nn.Parameter], num_data: int
) -> torch.optim.Optimizer:
    """One torch optimizer over ``params``, with the multi-tensor implementation where torch has one
    (Adam: fused unless ``optimizer.fused=false``, which gives the arithmetic of Pyro's per-parameter Adam)."""
    optimizer_class, arguments = optimizer_arguments(optimizer, lr, num_data)
    params = list(params)
    if optimizer_class is torch.optim.Adam:
        arguments["fused"] = bool(optimizer.fused) and fused_adam_runs_on(params[0].device.type)
        if optimizer.fused and not arguments["fused"]:  # no fused kernel here: the multi-tensor one
            arguments["foreach"] = True
    elif optimizer_class is not ClippedAdam:
        arguments["foreach"] = True
    return optimizer_class(params, **arguments)


@cache
def fused_adam_runs_on(device_type: str) -> bool:
    """Whether this torch builds a fused Adam for parameters on ``device_type`` (the CPU got one in
    torch 2.4): asked once per device, so an older torch falls back with a single warning."""
    probe = torch.zeros(1, device=device_type, requires_grad=True)
    try:
        torch.optim.Adam([probe], fused=True)
    except RuntimeError:
        log.warning(
            "optimizer.fused=true: this torch (%s) has no fused Adam on %s; using its foreach Adam",
            torch.__version__,
            device_type,
        )
        return False
    return True


def make_pyro_optimizer(optimizer: DictConfig, lr: float, num_data: int) -> PyroOptim:
    """Pyro's own optimizer wrapper (what ``pyro.optim.Adam(...)`` builds) for ``elbo=trace_pyro``."""
    optimizer_class, arguments = optimizer_arguments(optimizer, lr, num_data)
    return PyroOptim(optimizer_class, arguments)
