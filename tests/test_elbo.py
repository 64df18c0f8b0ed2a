"""Pyro's objectives against the ELBO derived by hand in the source paper.

    ELBO(x) = E_q(z|x)[log p(x|z) + log p(z) - log q(z|x)]
            = E_q(z|x)[log p(x|z)] - KL(q(z|x) || p(z))

With the same random draw (same RNG state) the single-sample estimates must agree exactly;
where one side is an expectation, they must agree within Monte Carlo error.
"""
import math

import pyro
import pytest
import torch
from pyro.infer import JitTrace_ELBO, RenyiELBO, Trace_ELBO, TraceMeanField_ELBO
from torch.distributions import kl_divergence

from pyro_vae.objectives import DeviceTrace_ELBO

SEED = 123


def hand_terms(vae, x, sample_shape=()):
    """One reparameterized draw z ~ q(z|x) and its three log-densities, per image."""
    q = vae.guide_dist(x)
    z = q.rsample(sample_shape)
    prior = vae.prior(len(x), x)
    return vae.likelihood(z).log_prob(x), prior.log_prob(z), q.log_prob(z), q, prior


def grads(vae, loss):
    params = [p for p in vae.parameters()]
    return torch.autograd.grad(loss, params)


@pytest.mark.parametrize("elbo", [Trace_ELBO(), DeviceTrace_ELBO()], ids=["Trace_ELBO", "DeviceTrace_ELBO"])
def test_trace_elbo_equals_hand_derivation_with_same_draw(small_vae, binary_batch, elbo):
    x = binary_batch
    pyro.set_rng_seed(SEED)
    pyro_loss = elbo.differentiable_loss(small_vae.model, small_vae.guide, x, num_data=60)
    pyro.set_rng_seed(SEED)
    log_lik, log_prior, log_q, _, _ = hand_terms(small_vae, x)
    hand_loss = -(log_lik + log_prior - log_q).sum() * (60 / len(x))
    assert torch.allclose(pyro_loss, hand_loss, rtol=1e-6, atol=1e-3)
    for g_pyro, g_hand in zip(grads(small_vae, pyro_loss), grads(small_vae, hand_loss)):
        assert torch.allclose(g_pyro, g_hand, rtol=1e-5, atol=1e-5)


def test_plate_scale_makes_loss_a_whole_dataset_estimate(small_vae, binary_batch):
    num_data = 600
    pyro.set_rng_seed(SEED)
    batch_loss = Trace_ELBO().loss(small_vae.model, small_vae.guide, binary_batch)
    pyro.set_rng_seed(SEED)
    data_loss = Trace_ELBO().loss(small_vae.model, small_vae.guide, binary_batch, num_data=num_data)
    assert data_loss == pytest.approx(batch_loss * num_data / len(binary_batch), rel=1e-5)


def test_meanfield_elbo_equals_closed_form_kl_derivation(small_vae, binary_batch):
    x = binary_batch
    pyro.set_rng_seed(SEED)
    pyro_loss = TraceMeanField_ELBO().differentiable_loss(small_vae.model, small_vae.guide, x)
    pyro.set_rng_seed(SEED)
    log_lik, _, _, q, _ = hand_terms(small_vae, x)
    loc, scale = q.base_dist.loc, q.base_dist.scale
    # KL(N(mu, sigma^2) || N(0, 1)) summed over latent dimensions, as derived in the paper.
    kl = 0.5 * (loc**2 + scale**2 - 1 - torch.log(scale**2)).sum(-1)
    hand_loss = -(log_lik - kl).sum()
    assert torch.allclose(pyro_loss, hand_loss, rtol=1e-6, atol=1e-4)
    for g_pyro, g_hand in zip(grads(small_vae, pyro_loss), grads(small_vae, hand_loss)):
        assert torch.allclose(g_pyro, g_hand, rtol=1e-5, atol=1e-5)


def test_trace_elbo_expectation_matches_reconstruction_minus_closed_form_kl(small_vae, binary_batch):
    x = binary_batch
    draws = 20000
    with torch.no_grad():
        log_lik, log_prior, log_q, q, prior = hand_terms(small_vae, x, (draws,))
        closed_kl = kl_divergence(q, prior)
        # E_q[log p(z) - log q(z|x)] = -KL exactly; check it per image within 5 standard errors.
        kl_terms = log_q - log_prior
        se = kl_terms.std(0) / math.sqrt(draws)
        assert torch.all((kl_terms.mean(0) - closed_kl).abs() < 5 * se + 1e-6)
        expected = (log_lik.mean(0) - closed_kl).sum()
        elbo_se = (log_lik + log_prior - log_q).sum(-1).std() / math.sqrt(draws)
        pyro_elbo = -Trace_ELBO(num_particles=draws, vectorize_particles=True, max_plate_nesting=1).loss(
            small_vae.model, small_vae.guide, x
        )
    assert abs(pyro_elbo - expected.item()) < 5 * elbo_se.item()


