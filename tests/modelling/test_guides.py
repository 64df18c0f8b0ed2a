"""The full-covariance guide (``guide=full``) against references that share no code with it.

1. Its Cholesky factor, entropy and KL to N(0, I) against the closed forms written out here.
2. A linear-Gaussian model whose exact posterior has a full covariance (W's columns are *not*
   orthogonal): with the guide set to it, the ELBO is log p(x) and the importance weights have
   no variance, to float precision; a diagonal guide cannot get there (its gap is the KL it misses).
3. Fitting: SVI on Trace_ELBO moves a free full-covariance q towards that posterior.
Everything runs in float64.
"""

import math

import pyro
import pyro.optim
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO
from torch import nn
from torch.distributions import Independent, MultivariateNormal, Normal

import pyro_vae
from pyro_vae.modelling.estimators import evaluate, latent_kl
from pyro_vae.modelling.guides import DiagonalGaussian, FullCovarianceGaussian
from pyro_vae.modelling.likelihoods import GaussianPixels
from pyro_vae.modelling.objectives import IWAE_ELBO
from pyro_vae.modelling.vae import VAE

from ..helpers import read_metrics, train_tiny_run

DTYPE = torch.float64
EXACT_ATOL = (
    1e-9  # float64 sums of O(100) terms below ~1e3: rounding ~1e-11 (as tests/modelling/test_exact_references.py)
)
IMAGE_SHAPE, LATENT, SIGMA_X = (1, 3, 4), 3, 0.5
D = math.prod(IMAGE_SHAPE)

pytestmark = pytest.mark.usefixtures("single_thread")


def test_the_factor_is_lower_triangular_with_a_floored_positive_diagonal():
    family = FullCovarianceGaussian(LATENT, min_scale=1e-3)
    assert family.num_params == LATENT + LATENT * (LATENT + 1) // 2
    head = torch.randn(5, family.num_params, dtype=DTYPE) * 10
    loc, factor = family.split_head(head)
    assert torch.equal(loc, head[:, :LATENT])
    assert torch.equal(factor, factor.tril())
    diagonal = factor.diagonal(dim1=-2, dim2=-1)
    assert (diagonal >= 1e-3).all()
    # the strict lower triangle is the head's numbers, row by row
    assert torch.equal(factor[:, 1, 0], head[:, LATENT + 1]) and torch.equal(factor[:, 2, 1], head[:, LATENT + 4])
    assert torch.allclose(diagonal[:, 0], torch.log1p(head[:, LATENT].exp()) + 1e-3)


def test_entropy_and_kl_to_the_standard_normal_equal_their_closed_forms():
    family = FullCovarianceGaussian(LATENT, min_scale=1e-3)
    head = torch.randn(4, family.num_params, dtype=DTYPE)
    q = family.distribution(*family.split_head(head))
    loc, factor = family.split_head(head)
    covariance = factor @ factor.transpose(-1, -2)
    log_det = 2 * factor.diagonal(dim1=-2, dim2=-1).log().sum(-1)
    entropy = 0.5 * LATENT * (1 + math.log(2 * math.pi)) + 0.5 * log_det
    kl = 0.5 * (covariance.diagonal(dim1=-2, dim2=-1).sum(-1) + (loc**2).sum(-1) - LATENT - log_det)
    prior = Independent(Normal(torch.zeros(4, LATENT, dtype=DTYPE), 1.0), 1)
    assert torch.allclose(q.entropy(), entropy, rtol=0, atol=1e-12)
    assert torch.allclose(latent_kl(q, prior), kl, rtol=0, atol=1e-12)
    # the diagonal guide: 0.5 sum_u (sigma_u^2 + mu_u^2 - 1 - log sigma_u^2), from its raw loc and scale
    diagonal = DiagonalGaussian(LATENT, 1e-3)
    loc, scale = diagonal.split_head(head[:, : 2 * LATENT])
    kl_diag = 0.5 * (scale**2 + loc**2 - 1 - 2 * scale.log()).sum(-1)
    assert torch.allclose(latent_kl(diagonal.distribution(loc, scale), prior), kl_diag, rtol=0, atol=1e-12)


