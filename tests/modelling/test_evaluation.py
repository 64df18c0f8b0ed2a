"""The importance-sampled log-likelihood estimate against the ELBO."""

import math

import pyro
import pytest
import torch

from pyro_vae.modelling.estimators import bits_per_dim, evaluate

pytestmark = pytest.mark.usefixtures("single_thread")


def test_k1_estimate_is_the_elbo_and_the_terms_add_up(small_vae, binary_batch):
    result = evaluate(small_vae, binary_batch, num_samples=1)
    assert abs(result.log_likelihood - result.elbo) < 1e-4
    many = evaluate(small_vae, binary_batch, num_samples=4000)
    # ELBO = E[log p(x|z)] - KL, the reconstruction term estimated on the same draws.
    assert abs(many.elbo - (many.reconstruction - many.kl)) < 0.1


def test_log_likelihood_is_above_the_elbo_and_grows_with_k(small_vae, binary_batch):
    estimates = {k: [] for k in (1, 10, 100, 1000)}
    for seed in range(5):
        for k in estimates:
            pyro.set_rng_seed(seed)
            result = evaluate(small_vae, binary_batch, num_samples=k)
            assert result.log_likelihood >= result.elbo - 1e-5
            estimates[k].append(result.log_likelihood)
    means = [sum(v) / len(v) for v in estimates.values()]
    assert means == sorted(means), means
    assert means[-1] > means[0] + 0.1


def test_chunking_bounds_memory_without_changing_the_estimate(small_vae, binary_batch):
    pyro.set_rng_seed(0)
    whole = evaluate(small_vae, binary_batch, num_samples=2000, chunk_size=1_000_000)
    pyro.set_rng_seed(1)
    chunked = evaluate(small_vae, binary_batch, num_samples=2000, chunk_size=300)
    # Independent draws differ by Monte Carlo noise (~0.1 nat here); a chunk-boundary bug
    # (a per-chunk log K, a lost chunk) would be off by more than a nat.
    assert abs(whole.log_likelihood - chunked.log_likelihood) < 0.3
    assert abs(whole.kl - chunked.kl) < 1e-4  # closed form: independent of the draws


def test_active_units_count_posterior_means_that_vary_across_images(small_vae):
    x = torch.bernoulli(torch.rand(64, 1, 4, 4))
    result = evaluate(small_vae, x)
    assert 0 <= result.active_units <= small_vae.latent_dim
    with torch.no_grad():
        for p in small_vae.encoder.parameters():
            p.zero_()  # every image now has the same posterior: no unit is active
    assert evaluate(small_vae, x).active_units == 0


def test_bits_per_dim_conversion():
    # A uniform density on [0, 1]^D has log p = 0: exactly 8 bits per dimension.
    assert bits_per_dim(0.0, 3072) == 8.0
    # Each extra nat of log-likelihood per dimension saves 1/ln 2 bits.
    d = 784
    assert abs(bits_per_dim(d * 1.0, d) - (8 - 1 / math.log(2))) < 1e-12
    # A published anchor: 3.11 bits/dim on CIFAR-10 is -log p(x) = D (3.11 ln 2 - ln 256) nats of density.
    nats = -3072 * (3.11 * math.log(2) - math.log(256))
    assert abs(bits_per_dim(nats, 3072) - 3.11) < 1e-12


def test_progress_hears_of_every_image_once_per_chunk(small_vae, binary_batch):
    """``progress`` is told each chunk's images as it is done: the counts add up to the split, one
    call per chunk of ``chunk_size // K`` images (6 images, K = 10, 20 pairs a chunk: 3 chunks of 2)."""
    done = []
    evaluate(small_vae, binary_batch, num_samples=10, chunk_size=20, progress=done.append)
    assert done == [2, 2, 2]
