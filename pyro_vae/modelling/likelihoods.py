"""The decoder's observation model p(x|z): turns decoder outputs into a distribution with one event per image.

Each declares the view of the 8-bit pixels it scores (``observes``), which the data transform
prepares: Bernoulli draws of the grey levels (Bernoulli), dequantized grey levels, (k + u) / 256,
for a density on [0, 1] (Gaussian), or the grey levels themselves, k / 255, for a probability
mass on them (discretized logistic).
"""

import math
from typing import Optional, Tuple, Type

import pyro.distributions as dist
import torch
from pyro.distributions import constraints
from torch import nn
from torch.distributions.utils import broadcast_all
from torch.nn import functional as F

from ..data.transform import LEVELS, Observation
from ..setting_types import ScaleMode

# A learned sigma starts at min_scale + INITIAL_SCALE, near the calibrated sigma (the RMS error
# of the reconstructions) of an early decoder: one that ignores z has the RMS deviation of the
# pixels from the mean image (0.26 on MNIST); scale=optimal measures 0.24 after 2 epochs on 5,000
# MNIST images and about 0.1 after 30 epochs. Adam moves a sigma by only about lr (1e-3) a step,
# so where it starts is where it stays for hundreds of steps: from softplus(0) = 0.69 the KL
# term outweighed the reconstruction term and the posterior collapsed (0 of 20 active units after
# those 2 epochs, 8.82 bits/dim); from 0.1, 0.2 and 0.3 they end at 9.2, 7.9 and 8.0 bits/dim
# (per_pixel; learned alike), all 20 units active.
INITIAL_SCALE = 0.2
# Weight of each training batch in the running calibrated variance: the plain mean of the
# batches so far, then, from the 10th, an exponential moving average of about the last 10, as
# the reconstructions keep improving (each batch's squared error, over 100,000 pixels of an MNIST
# batch of 128, is already precise).
RUNNING_MOMENTUM = 0.1


class LogitBernoulli(dist.Bernoulli):
    """Bernoulli(logits=l) scored as x l - softplus(l), which is log sigmoid(l)^x (1 - sigmoid(l))^(1 - x).

    The same value as torch's binary cross-entropy, in three elementwise passes instead of its
    eight, and without copying the images broadcast over the importance samples: scoring was a
    third of the test bound's time, now a sixth (``benchmarks/loglik.py``).
    """

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        # softplus(l) returns l itself above the threshold; past -log(eps) the log1p(exp(-l)) it drops
        # is below l's rounding (torch's 20 is that for float32, not for float64: 36).
        threshold = max(20.0, -math.log(torch.finfo(self.logits.dtype).eps))
        return torch.mul(value, self.logits).sub_(F.softplus(self.logits, threshold=threshold))


class BernoulliPixels(nn.Module):
    """Independent Bernoulli pixels parameterised by logits (never sigmoid + clamp)."""

    observes = Observation.binary
    params_per_pixel = 1

    def forward(self, logits: torch.Tensor, observed: Optional[torch.Tensor] = None) -> dist.TorchDistribution:
        return LogitBernoulli(logits=logits).to_event(3)


class GreyLevels(constraints.Constraint):
    """The values k / 255, k = 0 .. 255, up to float rounding (1e-3 of a grey level)."""

    is_discrete = True
    event_dim = 0

    def check(self, value: torch.Tensor) -> torch.Tensor:
        level = value * (LEVELS - 1)
        return (level > -1e-3) & (level < LEVELS - 1 + 1e-3) & ((level - level.round()).abs() < 1e-3)


