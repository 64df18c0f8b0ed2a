"""The closed sets of values that settings take (``dataset.binarize``, ``net.activation``,
``likelihood.scale_mode``, ``objective.gradient``) and the bounds that both wings share, in a module
that imports nothing but ``enum``.

The config schema (``pyro_vae.runs.configuration.schema``) types its fields with these while ``python run.py``
reads its command line, before torch is loaded; the modules that act on them (``data.transform``,
``modelling.likelihoods``, ``networks``, ``objectives``, ``weights``) import them from here. It lies
outside both wings, so that either may import it.
"""

from enum import Enum


class Choice(str, Enum):
    """A closed set of string values, each member named by its value (OmegaConf converts a string
    to a member by name): compares equal to its value and prints as it, so a config field typed
    with it reads like the string the YAML holds, and Hydra refuses any other value."""

    def __str__(self) -> str:
        return self.value

    __format__ = str.__format__

    @classmethod
    def values(cls) -> "list[str]":
        return [member.value for member in cls]


class Binarization(Choice):
    """dataset.binarize: how binary pixels are drawn from the grey levels."""

    dynamic = "dynamic"  # a fresh draw every training batch
    static = "static"  # one draw, fixed for the whole run
    none = "none"  # no binarization: the likelihood models grey levels


class ScaleMode(Choice):
    """Where a location-scale likelihood's scale comes from (see ``LocationScalePixels``)."""

    learned = "learned"
    per_pixel = "per_pixel"
    predicted = "predicted"
    fixed = "fixed"
    optimal = "optimal"  # the Gaussian only: the calibrated sigma


class Activation(Choice):
    """The nonlinearity between layers."""

    relu = "relu"
    tanh = "tanh"
    softplus = "softplus"
    elu = "elu"


class Gradient(Choice):
    """The encoder's gradient estimator under the IWAE bound."""

    standard = "standard"
    dreg = "dreg"  # doubly reparameterized (Tucker et al. 2019)


# The smallest prior and initial guide standard deviation accepted: a smaller noise on a weight of
# ~0.1 is lost to float32 rounding, and a smaller prior's gradient W / scale^2 overflows Adam's
# float32 second moment, so its weights silently stop moving.
MIN_WEIGHT_SCALE = 1e-9
