"""The pixel likelihoods of grey-level images: the discretized logistic against its hand-written
mass, the calibrated ("optimal") Gaussian sigma against its closed form, both ELBOs against the
hand derivation on the same draws, bits per dimension of a density and of a mass, and both modes
end to end on a CIFAR-10 archive in the official format."""

import math

import pyro
import pytest
import torch
from omegaconf import OmegaConf
from pyro.infer import Trace_ELBO
from torch import nn

from pyro_vae.data import Observation, PixelTransform
from pyro_vae.modelling.likelihoods import (
    INITIAL_SCALE,
    RUNNING_MOMENTUM,
    BernoulliPixels,
    DiscretizedLogistic,
    DiscretizedLogisticPixels,
    GaussianPixels,
    GreyLevels,
)
from pyro_vae.modelling.vae import VAE
from pyro_vae.runs.configuration.builders import build_vae
from pyro_vae.runs.tasks.metrics import test_metrics as project_test_metrics
from pyro_vae.runs.tasks.training_run import run_experiment

from ..helpers import assert_same_loss_and_gradients, compose_config, compose_tiny, program, read_metrics, tiny_cifar10
from .hand_densities import (
    bernoulli_log_density,
    discretized_logistic_log_mass,
    hand_elbo_loss,
    loc_and_scale_by_hand,
    normal_log_density,
)

pytestmark = pytest.mark.usefixtures("single_thread")

LEVELS = torch.arange(256) / 255.0  # every grey level as the likelihood sees it
SHAPE = (3, 4, 4)
SEED = 123
NUM_DATA = 60  # != the batch of 5: the data scale N/B must enter where the bound puts it


# --------------------------------------------------------------------------------------------
# The Bernoulli pixels, scored as x l - softplus(l)
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-4), (torch.float64, 1e-10)])
def test_bernoulli_log_probability_and_its_gradient_match_the_hand_density(dtype, tol):
    """Against x log sigmoid(l) + (1 - x) log sigmoid(-l), with logits far into both tails (|l| up
    to 80, where a sigmoid rounds to 0 or 1) and images broadcast over samples as the estimator
    scores them; the gradient against its closed form x - sigmoid(l). The tolerance is float32's
    rounding of a sum of 48 terms of up to 80 nats (about 80 * 48 * 6e-8 = 2e-4 at worst)."""
    torch.manual_seed(SEED)
    logits = (torch.randn(7, 5, 3, 4, 4, dtype=dtype) * 20).clamp(-80, 80)
    logits[0, 0, 0, 0, :2] = torch.tensor([80.0, -80.0], dtype=dtype)
    logits.requires_grad_(True)
    x = torch.bernoulli(torch.full((5, 3, 4, 4), 0.4, dtype=dtype))
    log_p = BernoulliPixels()(logits).log_prob(x)
    by_hand = bernoulli_log_density(x.flatten(-3), logits.flatten(-3))
    assert log_p.shape == (7, 5)
    assert torch.allclose(log_p, by_hand, rtol=0, atol=tol)
    (gradient,) = torch.autograd.grad(log_p.sum(), logits)
    assert torch.allclose(gradient, x - torch.sigmoid(logits), rtol=0, atol=tol)


# --------------------------------------------------------------------------------------------
# The discretized logistic
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 2e-5), (torch.float64, 1e-12)])
def test_the_masses_of_all_256_levels_sum_to_one_for_every_parameter(dtype, tol):
    loc, scale = torch.meshgrid(
        torch.linspace(-1, 2, 13, dtype=dtype),
        torch.tensor([1e-3, 3e-3, 1e-2, 0.1, 1.0, 10.0, 1e3], dtype=dtype),
        indexing="ij",
    )
    levels = torch.arange(256, dtype=dtype) / 255  # in the dtype's own precision, so that the bins tile [0, 1] exactly
    masses = DiscretizedLogistic(loc, scale).log_prob(levels.reshape(256, 1, 1)).exp()
    assert torch.allclose(masses.sum(0), torch.ones_like(loc), rtol=0, atol=tol)
    assert torch.all(masses >= 0)


def test_the_log_mass_matches_the_hand_written_sigmoid_differences():
    g = torch.Generator().manual_seed(0)
    loc = torch.rand(64, 256, generator=g) * 1.4 - 0.2
    scale = torch.exp(torch.empty(64, 1).uniform_(math.log(0.01), math.log(3.0), generator=g)).expand(64, 256)
    x = LEVELS.expand(64, 256).double()
    hand = discretized_logistic_log_mass(x.unsqueeze(-1), loc.unsqueeze(-1), scale.unsqueeze(-1))
    assert hand.min() < -100  # deep into the tails
    ours64 = DiscretizedLogistic(loc.double(), scale.double()).log_prob(x)
    ours32 = DiscretizedLogistic(loc, scale).log_prob(x.float())
    assert torch.allclose(ours64, hand, rtol=1e-10, atol=1e-12)
    assert torch.allclose(ours32.double(), hand, rtol=2e-5, atol=2e-5)


