"""A component named by its ``_target_`` (``MODULE.CLASS``, a user's own module as well as the project's):
imported, checked to be the kind of thing its setting asks for, or refused in one line naming the setting."""

import importlib
import inspect
from typing import Any, Dict, Sequence

from ...errors import ConfigError


def import_target(setting: str, target: str) -> Any:
    """What ``target`` names; ``setting`` (e.g. ``prior._target_``) is how the refusal names it."""
    module, _, attribute = target.rpartition(".")
    try:
        return getattr(importlib.import_module(module), attribute)
    except (ImportError, AttributeError, ValueError) as exc:
        raise ConfigError(
            f"{setting}={target}: cannot be imported ({type(exc).__name__}: {exc}); is its module on the path "
            "(the directory run.py runs in, or PYTHONPATH)?"
        ) from exc


def subclass_target(setting: str, target: str, base: type) -> type:
    """The class ``target`` names, refused unless it subclasses ``base``."""
    found = import_target(setting, target)
    if not (isinstance(found, type) and issubclass(found, base)):
        name = getattr(found, "__name__", type(found).__name__)
        raise ConfigError(f"{setting}={target}: {name} is not a {base.__module__}.{base.__qualname__}; subclass it")
    return found


def buildable_target(
    setting: str, target: str, base: type, leading: Sequence[Any], arguments: Dict[str, Any], takes: str
) -> type:
    """The class ``target`` names, refused unless it subclasses ``base`` and takes the ``leading`` arguments
    the run gives it and the option's settings, ``arguments`` (``takes`` says which they are)."""
    found = subclass_target(setting, target, base)
    try:
        inspect.signature(found).bind(*leading, **arguments)
    except TypeError as exc:
        raise ConfigError(f"{setting}={target}: {exc} ({takes})") from exc
    return found
