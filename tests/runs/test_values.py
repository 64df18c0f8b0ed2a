"""The two checks every count and size setting goes through: YAML's true must not pass as 1."""

import math

import pytest

from pyro_vae.errors import ConfigError
from pyro_vae.runs.configuration.values import is_integer, is_number, positive_int


@pytest.mark.parametrize("value", [0, 1, -3, 10**12])
def test_ints_are_integers_and_numbers(value):
    assert is_integer(value) and is_number(value)


@pytest.mark.parametrize("value", [True, False, 1.0, "1", None, [1]])
def test_bools_floats_strings_and_lists_are_not_integers(value):
    assert not is_integer(value)


@pytest.mark.parametrize("value", [0.5, -2.0, 1e-300, 3])
def test_finite_floats_are_numbers(value):
    assert is_number(value)


@pytest.mark.parametrize("value", [True, False, math.inf, -math.inf, math.nan, "0.5", None])
def test_bools_infinities_nan_and_strings_are_not_numbers(value):
    assert not is_number(value)


@pytest.mark.parametrize("value", [0, -1, True, 2.0, "3"])
def test_positive_int_refuses_by_the_settings_name(value):
    with pytest.raises(ConfigError, match=rf"^task.n={value}: must be a positive integer$"):
        positive_int("task.n", value)


def test_positive_int_accepts_one():
    positive_int("task.n", 1)