def test_far_tails_are_exact_and_differentiable_in_float32():
    x = torch.tensor([1 / 255, 3 / 255, 100 / 255, 0.0, 1.0, 254 / 255])
    loc = torch.tensor([0.6, 0.9, 0.95, 0.5, 0.2, -0.3], requires_grad=True)
    scale = torch.tensor([0.02, 0.01, 0.005, 1e-3, 2e-3, 0.01], requires_grad=True)
    hand = discretized_logistic_log_mass(x.unsqueeze(-1), loc.detach().unsqueeze(-1), scale.detach().unsqueeze(-1))
    assert hand.max() < -30  # far in the tails indeed, on both sides and in both edge bins
    ours = DiscretizedLogistic(loc, scale).log_prob(x)
    assert torch.allclose(ours.double(), hand, rtol=1e-5)
    assert all(torch.isfinite(g).all() for g in torch.autograd.grad(ours.sum(), [loc, scale]))


def test_samples_follow_the_masses_and_the_mean_is_their_expectation():
    loc, scale = torch.tensor([0.02, 0.5, 0.97]), torch.tensor([0.01, 0.05, 0.03])
    p = DiscretizedLogistic(loc, scale)
    masses = p.log_prob(LEVELS.reshape(256, 1)).exp()  # (level, parameter)
    draws = 200_000
    counts = torch.stack([(p.sample((draws,))[:, i, None] == LEVELS).sum(0) for i in range(3)], dim=1).double()
    expected = draws * masses.double()
    # Each level's count within 5 binomial standard errors (+1 for levels of tiny mass).
    assert torch.all((counts - expected).abs() <= 5 * (expected * (1 - masses.double())).sqrt() + 1)
    assert torch.allclose(p.mean, (masses * LEVELS.reshape(256, 1)).sum(0), atol=1e-5)


def test_the_support_is_the_grey_levels_not_dequantized_values():
    p = DiscretizedLogistic(torch.zeros(256), torch.ones(256), validate_args=True)
    assert GreyLevels().check(LEVELS).all()
    assert torch.isfinite(p.log_prob(LEVELS)).all()
    with pytest.raises(ValueError, match="support"):
        p.log_prob((torch.arange(256) + 0.5) / 256)


# --------------------------------------------------------------------------------------------
# The pixels each likelihood sees, and its settings
# --------------------------------------------------------------------------------------------


def test_the_discretized_likelihood_sees_the_raw_grey_levels_and_the_gaussian_dequantized_ones():
    images = torch.randint(0, 256, (50, *SHAPE), dtype=torch.uint8)
    grey = PixelTransform("none", seed=0, observes=Observation.grey_levels)
    for view in (grey.training_batch(grey.training_source(images)), grey.fixed(images, "test")):
        assert torch.equal(view * 255, images.float())  # k / 255 exactly: no noise
    dequantized = PixelTransform("none", seed=0, observes=Observation.dequantized).fixed(images, "test")
    assert GreyLevels().check(dequantized).float().mean() < 0.01  # 0.2% land within 1e-3 of a level by chance


@pytest.mark.parametrize("likelihood", ["gaussian", "discretized_logistic"])
@pytest.mark.parametrize("mode", ["learned", "per_pixel"])
def test_learned_scales_start_at_the_documented_value(likelihood, mode):
    cfg = compose_tiny(f"likelihood={likelihood}", "net=mlp", f"likelihood.scale_mode={mode}")
    vae = build_vae(cfg, SHAPE, 10)
    _, scale = vae.likelihood.loc_and_scale(torch.zeros(2, *SHAPE))
    assert torch.allclose(scale, torch.tensor(cfg.likelihood.min_pixel_scale + INITIAL_SCALE))


# --------------------------------------------------------------------------------------------
# The ELBO against its hand derivation, on the same draws
# --------------------------------------------------------------------------------------------


def grey_level_batch():
    levels = torch.randint(0, 256, (5, *SHAPE), generator=torch.Generator().manual_seed(1))
    levels[0, 0, 0, :2] = torch.tensor([0, 255])  # both open edge bins
    return levels / 255.0