class LinearDecoder(nn.Module):
    def __init__(self, w: torch.Tensor, b: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("w", w)
        self.register_buffer("b", b)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return (z @ self.w.T + self.b).unflatten(-1, IMAGE_SHAPE)


class PosteriorEncoder(nn.Module):
    """The exact posterior of the linear-Gaussian model as (loc, scale_tril): loc = G (x - b), L = chol(Sigma)."""

    def __init__(self, gain: torch.Tensor, b: torch.Tensor, factor: torch.Tensor) -> None:
        super().__init__()
        self.family = FullCovarianceGaussian(LATENT, 1e-6)
        self.register_buffer("gain", gain)
        self.register_buffer("b", b)
        self.register_buffer("factor", factor)

    def forward(self, x, context=None):
        loc = (x.flatten(-3) - self.b) @ self.gain.T
        return loc, self.factor.expand(*loc.shape, LATENT)


class Reference:
    """p(z) = N(0, I), p(x|z) = N(Wz + b, s^2 I) with W's columns correlated: log p(x) = log N(x; b,
    W W^T + s^2 I), posterior N(Sigma W^T (x - b) / s^2, Sigma), Sigma = (I + W^T W / s^2)^-1, full."""

    def __init__(self, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        self.w = torch.randn(D, LATENT, generator=g, dtype=DTYPE) @ torch.tensor(
            [[1.0, 0.8, 0.0], [0.0, 1.0, -0.6], [0.0, 0.0, 0.7]], dtype=DTYPE
        )
        self.b = 0.3 * torch.randn(D, generator=g, dtype=DTYPE)
        z = torch.randn(4, LATENT, generator=g, dtype=DTYPE)
        self.x = (z @ self.w.T + self.b + SIGMA_X * torch.randn(4, D, generator=g, dtype=DTYPE)).reshape(
            4, *IMAGE_SHAPE
        )
        cov_x = self.w @ self.w.T + SIGMA_X**2 * torch.eye(D, dtype=DTYPE)
        self.log_px = MultivariateNormal(self.b, covariance_matrix=cov_x).log_prob(self.x.flatten(1))
        self.post_cov = torch.linalg.inv(torch.eye(LATENT, dtype=DTYPE) + self.w.T @ self.w / SIGMA_X**2)
        self.gain = self.post_cov @ self.w.T / SIGMA_X**2

    def vae(self, encoder: nn.Module) -> VAE:
        pixels = GaussianPixels(IMAGE_SHAPE, "fixed", SIGMA_X, 1e-3)
        return VAE(encoder, LinearDecoder(self.w, self.b), pixels, LATENT).double()


@pytest.fixture(scope="module")
def ref() -> Reference:
    return Reference()


def test_the_posterior_is_not_diagonal(ref):
    off_diagonal = ref.post_cov - torch.diag(ref.post_cov.diagonal())
    assert off_diagonal.abs().max() > 0.05 * ref.post_cov.diagonal().min()


@pytest.mark.parametrize("k", [1, 50])
def test_the_exact_full_covariance_guide_makes_the_elbo_and_is_estimate_log_px(ref, k):
    vae = ref.vae(PosteriorEncoder(ref.gain, ref.b, torch.linalg.cholesky(ref.post_cov)))
    assert isinstance(vae.encode(ref.x), MultivariateNormal)
    for i, x in enumerate(ref.x):
        # every importance weight is p(x) itself, the single one at K = 1 too (and so has no variance)
        q = vae.encode(x[None])
        z = q.sample((k,))
        log_w = vae.decode(z).log_prob(x[None]) + vae.prior(1).log_prob(z) - q.log_prob(z)
        assert log_w.shape == (k, 1)
        assert (log_w - ref.log_px[i]).abs().max().item() < EXACT_ATOL
        pyro.set_rng_seed(i)
        result = evaluate(vae, x[None], num_samples=k, chunk_size=16)
        assert result.elbo == pytest.approx(ref.log_px[i].item(), rel=0, abs=EXACT_ATOL)
        assert result.log_likelihood == pytest.approx(ref.log_px[i].item(), rel=0, abs=EXACT_ATOL)
    pyro.set_rng_seed(0)
    assert -Trace_ELBO().loss(vae.model, vae.guide, ref.x) == pytest.approx(ref.log_px.sum().item(), abs=1e-8)
    assert -IWAE_ELBO(k).loss(vae.model, vae.guide, ref.x) == pytest.approx(ref.log_px.sum().item(), abs=1e-8)


def test_the_best_diagonal_guide_falls_short_by_the_kl_it_cannot_close(ref):
    """The diagonal q closest in KL(q || p) to a full Gaussian has the precision's diagonal as its
    inverse variances; its ELBO gap is exactly that KL, > 0 here."""
    precision = torch.linalg.inv(ref.post_cov)
    sd = precision.diagonal().rsqrt()

    class DiagonalPosterior(nn.Module):
        def forward(self, x, context=None):
            loc = (x.flatten(-3) - ref.b) @ ref.gain.T
            return loc, sd.expand_as(loc)

    vae = ref.vae(DiagonalPosterior())
    q = MultivariateNormal(torch.zeros(LATENT, dtype=DTYPE), covariance_matrix=torch.diag(sd**2))
    p = MultivariateNormal(torch.zeros(LATENT, dtype=DTYPE), covariance_matrix=ref.post_cov)
    gap = torch.distributions.kl_divergence(q, p).item()
    assert gap > 0.01
    pyro.set_rng_seed(0)
    result = evaluate(vae, ref.x, num_samples=20_000)  # the ELBO as a mean of 20,000 draws per image
    assert result.elbo == pytest.approx(ref.log_px.mean().item() - gap, abs=0.02)  # MC error ~0.005


class FreeFullCovariance(nn.Module):
    """A q of its own for one image: free loc and raw Cholesky numbers."""

    def __init__(self) -> None:
        super().__init__()
        self.family = FullCovarianceGaussian(LATENT, 1e-6)
        self.head = nn.Parameter(torch.zeros(self.family.num_params, dtype=DTYPE))

    def forward(self, x, context=None):
        loc, factor = self.family.split_head(self.head)
        return loc.expand(len(x), LATENT), factor.expand(len(x), LATENT, LATENT)


@pytest.mark.slow  # 3,000 SVI steps
def test_svi_fits_the_full_covariance_guide_to_the_posterior(ref):
    """3,000 steps of Trace_ELBO on one image (float64, Adam with a decaying learning rate):
    KL(q || posterior) falls from over 1 nat to below 0.01 nats, the tolerance stated here (the
    Monte Carlo gradient keeps it from 0; this seed reaches 3e-4)."""
    x = ref.x[:1]
    vae = ref.vae(FreeFullCovariance())
    posterior = MultivariateNormal(((x.flatten(1) - ref.b) @ ref.gain.T)[0], covariance_matrix=ref.post_cov)

    def kl_to_posterior() -> float:
        with torch.no_grad():
            q = vae.encode(x)
            return torch.distributions.kl_divergence(
                MultivariateNormal(q.loc[0], scale_tril=q.scale_tril[0]), posterior
            ).item()

    before = kl_to_posterior()
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    adam = pyro.optim.ClippedAdam({"lr": 0.05, "lrd": 0.998})  # the rate decays to 0.05 * 0.998^3000 = 1e-4
    svi = SVI(vae.model, vae.guide, adam, Trace_ELBO(num_particles=8, vectorize_particles=True))
    for _ in range(3000):
        svi.step(x)
    assert before > 1.0 and kl_to_posterior() < 0.01


@pytest.mark.parametrize("gradient", ["standard", "dreg"])
def test_iwae_gradients_flow_into_the_full_covariance_guide(ref, gradient):
    encoder = FreeFullCovariance()
    vae = ref.vae(encoder)
    pyro.set_rng_seed(1)
    loss = IWAE_ELBO(5, gradient).differentiable_loss(vae.model, vae.guide, ref.x[:1])
    (grad,) = torch.autograd.grad(loss, [encoder.head])
    assert torch.isfinite(grad).all() and (grad != 0).any()


@pytest.mark.slow  # a tiny run end to end
def test_a_run_trains_and_reports_with_the_full_covariance_guide(tmp_path):
    run = train_tiny_run(tmp_path, "guide=full", "objective=iwae", "objective.gradient=dreg", "epochs=2")
    metrics = read_metrics(run)
    assert metrics["test_log_likelihood"] >= metrics["test_elbo"]
    assert metrics["test_kl"] > 0 and 0 <= metrics["test_active_units"] <= metrics["latent_dim"]
    assert isinstance(pyro_vae.load(run).encode(torch.rand(2, 1, 28, 28)), MultivariateNormal)
    assert (run / "figures" / "samples.png").is_file()
