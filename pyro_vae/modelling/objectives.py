"""The variational objectives, by the name of their ``objective=`` option.

Every objective's loss estimates minus the bound of the *whole* training set from one
minibatch: the model's plate is scaled by N/B, and each objective applies that scale where the
bound's algebra puts it (to each log-density for the ELBO, after the per-image logsumexp for IWAE).
"""

import math
import warnings
from typing import Callable, Tuple

import torch
from pyro import poutine
from pyro.infer import ELBO, JitTrace_ELBO, Trace_ELBO
from pyro.infer.enum import get_importance_trace
from pyro.infer.util import is_validation_enabled
from pyro.poutine import Trace
from pyro.poutine.messenger import Messenger
from pyro.poutine.util import site_is_subsample
from torch import nn

from ..setting_types import Gradient

# The model has one plate (the data); declaring it spares Pyro a trace to discover it.
MAX_PLATE_NESTING = 1


class DeviceTrace_ELBO(Trace_ELBO):
    """Trace_ELBO whose loss stays on the device: the same traces and the same estimate,
    without the host reads (``torch_item``) Trace_ELBO makes at every site of every step.

    Valid when every latent site of the guide is reparameterized, as the VAE's Gaussian
    guide is: the surrogate loss then equals the loss, and no score-function term is needed.
    With Pyro's validation on (the first step of a run), the traces come from Pyro's own
    ``get_importance_trace`` with all its checks; otherwise the guide is traced and the model
    replayed against it by the same handlers, without the copies of both traces that pruning
    the plate's subsample sites costs (those sites are skipped instead) or the guide's score parts.
    """

    def _get_trace(self, model, guide, args, kwargs) -> Tuple[Trace, Trace]:
        if is_validation_enabled():
            return super()._get_trace(model, guide, args, kwargs)
        guide_trace = poutine.trace(guide).get_trace(*args, **kwargs)
        model_trace = poutine.trace(poutine.replay(model, trace=guide_trace)).get_trace(*args, **kwargs)
        return model_trace, guide_trace

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        loss = 0.0
        for model_trace, guide_trace in self._get_traces(model, guide, args, kwargs):
            model_trace.compute_log_prob(_is_density_site)
            guide_trace.compute_log_prob(_is_density_site)
            elbo = sum(site["log_prob_sum"] for _, site in _sample_sites(model_trace))
            for name, site in _sample_sites(guide_trace):
                _require_reparameterized(name, site)
                elbo = elbo - site["log_prob_sum"]
            loss = loss - elbo / self.num_particles
        return loss


class CorrectedJitTrace_ELBO(JitTrace_ELBO):
    """JitTrace_ELBO whose gradient is the ELBO's gradient, once.

    Pyro's (1.8.4 to 1.9) ``JitTrace_ELBO.differentiable_loss`` returns ``loss + (surrogate - surrogate.detach())``
    where the compiled ``loss`` is itself differentiable, so every gradient comes out doubled
    (``tests/modelling/test_elbo.py`` compares it with the hand derivation). Detaching ``loss`` fixes it.
    """

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        loss, surrogate_loss = self.loss_and_surrogate_loss(model, guide, *args, **kwargs)
        return loss.detach() + (surrogate_loss - surrogate_loss.detach())


