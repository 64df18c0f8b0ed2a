"""Every objective against the bound derived by hand in the source paper (and Burda et al. for IWAE).

    ELBO(x) = E_q(z|x)[log p(x|z) + log p(z) - log q(z|x)]
            = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z))
    IWAE_K(x) = E[logsumexp_k log w_k - log K],  log w_k = log p(x|z_k) + log p(z_k) - log q(z_k|x)

The references share no code with the project beyond the networks being evaluated: the
reparameterized draw z = mu + sigma * eps, and the Bernoulli, Normal and KL formulas, are written
out here. With the same random draw (same RNG state, so the same eps) the loss and every gradient
must agree to float precision; where one side is an expectation, within 5 Monte Carlo standard errors.
"""

import math
from typing import NamedTuple

import pyro
import pyro.distributions as dist
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

from pyro_vae.modelling.objectives import IWAE_ELBO, CorrectedJitTrace_ELBO, DeviceTrace_ELBO
from pyro_vae.runs.configuration.builders import build_vae

from ..helpers import assert_same_loss_and_gradients, compose_tiny, parameter_gradients, program
from .hand_densities import (
    bernoulli_log_density,
    hand_elbo_loss,
    loc_and_scale_by_hand,
    normal_log_density,
    standard_normal_log_density,
)

pytestmark = pytest.mark.usefixtures("single_thread")

SEED = 123
NUM_DATA = 60  # != the batch of 6: the data scale N/B = 10 must enter where the bound puts it


class HandTerms(NamedTuple):
    """The three log-densities of each (particle, image) at the draw z, and q's parameters."""

    log_lik: torch.Tensor  # log p(x|z)
    log_prior: torch.Tensor  # log p(z)
    log_q: torch.Tensor  # log q(z|x)
    loc: torch.Tensor
    scale: torch.Tensor

    def elbo_loss(self, num_images: int) -> torch.Tensor:
        """-(N/B) sum over the draws of log p(x|z) + log p(z) - log q(z|x)."""
        return -(NUM_DATA / num_images) * (self.log_lik + self.log_prior - self.log_q).sum()


def hand_terms(vae, x, particles=None) -> HandTerms:
    """z = mu(x) + sigma(x) * eps, with eps drawn from the RNG as Pyro's rsample draws it, and the
    three log-densities of each (particle, image)."""
    loc, scale = vae.encoder(x, None)
    eps = torch.randn(loc.shape if particles is None else (particles, *loc.shape))
    z = loc + scale * eps
    log_lik = bernoulli_log_density(x.flatten(-3), vae.decoder(z).flatten(-3))
    return HandTerms(log_lik, standard_normal_log_density(z), normal_log_density(z, loc, scale), loc, scale)


def closed_form_kl(loc, scale):
    """KL(N(mu, sigma^2) || N(0, 1)) summed over latent dimensions, as derived in the paper."""
    return 0.5 * (loc**2 + scale**2 - 1 - torch.log(scale**2)).sum(-1)


# Pyro's validation on: the checked path every objective takes on a run's first step; off: the rest.
@pytest.mark.parametrize("validation", [True, False], ids=["validated", "unvalidated"])
@pytest.mark.parametrize("elbo", [Trace_ELBO(), DeviceTrace_ELBO()], ids=["Trace_ELBO", "DeviceTrace_ELBO"])
def test_trace_elbo_equals_hand_derivation_with_same_draw(small_vae, binary_batch, elbo, validation):
    x = binary_batch
    pyro.set_rng_seed(SEED)
    with pyro.validation_enabled(validation):
        ours = elbo.differentiable_loss(*program(small_vae, NUM_DATA), x)
    pyro.set_rng_seed(SEED)
    assert_same_loss_and_gradients(small_vae, ours, hand_terms(small_vae, x).elbo_loss(len(x)))


def flat_loss_and_gradients(vae, loss):
    return torch.cat([loss.detach().reshape(1)] + [g.flatten() for g in parameter_gradients(vae, loss)])