class DiscretizedLogistic(dist.TorchDistribution):
    """A logistic(loc, scale) variable on the grey-level scale, rounded to the nearest level k / 255.

    Level k has the logistic's probability mass on its bin of width 1/255; the bins of levels 0
    and 255 are open to -inf and +inf, so the masses of the 256 levels sum to one and saturated
    pixels (0 or 255) need no vanishing scale (Kingma et al. 2016, IAF-VAE; Salimans et al. 2017,
    PixelCNN++). Its log-probabilities are those of the discrete image itself: no dequantization.
    """

    arg_constraints = {"loc": constraints.real, "scale": constraints.positive}
    support = GreyLevels()
    has_rsample = False

    def __init__(self, loc: torch.Tensor, scale: torch.Tensor, validate_args=None) -> None:
        self.loc, self.scale = broadcast_all(loc, scale)
        super().__init__(self.loc.shape, validate_args=validate_args)

    def expand(self, batch_shape, _instance=None) -> "DiscretizedLogistic":
        new = self._get_checked_instance(DiscretizedLogistic, _instance)
        new.loc, new.scale = self.loc.expand(batch_shape), self.scale.expand(batch_shape)
        super(DiscretizedLogistic, new).__init__(torch.Size(batch_shape), validate_args=False)
        new._validate_args = self._validate_args
        return new

    def log_prob(self, value: torch.Tensor) -> torch.Tensor:
        if self._validate_args:
            self._validate_sample(value)
        half_bin = 0.5 / (LEVELS - 1)
        upper = (value + half_bin - self.loc) / self.scale  # the bin's edges, standardized
        lower = (value - half_bin - self.loc) / self.scale
        # log(sigmoid(u) - sigmoid(l)) = log sigmoid(u) + log sigmoid(-l) + log(1 - exp(l - u)):
        # exact, and finite in float32 however far the bin lies in either tail; l - u, the bin's
        # width in scales, is taken as it is rather than as a difference. An open edge bin keeps one
        # term: log sigmoid(u) for level 0, log sigmoid(-l) = log(1 - sigmoid(l)) for level 255.
        bottom, top = value < half_bin, value > 1 - half_bin
        log_width = torch.log(-torch.expm1(-2 * half_bin / self.scale))
        return (
            torch.where(top, 0.0, F.logsigmoid(upper))
            + torch.where(bottom, 0.0, F.logsigmoid(-lower))
            + torch.where(bottom | top, 0.0, log_width)
        )

    @property
    def mean(self) -> torch.Tensor:
        """E[X] = sum over k = 1 .. 255 of P(X >= k / 255) / 255, each a logistic tail beyond a bin edge."""
        total = torch.zeros_like(self.loc)
        for level in range(1, LEVELS):
            total += torch.sigmoid((self.loc - (level - 0.5) / (LEVELS - 1)) / self.scale)
        return total / (LEVELS - 1)

    def sample(self, sample_shape=torch.Size()) -> torch.Tensor:  # noqa: B008 (torch.distributions' signature)
        """Logistic draws by the inverse CDF, rounded to the nearest level and clamped into [0, 1]."""
        shape = self._extended_shape(sample_shape)
        with torch.no_grad():
            u = torch.rand(shape, dtype=self.loc.dtype, device=self.loc.device)
            draws = self.loc.expand(shape) + self.scale.expand(shape) * (torch.log(u) - torch.log1p(-u))
            return (draws * (LEVELS - 1)).round().clamp(0, LEVELS - 1) / (LEVELS - 1)


