"""What a setting's value must be to count as an integer or a number, and the refusal of a count that is not one.

YAML's ``true`` and ``false`` arrive as bools, which Python also counts as ints (True == 1): every
check of a count or a size goes through here, so that ``latent_dim=true`` is refused, not read as 1.
"""

import math

from ...errors import ConfigError


def is_integer(value: object) -> bool:
    """An int, not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> bool:
    """A finite int or float, not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def positive_int(name: str, value: object) -> None:
    """Refuse setting ``name`` unless ``value`` is an integer >= 1."""
    if not (is_integer(value) and value >= 1):
        raise ConfigError(f"{name}={value}: must be a positive integer")