class IWAE_ELBO(ELBO):
    """The importance-weighted bound of Burda et al. (2016) with K = ``num_particles``:

        L_K = (N/B) sum_i [logsumexp_k log w_ik - log K],
        log w_ik = log p(x_i, z_ik) - log q(z_ik | x_i),   z_ik ~ q(z | x_i).

    The log-weights are built from *unscaled* log-densities and the dataset scale N/B is
    applied after the per-image logsumexp; Pyro's RenyiELBO scales first, which under a data
    scale computes logsumexp_k((N/B) log w_ik) instead, not the bound. Particles are vectorized.

    ``gradient="dreg"``: the doubly reparameterized estimator of Tucker et al. (2019) for the
    guide's parameters, sum_k w~_k^2 d log w_k / dz_k dz_k / dphi with q's parameters held
    fixed inside log q; the model's gradient is the standard one, sum_k w~_k d log w_k / dtheta.
    It holds for every reparameterized guide (any Gaussian, a flow, two layers); holding a flow's
    parameters fixed means inverting it to score z, ``latent_dim`` passes per step.
    """

    def __init__(
        self, num_particles: int = 1, gradient: str = "standard", max_plate_nesting: int = MAX_PLATE_NESTING
    ) -> None:
        if gradient not in Gradient.values():
            raise ValueError(f"gradient={gradient!r}: choose one of {', '.join(Gradient.values())}")
        super().__init__(num_particles=num_particles, max_plate_nesting=max_plate_nesting, vectorize_particles=True)
        self.gradient = gradient

    def _get_trace(self, model, guide, args, kwargs) -> Tuple[Trace, Trace]:
        return get_importance_trace("flat", self.max_plate_nesting, model, guide, args, kwargs)

    def differentiable_loss(self, model, guide, *args, **kwargs) -> torch.Tensor:
        if self.gradient == "dreg":
            log_w, scale = self._dreg_log_weights(model, guide, args, kwargs)
        else:
            log_w, scale = self._log_weights(*next(self._get_traces(model, guide, args, kwargs)))
        bound = torch.logsumexp(log_w, 0) - math.log(self.num_particles)
        return -scale * bound.sum()

    def loss(self, model, guide, *args, **kwargs) -> float:
        with torch.no_grad():
            return self.differentiable_loss(model, guide, *args, **kwargs).item()

    def loss_and_grads(self, model, guide, *args, **kwargs) -> float:
        loss = self.differentiable_loss(model, guide, *args, **kwargs)
        loss.backward()
        return loss.item()

    def _log_weights(self, model_trace: Trace, guide_trace: Trace) -> Tuple[torch.Tensor, float]:
        """Per-particle, per-image log-weights, shape (K, B), and the dataset scale N/B."""
        log_w, scales = 0.0, set()
        for _, site in _sample_sites(model_trace):
            log_w = log_w + site["unscaled_log_prob"]
            scales.add(float(site["scale"]))
        for name, site in _sample_sites(guide_trace):
            _require_reparameterized(name, site)
            log_w = log_w - site["unscaled_log_prob"]
            scales.add(float(site["scale"]))
        if len(scales) != 1:
            raise ValueError(f"IWAE needs one scale for every site (the data plate's N/B), found {sorted(scales)}")
        return log_w.reshape(self.num_particles, -1), scales.pop()  # one particle: no particle dimension yet

    def _dreg_log_weights(self, model, guide, args, kwargs) -> Tuple[torch.Tensor, float]:
        """The log-weights of the DReG estimator: the guide draws z (every layer), and the model and
        log q score z with the guide's parameters held fixed, so that log q reaches the guide only
        through z (and through z1 in q(z2|z1), where a layer depends on another). The gradient that
        reaches each z_k through the logsumexp carries w~_k; a hook on the scored copy of z adds the
        second factor. The copy is scored, not the draw itself: a draw that feeds the next layer's
        draw would otherwise pass that layer's gradient through two hooks."""
        guide_trace = poutine.trace(self._vectorized_num_particles(guide)).get_trace(*args, **kwargs)
        scored = {}
        for name, site in _sample_sites(guide_trace):
            _require_reparameterized(name, site)
            scored[name] = site["value"].view_as(site["value"])

        def scored_trace(program: Callable) -> Callable:
            def trace(*args, **kwargs):
                conditioned = poutine.condition(self._vectorized_num_particles(program), data=scored)
                traced = poutine.trace(conditioned).get_trace(*args, **kwargs)
                traced.compute_log_prob(_is_density_site)  # here: a flow computes its density only when asked
                return traced

            return trace

        log_w, scale = self._log_weights(
            scored_trace(model)(*args, **kwargs), _with_fixed_parameters(guide, scored_trace)(*args, **kwargs)
        )
        normalized = torch.softmax(log_w.detach(), 0)
        for name, z in scored.items():
            event_dims = len(guide_trace.nodes[name]["fn"].event_shape)
            factor = normalized.reshape(z.shape[: z.dim() - event_dims] + (1,) * event_dims)
            z.register_hook(lambda grad, factor=factor: grad * factor)
        return log_w, scale


class _Program(nn.Module):
    """The scored trace of a method of a module, e.g. ``VAE.guide``, as the module's forward: what
    ``functional_call`` runs."""

    def __init__(self, owner: nn.Module, method: str, scored_trace: Callable[[Callable], Callable]) -> None:
        super().__init__()
        self.owner, self.method, self.scored_trace = owner, method, scored_trace

    def forward(self, *args, **kwargs):
        return self.scored_trace(getattr(self.owner, self.method))(*args, **kwargs)


def _with_fixed_parameters(guide: Callable, scored_trace: Callable[[Callable], Callable]) -> Callable:
    """``scored_trace(guide)``, ``guide`` a method of an ``nn.Module`` (as ``VAE.guide`` is), run with the
    module's parameters detached: its log-densities then depend on the values they score and not on the
    parameters. The trace is scored inside, while they are detached: Zuko's flows run their networks
    only when their log-density is asked for."""
    owner = getattr(guide, "__self__", None)
    if not isinstance(owner, nn.Module):
        raise TypeError("objective.gradient=dreg holds the guide's parameters fixed: pass a method of an nn.Module")
    program = _Program(owner, guide.__name__, scored_trace)
    fixed = {name: parameter.detach() for name, parameter in program.named_parameters()}

    def fixed_guide(*args, **kwargs):
        with warnings.catch_warnings():  # pyro.module notes every detached parameter it does not register
            warnings.filterwarnings("ignore", message=".*requires_grad=False")
            return torch.func.functional_call(program, fixed, args, kwargs)

    return fixed_guide


class KLWeighting(Messenger):
    """Weights the log-densities of the per-image latent sites (those inside the data plate that
    are not observed) by ``kl_weight``, beta: the ELBO's KL term becomes beta * KL, the beta-VAE
    objective. Sites outside the data plate (a Bayesian decoder's weights) keep their weight.
    ``poutine.scale`` takes positive weights only, so beta = 0 masks those sites out instead."""

    def __init__(self, kl_weight: float, plate: str = "data") -> None:
        super().__init__()
        self.kl_weight, self.plate = kl_weight, plate

    def _process_message(self, msg: dict) -> None:
        if msg["type"] != "sample" or msg["is_observed"] or site_is_subsample(msg):
            return
        if not any(frame.name == self.plate for frame in msg["cond_indep_stack"]):
            return
        if self.kl_weight > 0:
            msg["scale"] = self.kl_weight * msg["scale"]
        else:
            msg["mask"] = False


def _is_density_site(name: str, site: dict) -> bool:
    """A sample site with a log-density: not one of the subsample sites that plates record."""
    return not site_is_subsample(site)


def _sample_sites(trace: Trace):
    return (
        (name, site) for name, site in trace.nodes.items() if site["type"] == "sample" and _is_density_site(name, site)
    )


def _require_reparameterized(name: str, site: dict) -> None:
    if not site["fn"].has_rsample:
        raise NotImplementedError(f"guide site {name!r} is not reparameterized; use svi_step=pyro")
