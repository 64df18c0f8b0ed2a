"""``callbacks.NAME._target_=my_module.MyCallback``: a user's own Lightning callbacks, built by Hydra from
the config alone and run beside the run's own (``+callbacks.mine._target_=...`` on the command line adds
one; its other keys are its arguments)."""

from typing import List

import lightning.pytorch as pl
from hydra.errors import InstantiationException
from hydra.utils import instantiate
from omegaconf import DictConfig

from ...errors import ConfigError
from ..configuration.targets import import_target


def build_callbacks(cfg: DictConfig) -> List[pl.Callback]:
    """The callbacks of ``cfg.callbacks``, in the order given; one that cannot be built, or that is not a
    Lightning callback, is refused in one line naming it."""
    built = []
    for name, spec in cfg.get("callbacks", {}).items():
        target = spec.get("_target_") if isinstance(spec, DictConfig) else None
        if not target:
            raise ConfigError(f"callbacks.{name}: give the class to build as callbacks.{name}._target_=MODULE.CLASS")
        setting = f"callbacks.{name}._target_={target}"
        import_target(f"callbacks.{name}._target_", target)
        try:
            callback = instantiate(spec, _convert_="all")
        except InstantiationException as exc:
            cause = exc.__cause__ or exc
            raise ConfigError(
                f"{setting}: cannot be built ({type(cause).__name__}: {cause}); check its arguments"
            ) from exc
        if not isinstance(callback, pl.Callback):
            raise ConfigError(
                f"{setting}: builds a {type(callback).__name__}, not a lightning.pytorch.Callback; subclass it"
            )
        built.append(callback)
    return built
