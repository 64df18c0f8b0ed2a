"""The VampPrior (``prior=vampprior``) against its mixture written out by hand.

p(z) = (1/K) sum_k N(z; mu(u_k), diag sigma(u_k)^2), the guide's posterior at K pseudo-inputs:
its log-density from the encoder's outputs and the Gaussian density written here, and the ELBO
under it against the same terms on the guide's own draw, losses and gradients (the pseudo-inputs
and the encoder get the prior's gradient too).
"""

import math

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from torch.nn import functional as F

import pyro_vae
from pyro_vae.modelling.priors import StandardNormal, VampPrior
from pyro_vae.runs.configuration.builders import build_vae

from ..helpers import compose_tiny, program, read_metrics, train_tiny_run

SHAPE, LATENT, K, NUM_DATA = (1, 4, 4), 2, 3, 60

pytestmark = pytest.mark.usefixtures("single_thread")


def vamp_vae():
    cfg = compose_tiny("prior=vampprior", f"prior.num_pseudo_inputs={K}", f"latent_dim={LATENT}")
    pyro.set_rng_seed(0)
    return build_vae(cfg, SHAPE, 10)


def mixture_log_density(vae, z: torch.Tensor) -> torch.Tensor:
    """log (1/K) sum_k N(z; mu_k, diag s_k^2), with mu_k, s_k the encoder's outputs at the clipped pseudo-inputs."""
    loc, scale = vae.encoder(vae.latent_prior.pseudo_inputs.clamp(0, 1))
    z = z.unsqueeze(-2)  # (..., 1, d) against (K, d)
    log_normal = -0.5 * ((z - loc) / scale) ** 2 - scale.log() - 0.5 * math.log(2 * math.pi)
    return torch.logsumexp(log_normal.sum(-1), dim=-1) - math.log(K)


def test_the_prior_is_the_mixture_of_the_guide_at_the_pseudo_inputs():
    vae = vamp_vae()
    assert isinstance(vae.latent_prior, VampPrior) and not vae.latent_prior.closed_form_kl
    z = torch.randn(5, 7, LATENT)
    assert torch.allclose(vae.prior(7).log_prob(z), mixture_log_density(vae, z), atol=1e-5)
    assert vae.prior(7).sample().shape == (7, LATENT)
    assert isinstance(build_vae(compose_tiny(), SHAPE, 10).latent_prior, StandardNormal)


def test_pseudo_inputs_are_clipped_into_the_pixel_range():
    vae = vamp_vae()
    with torch.no_grad():
        vae.latent_prior.pseudo_inputs.mul_(100).sub_(50)
    z = torch.randn(4, LATENT)
    assert torch.allclose(vae.prior(4).log_prob(z), mixture_log_density(vae, z), atol=1e-5)
    assert torch.equal(F.hardtanh(vae.latent_prior.pseudo_inputs, 0, 1), vae.latent_prior.pseudo_inputs.clamp(0, 1))


def test_trace_elbo_under_the_vampprior_equals_the_hand_derivation():
    """Pyro's loss, with the guide's draw z fixed by replay, against (N/B) sum_i [log p(x|z) +
    log p_vamp(z) - log q(z|x)] written from the same z: equal losses and gradients."""
    vae = vamp_vae()
    x = torch.bernoulli(torch.full((6, *SHAPE), 0.3))
    model, guide = program(vae, NUM_DATA)
    trace = poutine.trace(guide).get_trace(x)
    ours = Trace_ELBO().differentiable_loss(model, poutine.replay(guide, trace=trace), x)
    z = trace.nodes["z"]["value"]
    logits = vae.decoder(z)
    log_lik = (x * F.logsigmoid(logits) + (1 - x) * F.logsigmoid(-logits)).flatten(1).sum(-1)
    loc, scale = vae.encoder(x)
    log_q = (-0.5 * ((z - loc) / scale) ** 2 - scale.log() - 0.5 * math.log(2 * math.pi)).sum(-1)
    hand = -(NUM_DATA / len(x)) * (log_lik + mixture_log_density(vae, z) - log_q).sum()
    assert torch.allclose(ours, hand, rtol=1e-5)
    ours_gradients = torch.autograd.grad(ours, list(vae.parameters()), retain_graph=True)
    hand_gradients = torch.autograd.grad(hand, list(vae.parameters()))
    for (name, _), a, b in zip(vae.named_parameters(), ours_gradients, hand_gradients):
        assert torch.allclose(a, b, rtol=1e-4, atol=1e-5), name
    pseudo_inputs = [name for name, _ in vae.named_parameters()].index("latent_prior.pseudo_inputs")
    assert hand_gradients[pseudo_inputs].abs().sum() > 0


@pytest.mark.slow  # a tiny run end to end
def test_a_run_with_the_vampprior_reports_a_monte_carlo_kl(tmp_path):
    run = train_tiny_run(tmp_path, "prior=vampprior", "prior.num_pseudo_inputs=8", "epochs=2")
    metrics = read_metrics(run)
    assert metrics["test_log_likelihood"] >= metrics["test_elbo"]
    assert math.isfinite(metrics["test_kl"])
    vae = pyro_vae.load(run)
    assert vae.latent_prior.pseudo_inputs.shape == (8, 1, 28, 28)
    assert (run / "figures" / "samples.png").is_file()