class LocationScalePixels(nn.Module):
    """Independent pixels of a location-scale family: the location from the decoder, the scale by mode.

    ``learned``: one scale for the whole image; ``per_pixel``: one per output dimension;
    ``predicted``: a second decoder output per pixel; ``fixed``: ``fixed_scale``. Learned and
    predicted scales are softplus plus ``min_scale``, so the likelihood stays bounded; learned
    ones start at ``min_scale + INITIAL_SCALE`` (see there why).
    """

    scales = (ScaleMode.learned, ScaleMode.per_pixel, ScaleMode.predicted, ScaleMode.fixed)
    family: Type[dist.TorchDistribution]
    observes: Observation

    def __init__(self, image_shape: Tuple[int, int, int], scale: str, fixed_scale: float, min_scale: float) -> None:
        super().__init__()
        self.scale_mode = scale
        self.min_scale = min_scale
        self.params_per_pixel = 2 if scale == "predicted" else 1
        initial_raw = math.log(math.expm1(INITIAL_SCALE))  # softplus(initial_raw) = INITIAL_SCALE
        if scale == "learned":
            self.raw_scale = nn.Parameter(torch.full((), initial_raw))
        elif scale == "per_pixel":
            self.raw_scale = nn.Parameter(torch.full(image_shape, initial_raw))
        elif scale == "fixed":
            self.register_buffer("fixed_scale", torch.tensor(float(fixed_scale)))

    def loc_and_scale(
        self, out: torch.Tensor, observed: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        """The family's location and scale, each of the shape of the image (batch dimensions in front)."""
        if self.scale_mode == "predicted":
            loc, raw_scale = out.chunk(2, dim=-3)
            return loc, F.softplus(raw_scale) + self.min_scale
        if self.scale_mode == "fixed":
            return out, self.fixed_scale.expand(out.shape)
        return out, (F.softplus(self.raw_scale) + self.min_scale).expand(out.shape)

    def forward(self, out: torch.Tensor, observed: Optional[torch.Tensor] = None) -> dist.TorchDistribution:
        """p(x|z) from the decoder output ``out``; the model passes the ``observed`` images it scores."""
        return self.family(*self.loc_and_scale(out, observed)).to_event(3)


class GaussianPixels(LocationScalePixels):
    """Independent Normal pixels on dequantized grey levels; besides the modes of
    ``LocationScalePixels``, ``optimal``: one calibrated sigma (Rybkin et al. 2021).

    In training, for the observed batch, sigma* = sqrt(mean squared error of its reconstructions),
    the maximum-likelihood sigma given them, floored at ``min_scale``; it is detached, which costs
    the gradient nothing (at the maximum, d log p / d sigma = 0) and leaves the sample site of x a
    plain Normal: the ELBO reported is a true ELBO at sigma*. A sigma read off the images being
    scored would make held-out figures depend on those very images, so everywhere else (evaluation,
    ``model.eval()``, no observation) sigma is the square root of the running mean of the recent
    training batches' squared errors (``RUNNING_MOMENTUM``), a buffer saved with the weights: test
    figures are a true ELBO and a true bound on log p(x) at one fixed sigma. Before any training
    step it is ``INITIAL_SCALE``.
    """

    scales = (*LocationScalePixels.scales, ScaleMode.optimal)
    family = dist.Normal
    observes = Observation.dequantized

    def __init__(self, image_shape: Tuple[int, int, int], scale: str, fixed_scale: float, min_scale: float) -> None:
        super().__init__(image_shape, scale, fixed_scale, min_scale)
        if scale == "optimal":
            self.register_buffer("running_variance", torch.tensor(INITIAL_SCALE**2))
            self.register_buffer("calibration_steps", torch.tensor(0))

    def loc_and_scale(
        self, out: torch.Tensor, observed: Optional[torch.Tensor] = None
    ) -> Tuple[torch.Tensor, torch.Tensor]:
        if self.scale_mode != "optimal":
            return super().loc_and_scale(out, observed)
        if self.training and observed is not None:
            variance = (observed - out).detach().square().mean()
            with torch.no_grad():  # on the device: no wait for the host
                self.calibration_steps += 1
                self.running_variance.lerp_(variance, (1.0 / self.calibration_steps).clamp(min=RUNNING_MOMENTUM))
        else:
            variance = self.running_variance
        return out, variance.sqrt().clamp(min=self.min_scale).expand(out.shape)


class DiscretizedLogisticPixels(LocationScalePixels):
    """Independent ``DiscretizedLogistic`` pixels: a probability mass on the 256 grey levels."""

    family = DiscretizedLogistic
    observes = Observation.grey_levels