@pytest.mark.slow  # 400 compiled and 400 eager draws
def test_jit_trace_elbo_equals_hand_derivation_in_expectation(small_vae, binary_batch):
    """The compiled graph draws its noise through TorchScript's own random ops, so its eps differ
    from eager ones for the same seed; its loss and gradients are compared in expectation instead:
    400 draws on each side, the two means within 5 standard errors of their difference."""
    x, draws = binary_batch, 400
    jit = CorrectedJitTrace_ELBO(ignore_jit_warnings=True)
    model, guide = program(small_vae, NUM_DATA)  # one compiled graph: the cache is keyed by their id()
    ours, hand = [], []
    for seed in range(draws):
        pyro.set_rng_seed(seed)
        ours.append(flat_loss_and_gradients(small_vae, jit.differentiable_loss(model, guide, x)))
        hand.append(flat_loss_and_gradients(small_vae, hand_terms(small_vae, x).elbo_loss(len(x))))
    ours, hand = torch.stack(ours), torch.stack(hand)
    assert not torch.allclose(ours[0], ours[1])  # the draws do vary
    standard_error = ((ours.var(0) + hand.var(0)) / draws).sqrt()
    assert torch.all((ours.mean(0) - hand.mean(0)).abs() <= 5 * standard_error + 1e-5)


def test_meanfield_elbo_equals_closed_form_kl_derivation(small_vae, binary_batch):
    x = binary_batch
    pyro.set_rng_seed(SEED)
    ours = TraceMeanField_ELBO().differentiable_loss(*program(small_vae, NUM_DATA), x)
    pyro.set_rng_seed(SEED)
    terms = hand_terms(small_vae, x)
    hand = -(NUM_DATA / len(x)) * (terms.log_lik - closed_form_kl(terms.loc, terms.scale)).sum()
    assert_same_loss_and_gradients(small_vae, ours, hand)


@pytest.mark.parametrize("k", [1, 5, 50])
def test_iwae_loss_and_gradients_equal_the_hand_written_bound(small_vae, binary_batch, k):
    x = binary_batch
    pyro.set_rng_seed(SEED)
    ours = IWAE_ELBO(k).differentiable_loss(*program(small_vae, NUM_DATA), x)
    pyro.set_rng_seed(SEED)
    terms = hand_terms(small_vae, x, particles=k)
    log_w = (terms.log_lik + terms.log_prior - terms.log_q).reshape(k, len(x))
    # The dataset scale multiplies the per-image bound: it is applied after the logsumexp.
    hand = -(NUM_DATA / len(x)) * (torch.logsumexp(log_w, 0) - math.log(k)).sum()
    assert_same_loss_and_gradients(small_vae, ours, hand)


def test_iwae_with_one_particle_is_the_elbo(small_vae, binary_batch):
    pyro.set_rng_seed(SEED)
    iwae = IWAE_ELBO(1).differentiable_loss(*program(small_vae, NUM_DATA), binary_batch)
    pyro.set_rng_seed(SEED)
    elbo = Trace_ELBO().differentiable_loss(*program(small_vae, NUM_DATA), binary_batch)
    assert torch.allclose(iwae, elbo, rtol=1e-6)


def encoder_and_decoder_gradients(vae, x, k, gradient):
    loss = IWAE_ELBO(k, gradient).differentiable_loss(*program(vae, len(x)), x)
    encoder, decoder = list(vae.encoder.parameters()), list(vae.decoder.parameters())
    g = torch.autograd.grad(loss, encoder + decoder)

    def flat(tensors):
        return torch.cat([t.flatten() for t in tensors])

    return flat(g[: len(encoder)]), flat(g[len(encoder) :])


@pytest.mark.slow  # 300 paired draws for each k
@pytest.mark.parametrize("k", [5, 50])
def test_dreg_gradients_are_unbiased_for_the_encoder_and_unchanged_for_the_decoder(small_vae, binary_batch, k):
    """Tucker et al. (2019): E[DReG] = E[standard] for the encoder; the decoder's gradient is the same
    expression on the same draws. Checked on paired draws (same seed), 300 pairs, 5 standard errors."""
    x = binary_batch[:1]
    differences = []
    for seed in range(300):
        pyro.set_rng_seed(seed)
        standard_encoder, standard_decoder = encoder_and_decoder_gradients(small_vae, x, k, "standard")
        pyro.set_rng_seed(seed)
        dreg_encoder, dreg_decoder = encoder_and_decoder_gradients(small_vae, x, k, "dreg")
        assert torch.allclose(standard_decoder, dreg_decoder, rtol=1e-5, atol=1e-6)
        differences.append(standard_encoder - dreg_encoder)
    differences = torch.stack(differences)
    assert differences.abs().max() > 1e-3  # the two encoder estimators do differ draw by draw
    standard_error = differences.std(0) / math.sqrt(len(differences))
    assert torch.all(differences.mean(0).abs() <= 5 * standard_error + 1e-7)


