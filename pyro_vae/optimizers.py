"""Pyro optimizers by the name used in ``conf/optimizer/``."""
from omegaconf import DictConfig
from pyro.optim import Adagrad, Adam, ClippedAdam, PyroOptim, RMSprop

from .errors import ConfigError

NAMES = ("adam", "clipped_adam", "rmsprop", "adagrad")


def make_optimizer(optimizer: DictConfig, lr: float, images_per_loss: int) -> PyroOptim:
    """The optimizer ``optimizer.name`` at learning rate ``lr``.

    The loss sums ``images_per_loss`` images, so ClippedAdam's per-image ``clip_norm`` is scaled
    by it: the clamp then means the same thing whatever the dataset or batch size.
    """
    if not (isinstance(lr, (int, float)) and lr > 0):
        raise ConfigError(f"lr={lr}: must be a positive number, e.g. lr=1e-3")
    name = optimizer.name
    if name == "adam":
        return Adam({"lr": lr, "betas": tuple(optimizer.betas), "eps": optimizer.eps})
    if name == "clipped_adam":
        clip = optimizer.clip_norm * images_per_loss
        return ClippedAdam({"lr": lr, "betas": tuple(optimizer.betas), "eps": optimizer.eps, "clip_norm": clip})
    if name == "rmsprop":
        return RMSprop({"lr": lr, "alpha": optimizer.alpha})
    if name == "adagrad":
        return Adagrad({"lr": lr})
    raise ConfigError(f"optimizer={name}: unknown optimizer; choose one of {', '.join(NAMES)}")
