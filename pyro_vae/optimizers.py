"""Pyro optimizers by the name used in ``conf/optimizer/``."""
from omegaconf import DictConfig
from pyro.optim import PyroOptim, RMSprop, Adam, ClippedAdam

from .errors import ConfigError


def make_optimizer(optimizer: DictConfig, lr: float, images_per_loss: int) -> PyroOptim:
    """``adam``, ``clipped_adam`` or ``rmsprop`` at learning rate ``lr``.

    The loss sums ``images_per_loss`` images, so ClippedAdam's per-image ``clip_norm`` is scaled
    by it: the clamp then means the same thing whatever the dataset or batch size.
    """
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ConfigError(f"lr={lr}: must be a positive number, e.g. lr=1e-3")
    name = optimizer.name
    if name == "adam":
        return Adam({"lr": lr, "betas": tuple(optimizer.betas)})
    if name == "clipped_adam":
        return ClippedAdam(
            {"lr": lr, "betas": tuple(optimizer.betas), "clip_norm": optimizer.clip_norm * images_per_loss}
        )
    if name == "rmsprop":
        return RMSprop({"lr": lr, "alpha": optimizer.alpha})
    raise ConfigError(f"optimizer={name}: unknown optimizer; choose adam, clipped_adam or rmsprop")
