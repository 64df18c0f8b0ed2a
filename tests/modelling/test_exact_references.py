"""The project's estimators against references that share no code with it.

Every reference below is computed in this file, from torch.distributions / torch.linalg closed
forms or from brute-force quadrature with the log-densities written out by hand; the project's
code (VAE, likelihoods, evaluate, test_metrics) only ever appears on the side under test.
Everything runs in float64, so that "exact" can mean "to float precision".

1. A linear-Gaussian VAE, p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I): log p(x) is
   log N(x; b, W W^T + s^2 I) and the posterior is N(Sigma W^T (x - b) / s^2, Sigma) with
   Sigma = (I + W^T W / s^2)^-1, diagonal when W's columns are orthogonal, so a diagonal guide
   can equal it exactly.
2. A Bernoulli decoder network with a 1- or 2-dimensional latent space: log p(x) by dense
   quadrature, against importance sampling with a moment-matched guide (small bias) and with a
   poor guide (the estimate must rise towards the exact value as K grows).
3. Bits per dimension of a continuous density with known log p(x).
4. The Bernoulli pixel log-density against the hand-written x log s(l) + (1 - x) log s(-l).
"""

import math
from typing import NamedTuple

import pyro
import pytest
import torch
from omegaconf import OmegaConf
from pyro.infer import Trace_ELBO
from torch import nn
from torch.distributions import MultivariateNormal, Normal, kl_divergence

from pyro_vae.modelling.estimators import evaluate
from pyro_vae.modelling.likelihoods import BernoulliPixels, GaussianPixels
from pyro_vae.modelling.vae import VAE
from pyro_vae.runs.configuration.builders import build_vae
from pyro_vae.runs.tasks.metrics import test_metrics as project_test_metrics

from ..helpers import compose_config
from .hand_densities import bernoulli_log_density, normal_log_density, standard_normal_log_density

DTYPE = torch.float64

# Float-precision tolerance for quantities that are exact in theory. Each log-weight is a sum of
# O(100) terms whose magnitudes stay below ~1e3 (the Gaussian exponents at s = 0.5); in float64
# (eps = 2.2e-16) the rounding of such a sum is below ~1e3 * 100 * 2.2e-16 ~ 2e-11, and averaging
# over K draws does not amplify it. 1e-9 leaves a 50x margin yet is ~1e6 below any real error
# (a missing log K, a wrong variance, a float32 cast: each is >= 1e-7 relative, usually O(1) nats).
EXACT_ATOL = 1e-9


# These tensors are tiny: a second intra-op thread only spins (it made this file 5x slower, 22 s against 4.5 s).
pytestmark = pytest.mark.usefixtures("single_thread")


def repeated_estimates(vae, x, k, groups, copies, seed):
    """The mean of groups * copies independent K-sample IS estimates of log p(x) for one image x,
    and its standard error. Each evaluate() call sees `copies` copies of x (every copy gets its
    own draws) and returns their mean; the spread of the `groups` group means gives the SE."""
    batch = x[None].repeat(copies, *([1] * x.dim()))
    group_means = []
    for group in range(groups):
        pyro.set_rng_seed(seed + group)
        group_means.append(evaluate(vae, batch, num_samples=k).log_likelihood)
    means = torch.tensor(group_means, dtype=DTYPE)
    return means.mean().item(), means.std().item() / math.sqrt(groups)


def overshoot_bound(num_estimates, alpha=1e-4):
    """A distribution-free upper tolerance for the mean of n iid IS estimates of log p(x).

    Each estimate is log W with W = mean_k w_k / p(x) and E[W] = 1 (the importance weights are
    unbiased). For the mean of n such logs, Chernoff with lambda = n gives
    P(mean > t) <= E[exp(sum log W_i)] e^(-n t) = E[W]^n e^(-n t) = e^(-n t),
    so the mean exceeds log p(x) by more than log(1/alpha)/n with probability <= alpha, whatever
    the guide and however heavy-tailed its weights (where an SE-based bound would be unreliable).
    """
    return math.log(1 / alpha) / num_estimates


# --------------------------------------------------------------------------------------------
# 1. Linear-Gaussian VAE
# --------------------------------------------------------------------------------------------