def test_jit_trace_elbo_equals_trace_elbo(small_vae, binary_batch):
    pyro.set_rng_seed(SEED)
    expected = Trace_ELBO().loss(small_vae.model, small_vae.guide, binary_batch)
    pyro.set_rng_seed(SEED)
    jitted = JitTrace_ELBO(ignore_jit_warnings=True).loss(small_vae.model, small_vae.guide, binary_batch)
    assert jitted == pytest.approx(expected, rel=1e-5)


def test_iwae_objective_equals_hand_importance_weighted_bound(small_vae, binary_batch):
    x, k = binary_batch, 7
    pyro.set_rng_seed(SEED)
    pyro_loss = RenyiELBO(alpha=0.0, num_particles=k, vectorize_particles=True, max_plate_nesting=1).loss(
        small_vae.model, small_vae.guide, x
    )
    pyro.set_rng_seed(SEED)
    with torch.no_grad():
        log_lik, log_prior, log_q, _, _ = hand_terms(small_vae, x, (k,))
    log_w = log_lik + log_prior - log_q
    hand_loss = -(torch.logsumexp(log_w, 0) - math.log(k)).sum()
    assert pyro_loss == pytest.approx(hand_loss.item(), rel=1e-5)


def gaussian_log_density(x, loc, scale):
    """log N(x; loc, scale^2) summed over the pixels of each image, written out by hand."""
    per_pixel = -0.5 * ((x - loc) / scale) ** 2 - torch.log(scale) - 0.5 * math.log(2 * math.pi)
    return per_pixel.flatten(-3).sum(-1)


@pytest.mark.parametrize("scale_mode", ["learned", "per_pixel", "predicted", "fixed"])
def test_trace_elbo_equals_hand_derivation_for_the_gaussian_decoder(scale_mode):
    from torch.nn.functional import softplus

    from pyro_vae.vae import build_vae

    from .conftest import TINY, compose_config

    cfg = compose_config(TINY + ["likelihood=gaussian", "net=mlp", f"likelihood.scale={scale_mode}"])
    vae = build_vae(cfg, (3, 4, 4), 10)
    with torch.no_grad():  # move learned sigmas away from their initial value
        for name, p in vae.pixels.named_parameters():
            p.add_(torch.randn_like(p) * 0.5)
    x = torch.rand(5, 3, 4, 4)
    pyro.set_rng_seed(SEED)
    pyro_loss = Trace_ELBO().differentiable_loss(vae.model, vae.guide, x)

    pyro.set_rng_seed(SEED)
    q = vae.guide_dist(x)
    z = q.rsample()
    out = vae.decoder(z)
    floor = cfg.likelihood.min_scale
    if scale_mode == "predicted":
        loc, scale = out[:, :3], softplus(out[:, 3:]) + floor
    elif scale_mode == "fixed":
        loc, scale = out, torch.full_like(out, cfg.likelihood.fixed_scale)
    else:
        loc, scale = out, (softplus(vae.pixels.raw_scale) + floor).expand_as(out)
    log_prior = (-0.5 * z**2 - 0.5 * math.log(2 * math.pi)).sum(-1)
    hand_loss = -(gaussian_log_density(x, loc, scale) + log_prior - q.log_prob(z)).sum()
    assert torch.allclose(pyro_loss, hand_loss, rtol=1e-6, atol=1e-3)
    for g_pyro, g_hand in zip(grads(vae, pyro_loss), grads(vae, hand_loss)):
        assert torch.allclose(g_pyro, g_hand, rtol=1e-4, atol=1e-4)


def test_device_trace_elbo_equals_pyro_trace_elbo_with_particles(small_vae, binary_batch):
    kwargs = dict(num_particles=4, vectorize_particles=True, max_plate_nesting=1)
    pyro.set_rng_seed(SEED)
    expected = Trace_ELBO(**kwargs).differentiable_loss(small_vae.model, small_vae.guide, binary_batch)
    pyro.set_rng_seed(SEED)
    ours = DeviceTrace_ELBO(**kwargs).differentiable_loss(small_vae.model, small_vae.guide, binary_batch)
    assert torch.allclose(ours, expected, rtol=1e-6)
    for g_ours, g_pyro in zip(grads(small_vae, ours), grads(small_vae, expected)):
        assert torch.allclose(g_ours, g_pyro, rtol=1e-5, atol=1e-6)


def test_device_trace_elbo_refuses_a_guide_without_reparameterization(binary_batch):
    import pyro.distributions as dist

    def model(x):
        pyro.sample("k", dist.Bernoulli(0.5))

    def guide(x):
        pyro.sample("k", dist.Bernoulli(0.3))

    with pytest.raises(NotImplementedError, match="guide site 'k' is not reparameterized"):
        DeviceTrace_ELBO().differentiable_loss(model, guide, binary_batch)
