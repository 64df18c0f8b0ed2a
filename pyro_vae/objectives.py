"""The variational objectives, by the name used in ``conf/elbo/``."""
from dataclasses import dataclass

import torch
from omegaconf import DictConfig
from pyro.infer import ELBO, JitTrace_ELBO, RenyiELBO, Trace_ELBO, TraceMeanField_ELBO

from .errors import ConfigError

# The model has one plate (the data); declaring it spares Pyro a trace to discover it.
MAX_PLATE_NESTING = 1


class DeviceTrace_ELBO(Trace_ELBO):
    """Trace_ELBO whose loss stays on the device: the same traces and the same estimate,
    without the host reads (``torch_item``) Trace_ELBO makes at every site of every step.

    Valid when every latent site of the guide is reparameterized, as the VAE's Gaussian
    guide is: the surrogate loss then equals the loss, and no score-function term is needed.
    """

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        loss = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            elbo = sum(site["log_prob_sum"] for site in model_trace.nodes.values() if site["type"] == "sample")
            for name, site in guide_trace.nodes.items():
                if site["type"] == "sample":
                    if not site["fn"].has_rsample:
                        raise NotImplementedError(f"guide site {name!r} is not reparameterized; use elbo=trace_pyro")
                    elbo = elbo - site["log_prob_sum"]
            loss = loss - elbo / self.num_particles
        return loss


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

    def backward(self, model, guide, *args, **kwargs) -> torch.Tensor:
        """The loss of one minibatch, its gradients accumulated into the parameters."""
        if hasattr(self.elbo, "differentiable_loss"):
            loss = self.elbo.differentiable_loss(model, guide, *args, **kwargs)
            loss.backward()
            return loss.detach()
        return torch.tensor(self.elbo.loss_and_grads(model, guide, *args, **kwargs))  # RenyiELBO


NAMES = ("trace", "trace_pyro", "meanfield", "jit", "iwae")


def make_objective(elbo: DictConfig) -> Objective:
    """``trace`` (default), ``trace_pyro`` (Pyro's own Trace_ELBO), ``meanfield`` (analytic KL),
    ``jit`` (JitTrace_ELBO) or ``iwae`` (RenyiELBO with alpha = 0)."""
    particles = elbo.num_particles
    if not (isinstance(particles, int) and particles >= 1):
        raise ConfigError(f"elbo.num_particles={particles}: must be a positive integer")
    common = dict(num_particles=particles, vectorize_particles=particles > 1, max_plate_nesting=MAX_PLATE_NESTING)
    if elbo.name == "trace":
        return Objective(DeviceTrace_ELBO(**common), True)
    if elbo.name == "trace_pyro":
        return Objective(Trace_ELBO(**common), True)
    if elbo.name == "meanfield":
        return Objective(TraceMeanField_ELBO(**common), True)
    if elbo.name == "jit":
        return Objective(JitTrace_ELBO(ignore_jit_warnings=True, **common), True)
    if elbo.name == "iwae":
        return Objective(RenyiELBO(alpha=0.0, **common), False)
    raise ConfigError(f"elbo={elbo.name}: unknown objective; choose one of {', '.join(NAMES)}")