@pytest.mark.parametrize("mode", ["predicted", "learned", "per_pixel", "fixed"])
def test_trace_elbo_equals_hand_derivation_for_the_discretized_logistic(mode):
    cfg = compose_tiny("likelihood=discretized_logistic", "net=mlp", f"likelihood.scale_mode={mode}")
    vae = build_vae(cfg, SHAPE, 10)
    assert isinstance(vae.likelihood, DiscretizedLogisticPixels)
    with torch.no_grad():  # move learned scales away from their initial value
        for p in vae.likelihood.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    x = grey_level_batch()

    def log_likelihood(out):
        loc, scale = loc_and_scale_by_hand(out, mode, getattr(vae.likelihood, "raw_scale", None), cfg.likelihood)
        return discretized_logistic_log_mass(x.flatten(1), loc.flatten(1), scale.flatten(1)).float()

    pyro.set_rng_seed(SEED)
    ours = Trace_ELBO().differentiable_loss(*program(vae, NUM_DATA), x)
    pyro.set_rng_seed(SEED)
    assert_same_loss_and_gradients(vae, ours, hand_elbo_loss(vae, x, log_likelihood, NUM_DATA))


def optimal_cfg():
    return compose_tiny("likelihood=gaussian", "net=mlp", "likelihood.scale_mode=optimal")


def test_trace_elbo_with_the_calibrated_sigma_equals_hand_derivation():
    """In training, sigma = sqrt(mean over the batch's pixels of (x - mean(z))^2), a constant for the gradient."""
    cfg = optimal_cfg()
    vae = build_vae(cfg, SHAPE, 10)
    x = torch.rand(5, *SHAPE)

    def log_likelihood(out):
        sigma = ((x - out) ** 2).mean().sqrt().detach().clamp(min=cfg.likelihood.min_pixel_scale)
        return normal_log_density(x.flatten(1), out.flatten(1), sigma.expand(5, 48))

    pyro.set_rng_seed(SEED)
    ours = Trace_ELBO().differentiable_loss(*program(vae, NUM_DATA), x)
    pyro.set_rng_seed(SEED)
    assert_same_loss_and_gradients(vae, ours, hand_elbo_loss(vae, x, log_likelihood, NUM_DATA))


def test_the_calibrated_sigma_maximizes_the_batch_likelihood():
    """sigma* is the maximum: d/d sigma of the hand-written log-likelihood vanishes there, and it
    is higher than 1% to either side."""
    pixels = GaussianPixels(SHAPE, "optimal", 0.1, 1e-3)
    g = torch.Generator().manual_seed(2)
    x, out = torch.rand(8, *SHAPE, generator=g), torch.rand(8, *SHAPE, generator=g)
    sigma = pixels(out, x).base_dist.scale[0, 0, 0, 0].item()
    s = torch.tensor(sigma, dtype=torch.float64, requires_grad=True)
    log_lik = normal_log_density(x.flatten().double(), out.flatten().double(), s)
    (slope,) = torch.autograd.grad(log_lik, s)
    assert abs(slope.item()) < 1e-6 * abs(log_lik.item()) / sigma
    for other in (0.99 * sigma, 1.01 * sigma):
        assert (
            normal_log_density(x.flatten().double(), out.flatten().double(), torch.tensor(other, dtype=torch.float64))
            < log_lik
        )


def test_held_out_figures_use_the_running_sigma_whatever_the_images():
    """Each training batch's squared error enters the running variance with weight max(1/n, momentum)
    at step n (the mean of the first batches, then a moving average); evaluation (model.eval(), or
    no observation) uses its square root, not the images scored, and leaves it alone."""
    vae = build_vae(optimal_cfg(), SHAPE, 10)
    assert vae.decode(torch.zeros(1, vae.latent_dim)).base_dist.scale[0, 0, 0, 0] == pytest.approx(INITIAL_SCALE)
    g = torch.Generator().manual_seed(4)
    expected = None
    for step in range(1, 16):
        x = torch.rand(6, *SHAPE, generator=g) ** step  # batches of different errors
        trace = pyro.poutine.trace(vae.model).get_trace(x)
        variance = ((x - vae.decoder(trace.nodes["z"]["value"])) ** 2).mean().item()
        expected = variance if expected is None else expected + max(1 / step, RUNNING_MOMENTUM) * (variance - expected)
    assert vae.likelihood.running_variance.item() == pytest.approx(expected, rel=1e-5)
    assert {"likelihood.running_variance", "likelihood.calibration_steps"} <= set(
        vae.state_dict()
    )  # saved with the weights
    vae.eval()
    for images in (x, x[:1], 1 - x):
        site = pyro.poutine.trace(vae.model).get_trace(images).nodes["x"]
        assert torch.allclose(site["fn"].base_dist.scale, torch.tensor(expected).sqrt())
    assert vae.likelihood.running_variance.item() == pytest.approx(expected, rel=1e-5)
    vae.train()
    assert torch.allclose(vae.decode(torch.zeros(2, vae.latent_dim)).base_dist.scale, torch.tensor(expected).sqrt())