IMAGE_SHAPE = (2, 2, 3)  # D = 12 pixels over three axes, so a per-axis bug in D would show
D = math.prod(IMAGE_SHAPE)
LATENT = 3
SIGMA_X = 0.5
COLUMN_NORMS = (2.0, 1.0, 0.5)  # posterior variances 1/17, 1/5, 1/2: one sharp, one broad direction


class LinearDecoder(nn.Module):
    """z -> W z + b as a (..., *IMAGE_SHAPE) tensor of pixel means."""

    def __init__(self, w: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.linear = nn.Linear(w.shape[1], w.shape[0]).to(DTYPE)
        with torch.no_grad():
            self.linear.weight.copy_(w)
            self.linear.bias.copy_(b)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.linear(z).unflatten(-1, IMAGE_SHAPE)


class LinearPosteriorEncoder(nn.Module):
    """(loc, scale) of a diagonal Gaussian with loc = A (x - b) + shift, scale = sd * factor:
    with shift = 0 and factor = 1 it is the exact posterior of the linear-Gaussian model."""

    def __init__(self, a, b, sd, shift=None, factor=None) -> None:
        super().__init__()
        self.register_buffer("a", a)
        self.register_buffer("b", b)
        self.register_buffer("sd", sd)
        self.register_buffer("shift", torch.zeros_like(sd) if shift is None else shift)
        self.register_buffer("factor", torch.ones_like(sd) if factor is None else factor)

    def forward(self, x, context=None):
        assert context is None
        loc = (x.flatten(1) - self.b) @ self.a.T + self.shift
        scale = (self.sd * self.factor).expand_as(loc)
        return loc, scale


class LinearGaussianReference:
    """The linear-Gaussian model's parameters, images drawn from it, and its closed forms."""

    def __init__(self, num_images: int = 4, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        q, _ = torch.linalg.qr(torch.randn(D, LATENT, generator=g, dtype=DTYPE))
        self.w = q * torch.tensor(COLUMN_NORMS, dtype=DTYPE)  # orthogonal columns: W^T W diagonal
        self.b = 0.3 * torch.randn(D, generator=g, dtype=DTYPE)
        z = torch.randn(num_images, LATENT, generator=g, dtype=DTYPE)
        x = z @ self.w.T + self.b + SIGMA_X * torch.randn(num_images, D, generator=g, dtype=DTYPE)
        self.x_flat = x
        self.images = x.reshape(num_images, *IMAGE_SHAPE)
        # Marginal: x ~ N(b, W W^T + s^2 I).
        cov_x = self.w @ self.w.T + SIGMA_X**2 * torch.eye(D, dtype=DTYPE)
        self.log_px = MultivariateNormal(self.b, covariance_matrix=cov_x).log_prob(x)
        # Posterior: N(Sigma W^T (x - b) / s^2, Sigma), Sigma = (I + W^T W / s^2)^-1 (full inverse).
        self.post_cov = torch.linalg.inv(torch.eye(LATENT, dtype=DTYPE) + self.w.T @ self.w / SIGMA_X**2)
        self.post_gain = self.post_cov @ self.w.T / SIGMA_X**2  # (LATENT, D)
        self.post_mean = (x - self.b) @ self.post_gain.T
        off_diagonal = self.post_cov - torch.diag(torch.diagonal(self.post_cov))
        assert off_diagonal.abs().max() < 1e-14, "W's columns must be orthogonal for a diagonal posterior"
        self.post_sd = torch.diagonal(self.post_cov).sqrt()

    def vae(self, shift=None, factor=None) -> VAE:
        encoder = LinearPosteriorEncoder(self.post_gain, self.b, self.post_sd, shift, factor)
        pixels = GaussianPixels(IMAGE_SHAPE, "fixed", SIGMA_X, 1e-3)
        return VAE(encoder, LinearDecoder(self.w, self.b), pixels, LATENT).double()


@pytest.fixture(scope="module")
def linear_ref() -> LinearGaussianReference:
    return LinearGaussianReference()


def test_linear_gaussian_reference_is_self_consistent(linear_ref):
    """The closed forms themselves, against brute force: Bayes' rule log p(x) = log p(x|z) +
    log p(z) - log p(z|x) at arbitrary z, every term from torch.distributions."""
    ref = linear_ref
    z = torch.randn(7, len(ref.images), LATENT, dtype=DTYPE)
    log_lik = Normal(z @ ref.w.T + ref.b, SIGMA_X).log_prob(ref.x_flat).sum(-1)
    log_prior = Normal(torch.tensor(0.0, dtype=DTYPE), 1.0).log_prob(z).sum(-1)
    log_post = MultivariateNormal(ref.post_mean, covariance_matrix=ref.post_cov).log_prob(z)
    assert torch.allclose(log_lik + log_prior - log_post, ref.log_px.expand(7, -1), rtol=0, atol=EXACT_ATOL)
    # (Python-float parameters would make torch.distributions.Normal float32: a tensor first.)
    # chi_square's closed form (a tolerance term below) against trapezoid quadrature per dimension
    # (spacing 1e-3 on [-40, 40]: the smooth Gaussian integrand makes it exact to ~1e-12).
    u = torch.linspace(-40, 40, 80001, dtype=DTYPE)
    total = 1.0
    log_p = Normal(torch.tensor(0.0, dtype=DTYPE), 1.0).log_prob(u)
    for mu, f in zip(SHIFT_IN_SDS, SD_FACTORS):
        integrand = torch.exp(2 * log_p - Normal(torch.tensor(mu, dtype=DTYPE), f).log_prob(u))
        total *= (integrand.sum() * (u[1] - u[0])).item()
    assert chi_square(SHIFT_IN_SDS, SD_FACTORS) == pytest.approx(total - 1, rel=1e-9)


@pytest.mark.parametrize("k", [1, 10, 1000])
def test_exact_guide_makes_every_estimate_equal_log_px(linear_ref, k):
    """With q(z|x) = p(z|x), log w = log p(x) for every draw: the ELBO and the IS estimate are
    both log p(x) to float precision for any K (LL - ELBO = 0 only if all weights are equal)."""
    vae = linear_ref.vae()
    for i, x in enumerate(linear_ref.images):
        pyro.set_rng_seed(i)
        result = evaluate(vae, x[None], num_samples=k, chunk_size=64)  # chunk < K: chunking exercised
        exact = linear_ref.log_px[i].item()
        assert result.elbo == pytest.approx(exact, rel=0, abs=EXACT_ATOL), (i, result.elbo, exact)
        assert result.log_likelihood == pytest.approx(exact, rel=0, abs=EXACT_ATOL), (i, result.log_likelihood, exact)
    # The whole batch at once: the per-image average.
    result = evaluate(vae, linear_ref.images, num_samples=k)
    assert result.log_likelihood == pytest.approx(linear_ref.log_px.mean().item(), rel=0, abs=EXACT_ATOL)


def test_exact_guide_makes_pyro_trace_elbo_equal_minus_log_px(linear_ref):
    vae = linear_ref.vae()
    for i, x in enumerate(linear_ref.images):
        pyro.set_rng_seed(i)
        loss = Trace_ELBO().loss(vae.model, vae.guide, x[None])
        assert -loss == pytest.approx(linear_ref.log_px[i].item(), rel=0, abs=EXACT_ATOL), i
    # Summed over the batch.
    loss = Trace_ELBO().loss(vae.model, vae.guide, linear_ref.images)
    assert -loss == pytest.approx(linear_ref.log_px.sum().item(), rel=0, abs=len(linear_ref.images) * EXACT_ATOL)


# A perturbed guide: mean shifted by 2, -1 and 1.5 posterior sds, sds scaled by 2, 1.2 and 1.8.
# Every factor is >= 1, so the guide is wider than the posterior in every direction and the
# weights p(z|x)/q(z|x) are bounded: all their moments are finite and the Monte Carlo standard
# errors below are well defined. KL(q || p(z|x)) = 5.0 nats, chi^2(p(z|x) || q) = 9.0.
SHIFT_IN_SDS = (2.0, -1.0, 1.5)
SD_FACTORS = (2.0, 1.2, 1.8)


def chi_square(shifts, factors):
    """chi^2(p || q) = E_q[(p/q)^2] - 1 for p = N(0, I), q = N(shifts, diag factors^2), which
    are the posterior and the guide in the posterior's standardized coordinates. Per dimension,
    int p^2/q dz = f / sqrt(2a) exp(mu^2/(2f^2) + mu^2/(4 a f^4)) with a = 1 - 1/(2f^2)."""
    total = 1.0
    for mu, f in zip(shifts, factors):
        a = 1 - 1 / (2 * f * f)
        total *= f / math.sqrt(2 * a) * math.exp(mu * mu / (2 * f * f) + mu * mu / (4 * a * f**4))
    return total - 1


def perturbed_guide(ref):
    shift = torch.tensor(SHIFT_IN_SDS, dtype=DTYPE) * ref.post_sd
    factor = torch.tensor(SD_FACTORS, dtype=DTYPE)
    return shift, factor


def reference_log_weights(ref, i, shift, factor, draws, generator):
    """log w = log p(x) + log p(z|x) - log q(z|x) under z ~ q, from the closed forms alone."""
    q = Normal(ref.post_mean[i] + shift, ref.post_sd * factor)
    z = q.loc + q.scale * torch.randn(draws, LATENT, generator=generator, dtype=DTYPE)
    post = MultivariateNormal(ref.post_mean[i], covariance_matrix=ref.post_cov)
    return ref.log_px[i] + post.log_prob(z) - q.log_prob(z).sum(-1), q


def test_elbo_gap_is_the_kl_to_the_exact_posterior(linear_ref):
    """log p(x) - ELBO = KL(q || p(z|x)), the KL from torch's MultivariateNormal closed form;
    and the reported figures: kl = KL(q || p(z)) exactly, reconstruction = E_q[log p(x|z)] =
    log N(x; W m + b, s^2 I) - tr(W diag(v) W^T) / (2 s^2) for q = N(m, diag v)."""
    ref = linear_ref
    shift, factor = perturbed_guide(ref)
    vae = ref.vae(shift, factor)
    draws = 50000
    g = torch.Generator().manual_seed(1)
    gaps, ses = [], []
    for i, x in enumerate(ref.images):
        log_w, q = reference_log_weights(ref, i, shift, factor, draws, g)
        q_mvn = MultivariateNormal(q.loc, covariance_matrix=torch.diag(q.scale**2))
        kl = kl_divergence(q_mvn, MultivariateNormal(ref.post_mean[i], covariance_matrix=ref.post_cov)).item()
        # The ELBO estimate is a mean of `draws` iid log-weights: its standard error is their
        # std / sqrt(draws), the std taken from the independent reference draws above.
        se = log_w.std().item() / math.sqrt(draws)
        assert kl > 50 * se, "the perturbation must be resolvable, or the test could not fail"
        pyro.set_rng_seed(100 + i)
        result = evaluate(vae, x[None], num_samples=draws)
        gap = ref.log_px[i].item() - result.elbo
        print(f"image {i}: log p(x) - ELBO = {gap:.5f}, KL = {kl:.5f}, SE = {se:.5f}")
        assert abs(gap - kl) < 5 * se, (i, gap, kl, se)
        gaps.append(gap)
        ses.append(se)
        # KL to the prior: closed form on both sides, so to float precision.
        prior_kl = kl_divergence(
            q_mvn,
            MultivariateNormal(torch.zeros(LATENT, dtype=DTYPE), covariance_matrix=torch.eye(LATENT, dtype=DTYPE)),
        )
        assert result.kl == pytest.approx(prior_kl.item(), rel=0, abs=EXACT_ATOL)
        # Reconstruction: a mean of `draws` log p(x|z); SE from reference draws of the same.
        expected_rec = (
            Normal(ref.w @ q.loc + ref.b, SIGMA_X).log_prob(ref.x_flat[i]).sum()
            - (ref.w**2 @ q.scale**2).sum() / (2 * SIGMA_X**2)
        ).item()
        z = q.loc + q.scale * torch.randn(draws, LATENT, generator=g, dtype=DTYPE)
        rec_se = Normal(z @ ref.w.T + ref.b, SIGMA_X).log_prob(ref.x_flat[i]).sum(-1).std().item() / math.sqrt(draws)
        assert abs(result.reconstruction - expected_rec) < 5 * rec_se, (i, result.reconstruction, expected_rec, rec_se)
    # The gaps of the images are iid with the same mean (the guide is defined in posterior-sd
    # units and the posterior covariance does not depend on x): their mean, within 5 SE / 2,
    # resolves a 1.5% error in the KL.
    mean_se = math.sqrt(sum(se**2 for se in ses)) / len(ses)
    assert abs(sum(gaps) / len(gaps) - kl) < 5 * mean_se, (gaps, kl, mean_se)


NUM_LINEAR_ESTIMATES = 400


def test_importance_sampling_tightens_towards_log_px_as_k_grows(linear_ref):
    """E[IS estimate] <= log p(x) (Jensen); the gap shrinks with K, from KL(q || p(z|x)) at K = 1
    to ~chi^2/(2K) for large K (delta method), and at K = 1000 it is within Monte Carlo error."""
    ref = linear_ref
    shift, factor = perturbed_guide(ref)
    vae = ref.vae(shift, factor)
    chi2 = chi_square(SHIFT_IN_SDS, SD_FACTORS)
    # The weights' distribution (in log p(x) units) is the same for every image: the guide is
    # defined in posterior-sd units and the posterior covariance does not depend on x.
    i = 0
    q = MultivariateNormal(ref.post_mean[i] + shift, covariance_matrix=torch.diag((ref.post_sd * factor) ** 2))
    kl = kl_divergence(q, MultivariateNormal(ref.post_mean[i], covariance_matrix=ref.post_cov)).item()
    ks = (1, 10, 100, 1000)
    x, exact = ref.images[i], ref.log_px[i].item()
    gaps, ses = [], []
    for k in ks:
        mean, se = repeated_estimates(vae, x, k, groups=20, copies=NUM_LINEAR_ESTIMATES // 20, seed=1000 * k)
        gaps.append(exact - mean)
        ses.append(se)
    print(
        f"\nKL {kl:.4f}, chi^2 {chi2:.4f}; log p(x) - mean IS estimate for K={ks}: "
        + ", ".join(f"{g:.4f} (SE {s:.4f}, chi^2/2K {chi2 / (2 * k):.4f})" for k, g, s in zip(ks, gaps, ses))
    )
    # K = 1 is the ELBO: its gap is the KL, within 5 SE.
    assert abs(gaps[0] - kl) < 5 * ses[0], (gaps, ses, kl)
    # Below log p(x) on average: never above by more than the Chernoff bound (probability
    # <= 1e-4 each; 0.023 nats for 400 estimates), and clearly below at small K.
    for k, gap in zip(ks, gaps):
        assert gap > -overshoot_bound(NUM_LINEAR_ESTIMATES), (k, gaps, ses)
    assert gaps[1] > 5 * ses[1] and gaps[2] > 3 * ses[2], (gaps, ses)
    # Shrinks as K grows: each gap below the previous one, up to 3 SE of their difference.
    for (g0, s0), (g1, s1) in zip(zip(gaps, ses), zip(gaps[1:], ses[1:])):
        assert g1 < g0 + 3 * math.hypot(s0, s1), (gaps, ses)
    assert gaps[-1] < gaps[0] / 50, gaps
    # Reaches log p(x) at K = 1000: what remains is the delta-method bias chi^2/(2K) = 0.0045
    # nats plus noise.
    assert abs(gaps[-1]) < 3 * ses[-1] + chi2 / (2 * ks[-1]), (gaps, ses, chi2)


# --------------------------------------------------------------------------------------------
# 3. Bits per dimension
# --------------------------------------------------------------------------------------------


def test_bits_per_dim_equals_the_closed_form(linear_ref):
    ref = linear_ref
    vae = ref.vae()
    cfg = OmegaConf.create(
        {
            "eval": {"iwae_k": 10, "chunk_size": 2048, "weight_draws": 1},
            "likelihood": {"name": "gaussian"},
        }
    )
    metrics = project_test_metrics(vae, ref.images, None, cfg, num_data=len(ref.images))
    mean_log_px = ref.log_px.mean().item()
    # Discrete 8-bit data from a density on [0, 1]: -log P <= -log p(x) + D log 256 nats, in bits per dim.
    expected = (-mean_log_px + D * math.log(256)) / (D * math.log(2))
    # Exact in theory; the float error of log p(x) (< EXACT_ATOL) divided by D ln 2.
    tol = EXACT_ATOL / (D * math.log(2))
    assert metrics["test_log_likelihood"] == pytest.approx(mean_log_px, rel=0, abs=EXACT_ATOL)
    assert metrics["test_bits_per_dim"] == pytest.approx(expected, rel=0, abs=tol), (metrics, expected)
    assert metrics["test_bits_per_dim_elbo"] == pytest.approx(expected, rel=0, abs=tol), (metrics, expected)


# --------------------------------------------------------------------------------------------
# 2. Bernoulli decoder network: quadrature
# --------------------------------------------------------------------------------------------

BERNOULLI_SHAPE = (1, 4, 4)
HIDDEN = 16
NUM_IMAGES = 3
GRID_POINTS = {1: 20001, 2: 301}  # on [-10, 10]^d
# Quadrature needs a smooth integrand: the project's MLP decoder with tanh activations makes
# log p(x|z) p(z) analytic and Gaussian-tailed, where the trapezoid rule converges faster than
# any power of the spacing (with ReLU kinks it is only O(h^2)). Its error is bounded by the
# difference from the grid of twice the spacing.


class Quadrature(NamedTuple):
    """log p(x) and the posterior moments of each image, and the grid they were summed over."""

    log_px: torch.Tensor  # (image,)
    mean: torch.Tensor  # (image, d)
    var: torch.Tensor  # (image, d)
    grid: torch.Tensor  # (point, d)
    log_joint: torch.Tensor  # (image, point): log p(x, z)
    cell: float  # the volume of one grid cell


class BernoulliReference:
    """The project's MLP decoder (tanh, weights scaled up), images drawn from the model, and
    log p(x), posterior means and variances by quadrature, with the network's forward pass
    written out by hand from its Linear layers."""

    def __init__(self, d: int) -> None:
        self.d = d
        cfg = compose_config(
            [
                f"latent_dim={d}",
                f"net.widths=[{HIDDEN}]",
                "net.activation=tanh",
                "likelihood=bernoulli",
                "net=mlp",
                "device=cpu",
            ]
        )
        pyro.set_rng_seed(d)
        self.vae = build_vae(cfg, BERNOULLI_SHAPE, 10).double()
        kinds = [type(m) for m in self.vae.decoder.body]
        assert kinds == [nn.Linear, nn.Tanh, nn.Linear], kinds
        self.lin1, _, self.lin2 = self.vae.decoder.body
        with torch.no_grad():  # sharper, multi-pixel-informed posteriors than at initialisation
            self.lin1.weight.mul_(4.0)
            self.lin1.bias.mul_(2.0)
            self.lin2.weight.mul_(6.0)
        g = torch.Generator().manual_seed(10 + d)
        while True:
            z = torch.randn(NUM_IMAGES, d, generator=g, dtype=DTYPE)
            x = torch.bernoulli(torch.sigmoid(self.logits(z)), generator=g)
            if len(torch.unique(x, dim=0)) == NUM_IMAGES:  # distinct, for the table encoder
                break
        self.x_flat = x
        self.images = x.reshape(NUM_IMAGES, *BERNOULLI_SHAPE)
        n = GRID_POINTS[d]
        fine = self.quadrature(n)
        self.log_px, self.mean, self.var = fine.log_px, fine.mean, fine.var
        self.grid, self.log_joint, self.cell = fine.grid, fine.log_joint, fine.cell
        coarse = self.quadrature((n - 1) // 2 + 1).log_px
        self.quad_error = (self.log_px - coarse).abs()  # bounds the fine grid's error

    def logits(self, z):
        h = torch.tanh(z @ self.lin1.weight.T + self.lin1.bias)
        return h @ self.lin2.weight.T + self.lin2.bias

    @torch.no_grad()
    def quadrature(self, n) -> Quadrature:
        g = torch.linspace(-10.0, 10.0, n, dtype=DTYPE)
        h = (g[1] - g[0]).item()
        z = g[:, None] if self.d == 1 else torch.cartesian_prod(g, g)
        log_joint = bernoulli_log_density(self.x_flat[:, None], self.logits(z)[None]) + standard_normal_log_density(z)
        log_px = torch.logsumexp(log_joint, 1) + self.d * math.log(h)  # trapezoid; ends ~e^-50
        post = torch.exp(log_joint - log_px[:, None]) * h**self.d
        mean = post @ z
        var = post @ z**2 - mean**2
        return Quadrature(log_px, mean, var, z, log_joint, h**self.d)

    def importance_sampling_bias_terms(self, i, loc, scale, max_ratio):
        """For the proposal N(loc, diag scale^2), on the grid: the posterior mass eps where
        p(z|x)/q(z) > max_ratio, and the relative variance r of the weights truncated to the
        rest (where they are bounded by max_ratio, so all their moments are finite)."""
        log_post = self.log_joint[i] - self.log_px[i]
        log_q = normal_log_density(self.grid, loc, scale)
        inside = log_post - log_q <= math.log(max_ratio)
        eps = 1 - (log_post[inside].exp().sum() * self.cell).item()
        second_moment = (torch.exp(2 * log_post[inside] - log_q[inside]).sum() * self.cell).item()
        return eps, second_moment / (1 - eps) ** 2 - 1

    def log_weights(self, i, loc, scale, draws, generator):
        """Reference IS log-weights for image i under the proposal N(loc, diag scale^2)."""
        z = loc + scale * torch.randn(draws, self.d, generator=generator, dtype=DTYPE)
        return (
            bernoulli_log_density(self.x_flat[i], self.logits(z))
            + standard_normal_log_density(z)
            - normal_log_density(z, loc, scale)
        )


class TableEncoder(nn.Module):
    """A guide given per image: (loc, scale) looked up by matching the image exactly."""

    def __init__(self, images, loc, scale) -> None:
        super().__init__()
        self.register_buffer("images", images.flatten(1))
        self.register_buffer("loc", loc)
        self.register_buffer("scale", scale)

    def forward(self, x, context=None):
        match = (x.flatten(1)[:, None, :] == self.images[None]).all(-1)
        assert bool((match.sum(1) == 1).all()), "unknown image"
        index = match.to(torch.int64).argmax(1)
        return self.loc[index], self.scale[index]


@pytest.fixture(scope="module", params=[1, 2], ids=["d1", "d2"])
def bernoulli_ref(request) -> BernoulliReference:
    return BernoulliReference(request.param)


def test_quadrature_reference_is_converged_and_nontrivial(bernoulli_ref):
    ref = bernoulli_ref
    # The grid-halving difference bounds the quadrature error; it must be far below the MC SE
    # (~1e-3 nats) that the comparisons below resolve.
    assert ref.quad_error.max() < 1e-5, ref.quad_error
    # Non-trivial posteriors: clearly narrower than the prior and away from its centre somewhere.
    assert ref.var.max() < 0.5 and ref.mean.abs().max() > 0.3, (ref.mean, ref.var)


def test_moment_matched_guide_recovers_the_quadrature_log_px(bernoulli_ref):
    """q = N(posterior mean, diag posterior variance), from the quadrature: the estimate at
    K = 5000 must match the quadrature log p(x) within 5 SE plus a bound on its bias.

    Why the bias is small, and how small. The tanh decoder saturates, so the posterior's tails
    are the prior's, N(0, 1), while q's variance is < 1/2: in theory Var(w) is infinite (p/q
    reaches e^500 at the grid's edge). Split the posterior at p/q = M = 1000: outside, its mass
    eps (quadrature: at most ~3e-3) lies where q has mass <= eps / M, is almost never sampled,
    and is simply missed: a bias of about -eps. Inside, the weights are bounded by M p(x), so the
    delta method holds: bias -r/(2K) and SE sqrt(r/K) with r their relative variance (by
    quadrature, and from an independent set of reference draws; the larger one is used).
    So -(eps + r/(2K)) <= E[estimate] - log p(x) <= 0, and the test allows 5 SE around that."""
    ref = bernoulli_ref
    k = 5000
    loc, scale = ref.mean, ref.var.sqrt()
    vae = VAE(TableEncoder(ref.images, loc, scale), ref.vae.decoder, BernoulliPixels(), ref.d).double()
    g = torch.Generator().manual_seed(20 + ref.d)
    rows = []
    for i, x in enumerate(ref.images):
        eps, grid_rel_var = ref.importance_sampling_bias_terms(i, loc[i], scale[i], max_ratio=1000)
        # Relative variance of w from an independent set of reference draws, by hand.
        log_w = ref.log_weights(i, loc[i], scale[i], 20000, g)
        w = torch.exp(log_w - log_w.max())
        mc_rel_var = (w.var() / w.mean() ** 2).item()
        rel_var = max(grid_rel_var, mc_rel_var)
        se = math.sqrt(rel_var / k)
        bias_bound = eps + rel_var / (2 * k)
        assert se < 0.05 and bias_bound < 0.01, "the guide must be good enough for a sharp test"
        pyro.set_rng_seed(200 + i)
        estimate = evaluate(vae, x[None], num_samples=k).log_likelihood
        exact = ref.log_px[i].item()
        rows.append((i, exact, estimate, estimate - exact, se, bias_bound))
        quad = ref.quad_error[i].item()
        assert exact - bias_bound - 5 * se - quad < estimate < exact + 5 * se + quad, rows[-1]
    print(f"\nd={ref.d}: image, exact log p(x), K={k} estimate, difference, SE, bias bound")
    for row in rows:
        image, exact, estimate, difference, se, bias = row
        print(f"  {image}  {exact:.6f}  {estimate:.6f}  {difference:+.6f}  {se:.6f}  {bias:.6f}")


# K -> (groups, copies): many repeats where they are cheap and the estimates noisy (small K).
POOR_GUIDE_REPEATS = {1: (16, 64), 10: (16, 32), 100: (10, 16), 1000: (10, 16)}


def test_poor_guide_estimate_rises_towards_the_quadrature_log_px(bernoulli_ref):
    """With build_vae's untrained encoder as the proposal, the bias is large at small K; the
    mean estimate over seeds must rise with K, and stay below the exact value (up to noise)."""
    ref = bernoulli_ref
    ks = (1, 10, 100, 1000)
    for i, x in enumerate(ref.images):
        exact = ref.log_px[i].item()
        means, ses = [], []
        for k in ks:
            groups, copies = POOR_GUIDE_REPEATS[k]
            mean, se = repeated_estimates(ref.vae, x, k, groups, copies, seed=300 + 17 * k)
            means.append(mean)
            ses.append(se)
        print(
            f"d={ref.d} image {i}: exact {exact:.4f}; mean estimates for K={ks}: "
            + ", ".join(f"{m:.4f} (SE {s:.4f})" for m, s in zip(means, ses))
        )
        for k, m in zip(ks, means):
            # E[estimate] <= log p(x): above it by at most the Chernoff bound (probability
            # <= 1e-4; 0.06 nats for the 160 estimates at K = 1000) plus the quadrature error.
            # The SE is no guide here: a poor proposal's weights are heavy-tailed.
            bound = overshoot_bound(math.prod(POOR_GUIDE_REPEATS[k])) + ref.quad_error[i].item()
            assert m < exact + bound, (ref.d, i, k, exact, means, ses)
        for (m0, s0), (m1, s1) in zip(zip(means, ses), zip(means[1:], ses[1:])):
            assert m1 > m0 - 3 * math.hypot(s0, s1), (ref.d, i, means, ses)
        # It does rise: the K = 1000 estimate is significantly above the ELBO (K = 1).
        assert means[-1] > means[0] + 5 * math.hypot(ses[0], ses[-1]), (ref.d, i, means, ses)


# --------------------------------------------------------------------------------------------
# 4. The Bernoulli pixel log-density by hand
# --------------------------------------------------------------------------------------------


def test_bernoulli_likelihood_matches_the_hand_written_log_density(bernoulli_ref):
    ref = bernoulli_ref
    g = torch.Generator().manual_seed(5)
    z = 2 * torch.randn(6, NUM_IMAGES, ref.d, generator=g, dtype=DTYPE)  # (particles, images, d)
    with torch.no_grad():
        project = ref.vae.decode(z).log_prob(ref.images)
    expected = bernoulli_log_density(ref.x_flat, ref.logits(z))
    assert project.shape == expected.shape == (6, NUM_IMAGES)
    # Sums of 16 terms of magnitude < ~100 in float64: rounding < 1e-12.
    assert torch.allclose(project, expected, rtol=0, atol=EXACT_ATOL)


def test_bernoulli_pixels_are_exact_at_extreme_logits():
    """Logits far in the tails (no sigmoid + clamp): log p = -|l| for the unlikely value, up to
    log1p(e^-|l|), in float64."""
    logits = torch.tensor([-700.0, -40.0, -5.0, 0.0, 5.0, 40.0, 700.0], dtype=DTYPE).reshape(1, 1, 1, 7)
    for value in (0.0, 1.0):
        x = torch.full_like(logits, value)
        project = BernoulliPixels()(logits).log_prob(x)
        expected = bernoulli_log_density(x.flatten(1), logits.flatten(1))
        assert torch.isfinite(project).all()
        assert torch.allclose(project, expected, rtol=1e-12, atol=1e-12), (value, project, expected)
