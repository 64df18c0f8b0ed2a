"""Optimizers over the VAE's parameters, by the name of their ``optimizer=`` option.

One table gives each name's torch class and arguments; the fast path builds a single torch
optimizer over all parameters (one fused or foreach kernel per step), and ``svi_step=pyro``
wraps the same class and arguments in Pyro's ``PyroOptim``, which keeps one per parameter.
"""

import logging
from functools import cache
from typing import Any, Dict, Iterable, Tuple, Type

import torch
from omegaconf import DictConfig, OmegaConf
from pyro.optim import PyroOptim
from pyro.optim.clipped_adam import ClippedAdam

from ..configuration.builders import NOT_ARGUMENTS, optimizer_class_of

log = logging.getLogger(__name__)


def optimizer_arguments(
    optimizer: DictConfig, lr: float, num_data: int
) -> Tuple[Type[torch.optim.Optimizer], Dict[str, Any]]:
    """The torch class of ``optimizer._target_`` and its arguments at learning rate ``lr``: every setting of
    the option (and those a user's own class is given, ``+optimizer.NAME=VALUE``), by the same name.

    Each loss estimates the bound of all ``num_data`` training images, so ClippedAdam's
    per-image ``clip_norm`` is scaled by it: the clamp then means the same whatever the data.
    """
    arguments: Dict[str, Any] = {"lr": lr}
    for key, value in optimizer.items():
        if key not in NOT_ARGUMENTS:
            arguments[key] = tuple(value) if OmegaConf.is_list(value) else value
    optimizer_class = optimizer_class_of(optimizer)
    if optimizer_class is ClippedAdam:
        # Beyond float32's largest number the clamp is none, and torch refuses to convert it.
        arguments["clip_norm"] = min(arguments["clip_norm"] * num_data, torch.finfo(torch.float32).max)
    return optimizer_class, arguments


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
    """Pyro's own optimizer wrapper (what ``pyro.optim.Adam(...)`` builds) for ``svi_step=pyro``."""
    optimizer_class, arguments = optimizer_arguments(optimizer, lr, num_data)
    return PyroOptim(optimizer_class, arguments)
