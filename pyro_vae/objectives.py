"""The variational objectives, by the name used in ``conf/elbo/``."""
from dataclasses import dataclass

from omegaconf import DictConfig
from pyro.infer import ELBO, JitTrace_ELBO, RenyiELBO, Trace_ELBO, TraceMeanField_ELBO

from .errors import ConfigError

# The model has one plate (the data); declaring it spares Pyro a trace to discover it.
MAX_PLATE_NESTING = 1


@dataclass(frozen=True)
class Objective:
    """A Pyro ELBO and how many images its loss sums over.

    Trace_ELBO and its variants honour the model's plate scaling, so their loss estimates the
    whole training set; RenyiELBO reads unscaled log-densities and sums the minibatch only.
    """

    elbo: ELBO
    sums_whole_dataset: bool

    def images_per_loss(self, batch_size: int, num_data: int) -> int:
        return num_data if self.sums_whole_dataset else batch_size


def make_objective(elbo: DictConfig) -> Objective:
    """``trace``, ``meanfield`` (analytic KL), ``jit`` or ``iwae`` (RenyiELBO, alpha=0)."""
    particles = elbo.num_particles
    if not (isinstance(particles, int) and particles >= 1):
        raise ConfigError(f"elbo.num_particles={particles}: must be a positive integer")
    common = dict(num_particles=particles, vectorize_particles=particles > 1, max_plate_nesting=MAX_PLATE_NESTING)
    if elbo.name == "trace":
        return Objective(Trace_ELBO(**common), True)
    if elbo.name == "meanfield":
        return Objective(TraceMeanField_ELBO(**common), True)
    if elbo.name == "jit":
        return Objective(JitTrace_ELBO(ignore_jit_warnings=True, **common), True)
    if elbo.name == "iwae":
        return Objective(RenyiELBO(alpha=0.0, **common), False)
    raise ConfigError(f"elbo={elbo.name}: unknown objective; choose trace, meanfield, jit or iwae")
