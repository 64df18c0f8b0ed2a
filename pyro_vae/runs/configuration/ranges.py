"""The ranges a setting's value must lie in, each with the words of its refusal: ``schema.py`` gives each
setting its own, and ``settings.validate`` refuses a value outside it in one line (``latent_dim=-3: must be a
positive integer``). Plain Python: checked while ``python run.py`` reads its command line, before torch loads."""

from typing import Any, Callable, NamedTuple

from ...setting_types import MIN_WEIGHT_SCALE
from .values import is_integer, is_number


class Check(NamedTuple):
    """A range: whether a value lies in it, and what the refusal says the value must be."""

    accepted: Callable[[Any], bool]
    requirement: str


def _positive_integer(value: Any) -> bool:
    return is_integer(value) and value >= 1


def _fraction(value: Any) -> bool:
    """A number in [0, 1): a decay rate, or what is left of a rate."""
    return is_number(value) and 0 <= value < 1


def at_least(bound: float, requirement: str) -> Check:
    return Check(lambda value: is_number(value) and value >= bound, requirement)


def or_null(check: Check, requirement: str) -> Check:
    """``check``, or null (which the setting reads as 'not set')."""
    return Check(lambda value: value is None or check.accepted(value), requirement)


# The smallest optimizer.eps: float32's smallest normal number, 2**-126 (torch.finfo(torch.float32).tiny). A smaller
# one rounds to 0 (or loses its digits) when added to the float32 sqrt(v), and a parameter whose gradients have been 0
# then steps by 0 / 0.
MIN_EPS = 2.0**-126
# seed: what numpy's legacy seeding (pyro.set_rng_seed) accepts.
MAX_SEED = 2**32 - 1

POSITIVE_INTEGER = Check(_positive_integer, "must be a positive integer")
POSITIVE_INTEGER_OR_NULL = or_null(POSITIVE_INTEGER, "must be a positive integer, or null")
POSITIVE = Check(lambda value: is_number(value) and value > 0, "must be a number > 0")
NATS = at_least(0, "must be a number of nats >= 0 by which an epoch must beat the best")
WIDTHS = Check(
    lambda widths: all(is_integer(width) and width > 0 for width in widths),
    "must be a list of positive integers, e.g. [512,256]",
)
TEST_IMAGE = Check(lambda value: is_integer(value) and value >= 0, "must be the index of a test image, an integer >= 0")
SEED = Check(
    lambda value: is_integer(value) and 0 <= value <= MAX_SEED, f"must be an integer from 0 to {MAX_SEED} (2**32 - 1)"
)


def integer(minimum: int, requirement: str) -> Check:
    return Check(lambda value: is_integer(value) and value >= minimum, requirement)


def learning_rate(setting: str, example: str) -> Check:
    return Check(POSITIVE.accepted, f"must be a positive finite number, e.g. {setting}={example}")


def adam_betas(example: str) -> Check:
    return Check(
        lambda betas: len(betas) == 2 and all(_fraction(beta) for beta in betas),
        f"must be two numbers in [0, 1), e.g. {example}: the decay rates of Adam's averages of the gradient "
        "and its square",
    )


def fraction(what: str) -> Check:
    """A number in [0, 1)."""
    return Check(_fraction, f"must be a number in [0, 1), {what}")


def open_unit(what: str) -> Check:
    """A number in (0, 1)."""
    return Check(lambda value: is_number(value) and 0 < value < 1, f"must be a number in (0, 1), {what}")


def weight_scale(what: str) -> Check:
    return at_least(MIN_WEIGHT_SCALE, f"must be a number >= {MIN_WEIGHT_SCALE:g}, {what}")
