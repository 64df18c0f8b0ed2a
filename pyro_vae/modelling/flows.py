"""Zuko's normalizing flows as Pyro distributions, and moments for distributions that have none in closed form.

``pyro.contrib.zuko.ZukoToPyro`` makes a Zuko flow a ``pyro.sample`` site: called, it draws and caches
the log-density of its draw, so a guide's sample is scored without inverting the flow. ``PyroFlow``
adds what the rest of the project asks of a distribution outside ``pyro.sample``: ``rsample`` and
``sample`` (generating from a flow prior), its own type under ``expand`` (Pyro's particle plates),
and Monte Carlo moments (``MonteCarloMoments``) for the figures and the active-unit count.
"""

import torch
from pyro.contrib.zuko import ZukoToPyro

# Draws behind the Monte Carlo mean and standard deviation: their standard error is sd / 16.
MOMENT_DRAWS = 256
EMPTY_SHAPE = torch.Size()


class MonteCarloMoments:
    """``mean`` and ``stddev`` estimated from ``MOMENT_DRAWS`` draws, for a distribution without them in
    closed form (a flow, the joint of two stochastic layers): the figures decode the posterior mean, and
    the active units are counted from it. Each call draws afresh."""

    @property
    def mean(self) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample((MOMENT_DRAWS,)).mean(0)

    @property
    def stddev(self) -> torch.Tensor:
        with torch.no_grad():
            return self.rsample((MOMENT_DRAWS,)).std(0)

    @property
    def variance(self) -> torch.Tensor:
        return self.stddev**2


class PyroFlow(MonteCarloMoments, ZukoToPyro):
    """A Zuko distribution (e.g. ``zuko.flows.MAF(...)()``) as a Pyro distribution with ``rsample``."""

    def rsample(self, sample_shape: torch.Size = EMPTY_SHAPE) -> torch.Tensor:
        return self(sample_shape)  # caches the draw's log-density, as a pyro.sample site's draw does

    def expand(self, batch_shape, _instance=None) -> "PyroFlow":
        return PyroFlow(self.dist.expand(torch.Size(batch_shape)))