def test_dreg_is_the_hand_written_doubly_reparameterized_surrogate(small_vae, binary_batch):
    """sum_k stopgrad(w~_k^2) log w_k, with q's parameters detached inside log q, gives the
    encoder's DReG gradient (Tucker et al. 2019, eq. 6)."""
    x, k = binary_batch, 5
    pyro.set_rng_seed(SEED)
    ours = IWAE_ELBO(k, "dreg").differentiable_loss(*program(small_vae, NUM_DATA), x)
    ours_encoder = torch.autograd.grad(ours, list(small_vae.encoder.parameters()))
    pyro.set_rng_seed(SEED)
    loc, scale = small_vae.encoder(x, None)
    z = loc + scale * torch.randn(k, *loc.shape)
    log_w = (
        bernoulli_log_density(x.flatten(-3), small_vae.decoder(z).flatten(-3))
        + standard_normal_log_density(z)
        - normal_log_density(z, loc.detach(), scale.detach())
    )
    weights = torch.softmax(log_w.detach(), 0)
    surrogate = -(NUM_DATA / len(x)) * (weights**2 * log_w).sum()
    hand_encoder = torch.autograd.grad(surrogate, list(small_vae.encoder.parameters()))
    for g_ours, g_hand in zip(ours_encoder, hand_encoder):
        assert torch.allclose(g_ours, g_hand, rtol=1e-5, atol=1e-4)


def test_trace_elbo_expectation_matches_reconstruction_minus_closed_form_kl(small_vae, binary_batch):
    x, draws = binary_batch, 20000
    with torch.no_grad():
        terms = hand_terms(small_vae, x, particles=draws)
        kl = closed_form_kl(terms.loc, terms.scale)
        # E_q[log q(z|x) - log p(z)] = KL exactly; per image within 5 standard errors.
        kl_terms = terms.log_q - terms.log_prior
        assert torch.all((kl_terms.mean(0) - kl).abs() < 5 * kl_terms.std(0) / math.sqrt(draws) + 1e-6)
        expected = (terms.log_lik.mean(0) - kl).sum()
        elbo_se = (terms.log_lik + terms.log_prior - terms.log_q).sum(-1).std() / math.sqrt(draws)
        pyro_elbo = -Trace_ELBO(num_particles=draws, vectorize_particles=True, max_plate_nesting=1).loss(
            small_vae.model, small_vae.guide, x
        )
    assert abs(pyro_elbo - expected.item()) < 5 * elbo_se.item()


@pytest.mark.parametrize("scale_mode", ["learned", "per_pixel", "predicted", "fixed"])
def test_trace_elbo_equals_hand_derivation_for_the_gaussian_decoder(scale_mode):
    cfg = compose_tiny("likelihood=gaussian", "net=mlp", f"likelihood.scale_mode={scale_mode}")
    vae = build_vae(cfg, (3, 4, 4), 10)
    with torch.no_grad():  # move learned sigmas away from their initial value
        for p in vae.likelihood.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    x = torch.rand(5, 3, 4, 4)

    def log_likelihood(out):
        loc, scale = loc_and_scale_by_hand(out, scale_mode, getattr(vae.likelihood, "raw_scale", None), cfg.likelihood)
        return normal_log_density(x.flatten(1), loc.flatten(1), scale.flatten(1))

    pyro.set_rng_seed(SEED)
    ours = Trace_ELBO().differentiable_loss(*program(vae, NUM_DATA), x)
    pyro.set_rng_seed(SEED)
    assert_same_loss_and_gradients(vae, ours, hand_elbo_loss(vae, x, log_likelihood, NUM_DATA))


@pytest.mark.parametrize("validation", [True, False], ids=["validated", "unvalidated"])
def test_device_trace_elbo_equals_pyro_trace_elbo_with_particles(small_vae, binary_batch, validation):
    kwargs = dict(num_particles=4, vectorize_particles=True, max_plate_nesting=1)
    pyro.set_rng_seed(SEED)
    expected = Trace_ELBO(**kwargs).differentiable_loss(small_vae.model, small_vae.guide, binary_batch)
    pyro.set_rng_seed(SEED)
    with pyro.validation_enabled(validation):
        ours = DeviceTrace_ELBO(**kwargs).differentiable_loss(small_vae.model, small_vae.guide, binary_batch)
    assert_same_loss_and_gradients(small_vae, ours, expected)


def test_objectives_refuse_a_guide_without_reparameterization(binary_batch):
    def model(x):
        pyro.sample("k", dist.Bernoulli(0.5))

    def guide(x):
        pyro.sample("k", dist.Bernoulli(0.3))

    for objective in (DeviceTrace_ELBO(), IWAE_ELBO(3)):
        with pytest.raises(NotImplementedError, match="guide site 'k' is not reparameterized"):
            objective.differentiable_loss(model, guide, binary_batch)