# --------------------------------------------------------------------------------------------
# Bits per dimension: a density of dequantized pixels, and a mass of grey levels
# --------------------------------------------------------------------------------------------


class PriorEncoder(nn.Module):
    """q(z|x) = p(z): log p(z) - log q(z|x) = 0 for every draw."""

    def forward(self, x, context=None):
        loc = x.new_zeros(len(x), 2)
        return loc, torch.ones_like(loc)


class ConstantDecoder(nn.Module):
    """The same decoder output whatever z: log p(x|z) = log p(x)."""

    def __init__(self, out):
        super().__init__()
        self.out = out

    def forward(self, z):
        return self.out.expand(*z.shape[:-1], *self.out.shape)


@pytest.mark.parametrize("likelihood", ["gaussian", "discretized_logistic"])
def test_bits_per_dim_of_an_exactly_known_log_likelihood(likelihood):
    """With q = p(z) and a decoder that ignores z, every importance weight is log p(x), written by
    hand: a Gaussian density of dequantized pixels bounds -log2 P(x) by -log2 p(x) + D * 8 bits;
    a discretized mass is -log2 P(x) itself."""
    g = torch.Generator().manual_seed(3)
    loc, scale = torch.rand(*SHAPE, generator=g), 0.05 + 0.3 * torch.rand(*SHAPE, generator=g)
    images = torch.randint(0, 256, (7, *SHAPE), generator=g, dtype=torch.uint8)
    cls = GaussianPixels if likelihood == "gaussian" else DiscretizedLogisticPixels
    pixels = cls(SHAPE, "predicted", 0.1, 1e-3)
    raw = torch.log(torch.expm1(scale - 1e-3))  # softplus(raw) + 1e-3 = scale
    vae = VAE(PriorEncoder(), ConstantDecoder(torch.cat([loc, raw])), pixels, latent_dim=2).eval()
    x = PixelTransform("none", 0, cls.observes).fixed(images, "test")
    if likelihood == "gaussian":
        log_px = normal_log_density(x.flatten(1).double(), loc.flatten().double(), scale.flatten().double())
        expected_bits = (-log_px.mean().item() + 48 * math.log(256)) / (48 * math.log(2))
    else:
        log_px = discretized_logistic_log_mass(x.flatten(1), loc.flatten(), scale.flatten())
        expected_bits = -log_px.mean().item() / (48 * math.log(2))
    cfg = OmegaConf.create(
        {
            "eval": {"iwae_k": 5, "chunk_size": 2048, "weight_draws": 1},
            "likelihood": {"name": likelihood},
        }
    )
    metrics = project_test_metrics(vae, x, None, cfg, num_data=7)
    assert metrics["test_log_likelihood"] == pytest.approx(log_px.mean().item(), rel=1e-5)
    assert metrics["test_bits_per_dim"] == pytest.approx(expected_bits, rel=1e-5)
    assert metrics["test_bits_per_dim_elbo"] == pytest.approx(expected_bits, rel=1e-5)
    assert metrics["likelihood"] == likelihood and metrics["likelihood_of"] == "log p(x)"


# --------------------------------------------------------------------------------------------
# CIFAR-10 end to end
# --------------------------------------------------------------------------------------------


@pytest.mark.slow  # two runs (tests/runs/test_end_to_end.py runs one in the fast set)
@pytest.mark.parametrize("likelihood, scale", [("gaussian", "optimal"), ("discretized_logistic", "predicted")])
def test_both_grey_level_likelihoods_run_on_a_cifar10_archive(tmp_path, monkeypatch, likelihood, scale):
    cfg = compose_config(
        [
            f"likelihood={likelihood}",
            f"likelihood.scale_mode={scale}",
            *tiny_cifar10(tmp_path, monkeypatch),
            "threads=1",
        ]
    )
    assert cfg.dataset.name == "cifar10" and cfg.net.name == "conv" and cfg.dataset.binarize == "none"
    run_experiment(cfg, tmp_path / "run")
    metrics = read_metrics(tmp_path / "run")
    offset = 8 if likelihood == "gaussian" else 0  # the dequantization's log 256 per dimension, in bits
    expected = -metrics["test_log_likelihood"] / (3072 * math.log(2)) + offset
    assert metrics["test_bits_per_dim"] == pytest.approx(expected, rel=1e-9)
    assert 0 < metrics["test_bits_per_dim"] <= metrics["test_bits_per_dim_elbo"] < 16
    assert (tmp_path / "run" / "figures" / "samples.png").is_file()
