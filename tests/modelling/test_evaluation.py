"""The importance-sampled log-likelihood estimate against the ELBO."""

import math

import pyro
import pytest
import torch

from pyro_vae.modelling.estimators import ACTIVE_UNIT_THRESHOLD, active_units, bits_per_dim, evaluate

pytestmark = pytest.mark.usefixtures("single_thread")


def test_k1_estimate_is_the_elbo_and_the_terms_add_up(small_vae, binary_batch):
    result = evaluate(small_vae, binary_batch, num_samples=1)
    assert abs(result.log_likelihood - result.elbo) < 1e-4
    many = evaluate(small_vae, binary_batch, num_samples=20000)
    # KL(N(mu, s^2) || N(0, I)) = (mu^2 + s^2 - 1 - log s^2) / 2 per unit, from the encoder's own q.
    q = small_vae.encode(binary_batch)
    kl = (q.mean**2 + q.variance - 1 - q.variance.log()).sum(-1).mean().item() / 2
    assert abs(many.kl - kl) < 1e-5  # 0.587 here: a KL off by 5% is off by 0.03
    # ELBO = E[log p(x|z)] - KL with the reconstruction term on the same draws: they differ by the
    # Monte Carlo error of E_q[log p(z) - log q(z)] = -KL, whose standard deviation at K = 20000 is
    # 0.0024 nat (50 seeds; 0.0024 from the per-draw variance too); 0.012 is five of it.
    assert abs(many.elbo - (many.reconstruction - many.kl)) < 0.012


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
    # One image a chunk either way (chunk_size // K = 1), its 2000 samples in one chunk or in chunks
    # of 300, ..., 300, 200: from one seed both draw the same z in the same order (each chunk a
    # multiple of 16 normals, so torch's generator runs on unbroken). Measured over 50 seeds they
    # agree to 0.0; a lost last chunk moves log p(x) by 0.16 nat, a per-chunk log K by more.
    pyro.set_rng_seed(0)
    one_chunk = evaluate(small_vae, binary_batch, num_samples=2000, chunk_size=2000)
    pyro.set_rng_seed(0)
    chunked = evaluate(small_vae, binary_batch, num_samples=2000, chunk_size=300)
    assert abs(one_chunk.log_likelihood - chunked.log_likelihood) < 1e-4
    assert abs(one_chunk.elbo - chunked.elbo) < 1e-4
    assert abs(one_chunk.kl - chunked.kl) < 1e-4  # closed form: independent of the draws
    # All six images in one chunk draw in another order: Monte Carlo noise apart. The difference's
    # standard deviation is 0.036 nat (50 seeds); 0.18 is five of it.
    pyro.set_rng_seed(1)
    whole = evaluate(small_vae, binary_batch, num_samples=2000, chunk_size=1_000_000)
    assert abs(whole.log_likelihood - one_chunk.log_likelihood) < 0.18


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


# Variances over the images of a unit's posterior mean, clearly either side of Burda's threshold 0.01.
ABOVE, BELOW = 0.012, 0.008


def test_active_units_count_exactly_the_means_that_vary_by_more_than_the_threshold():
    n = 50
    signs = torch.tensor([1.0, -1.0]).repeat(n // 2)  # unbiased variance over the n images: n / (n - 1)
    variances = torch.tensor([ABOVE, 0.0, BELOW, 1.0, ABOVE, 0.5 * BELOW, 3 * ABOVE])
    means = 0.7 + signs[:, None] * (variances * (n - 1) / n).sqrt()  # offset: the count reads spread, not size
    assert torch.allclose(means.var(0), variances)
    assert BELOW < ACTIVE_UNIT_THRESHOLD < ABOVE
    assert active_units(means) == 4
    assert active_units(means[:, [1, 2, 5]]) == 0
    assert active_units(means[:1]) == 0  # a single image shows no variation


def half_lit_images(n: int) -> torch.Tensor:
    """``n`` random 4x4 binary images whose first pixel is lit in exactly every other one: its
    unbiased variance over the images is n / (4 (n - 1))."""
    x = torch.bernoulli(torch.full((n, 1, 4, 4), 0.5))
    x[:, 0, 0, 0] = (torch.arange(n) % 2).float()
    return x


def test_evaluate_reports_the_units_whose_posterior_mean_varies_by_more_than_the_threshold(small_vae):
    """The encoder's head (Linear, ReLU, Linear) set by hand: hidden unit 0 is relu(x_0) = x_0 and
    every other is 0, so unit u's posterior mean is a_u x_0, of variance a_u^2 Var(x_0) over the images."""
    n, variances = 64, torch.tensor([ABOVE, 0.5, BELOW, 2 * ABOVE])  # 3 of 4 units active
    x = half_lit_images(n)
    first, _, last = small_vae.encoder.head
    with torch.no_grad():
        for p in (*first.parameters(), *last.parameters()):
            p.zero_()
        first.weight[0, 0] = 1.0
        last.weight[: small_vae.latent_dim, 0] = (variances / (n / (4 * (n - 1)))).sqrt()
    assert torch.allclose(small_vae.encode(x).mean.var(0), variances)
    result = evaluate(small_vae, x, num_samples=3)
    assert result.active_units == 3
    assert result.active_units_per_layer is None  # one stochastic layer
    assert result.as_dict("test")["test_active_units"] == 3
