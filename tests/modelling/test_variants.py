"""The conditional VAE, the Bayesian decoder and the KL weight: their ELBOs against the hand derivation."""

import math

import pyro
import pytest
import torch
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO
from torch import nn
from torch.nn import functional as F

import pyro_vae
from pyro_vae.modelling.estimators import evaluate
from pyro_vae.runs.configuration.builders import build_vae, make_objective
from pyro_vae.runs.loop.steps import kl_weighting
from pyro_vae.runs.loop.vae_training import kl_weight_at

from ..helpers import (
    assert_same_loss_and_gradients,
    compose_config,
    compose_tiny,
    inputs,
    program,
    read_metrics,
    train_tiny_run,
)
from .hand_densities import (
    bernoulli_log_density,
    kl_to_standard_normal,
    normal_log_density,
    standard_normal_log_density,
)

pytestmark = pytest.mark.usefixtures("single_thread")

SEED = 7
NUM_DATA = 90
NUM_CLASSES = 10
FLOOR = compose_tiny().net.min_encoder_scale  # sigma = softplus(raw) + FLOOR in q(z|x)
# The decoder's weights, in the order it holds them and q(W) draws them, one draw a step.
WEIGHT_SITES = ("body.0.weight", "body.0.bias", "body.2.weight", "body.2.bias")


def tiny_vae(*overrides):
    return build_vae(compose_tiny(*overrides), (1, 4, 4), 10)


@pytest.fixture
def batch():
    return torch.bernoulli(torch.full((6, 1, 4, 4), 0.3)), torch.tensor([0, 1, 2, 3, 4, 9])


def test_conditional_vae_needs_and_uses_the_label(batch):
    x, y = batch
    vae = tiny_vae("model=cvae")
    with pytest.raises(ValueError, match="conditional .*pass the labels y"):
        vae.encode(x)
    z = torch.zeros(2, vae.latent_dim)
    assert not torch.allclose(vae.decode(z, torch.tensor([0, 0])).mean, vae.decode(z, torch.tensor([1, 1])).mean)
    assert not torch.allclose(vae.encode(x, y).mean, vae.encode(x, (y + 1) % 10).mean)


def one_hot(y: torch.Tensor) -> torch.Tensor:
    return (y[:, None] == torch.arange(NUM_CLASSES)).float()


def run_by_hand(layers: nn.Sequential, v: torch.Tensor, weights=None) -> torch.Tensor:
    """``layers`` (Linear layers and activations) applied to ``v`` by hand; a Linear layer's weight and
    bias from ``weights`` by its name ``body.<index>.weight`` when given (a Bayesian decoder's draw of W)."""
    for index, layer in layers.named_children():
        if isinstance(layer, nn.Linear):
            if weights:
                v = F.linear(v, weights[f"body.{index}.weight"], weights[f"body.{index}.bias"])
            else:
                v = F.linear(v, layer.weight, layer.bias)
        else:
            v = layer(v)
    return v


def hand_latent_draw(vae, x, y=None):
    """z = mu + sigma eps, eps drawn from the RNG as Pyro's rsample draws it, with mu and sigma = softplus +
    FLOOR read from the encoder's network run by hand on the flattened pixels, the one-hot label appended
    when ``y`` is given (a conditional VAE). Returns z, mu and sigma."""
    features = x.flatten(1) if y is None else torch.cat([x.flatten(1), one_hot(y)], dim=-1)
    loc, raw_scale = run_by_hand(vae.encoder.head, features).chunk(2, dim=-1)
    scale = F.softplus(raw_scale) + FLOOR
    return loc + scale * torch.randn(loc.shape), loc, scale


def hand_log_likelihood(vae, x, z, y=None, weights=None) -> torch.Tensor:
    """log p(x|z[, y]) per image: Bernoulli pixels of the logits of the decoder run by hand on z, the
    one-hot label appended when ``y`` is given; with ``weights``, the decoder's weights are those."""
    decoder_input = z if y is None else torch.cat([z, one_hot(y)], dim=-1)
    return bernoulli_log_density(x.flatten(1), run_by_hand(vae.decoder.body, decoder_input, weights))


def test_conditional_elbo_equals_hand_derivation(batch):
    """-(N/B) sum_i [log p(x_i|z_i, y_i) + log p(z_i) - log q(z_i|x_i, y_i)] on the same draw, with the
    one-hot label entering both networks by hand: loss and every gradient."""
    x, y = batch
    vae = tiny_vae("model=cvae")
    pyro.set_rng_seed(SEED)
    ours = Trace_ELBO().differentiable_loss(*program(vae, NUM_DATA), x, y)
    pyro.set_rng_seed(SEED)
    z, loc, scale = hand_latent_draw(vae, x, y)
    log_w = hand_log_likelihood(vae, x, z, y) + standard_normal_log_density(z) - normal_log_density(z, loc, scale)
    assert_same_loss_and_gradients(vae, ours, -(NUM_DATA / len(x)) * log_w.sum())


@pytest.mark.parametrize("beta", [0.0, 0.3, 2.0])
def test_kl_weight_scales_the_kl_terms_only(batch, beta):
    """-(N/B) sum_i [log p(x_i|z_i) - beta KL_i] on the same draw, loss and every gradient: KL_i the sampled
    log q(z_i|x_i) - log p(z_i) under Trace_ELBO, KL(q(z|x_i) || N(0, I)) in closed form under
    TraceMeanField_ELBO; beta = 0 leaves the KL out entirely."""
    x, _ = batch
    vae = tiny_vae()
    kl_terms = {
        Trace_ELBO: lambda z, loc, scale: normal_log_density(z, loc, scale) - standard_normal_log_density(z),
        TraceMeanField_ELBO: lambda z, loc, scale: kl_to_standard_normal(loc, scale),
    }
    for elbo, kl in kl_terms.items():
        pyro.set_rng_seed(SEED)
        with kl_weighting(beta):
            ours = elbo().differentiable_loss(*program(vae, NUM_DATA), x)
        pyro.set_rng_seed(SEED)
        z, loc, scale = hand_latent_draw(vae, x)
        hand = -(NUM_DATA / len(x)) * (hand_log_likelihood(vae, x, z) - beta * kl(z, loc, scale)).sum()
        assert_same_loss_and_gradients(vae, ours, hand)


def test_kl_warmup_is_linear_from_zero():
    cfg = compose_config(["kl_weight=0.8", "kl_warmup_epochs=4"])
    assert kl_weight_at(cfg, 1, 0.0) == 0.0
    assert kl_weight_at(cfg, 1, 1.0) == pytest.approx(0.2)
    assert kl_weight_at(cfg, 3, 0.5) == pytest.approx(0.8 * 2.5 / 4)
    assert kl_weight_at(cfg, 4, 1.0) == pytest.approx(0.8) and kl_weight_at(cfg, 9, 0.3) == pytest.approx(0.8)
    assert kl_weight_at(compose_config(["kl_weight=0.5"]), 1, 0.0) == 0.5


def hand_bayesian_loss(vae, x, y, num_data: int, prior_scale: float):
    """-(N/B sum_i [log p(x_i|z_i, W) + log p(z_i) - log q(z_i|x_i)] + log p(W) - log q(W)) on the draws the
    guide makes from the RNG: first W = m + exp(log s) eps from q(W)'s raw parameters, site by site, then z.
    log p(W) = log N(W; 0, prior_scale^2) and log q(W) = log N(W; m, exp(log s)^2), written out.
    Returns the loss and log p(W) - log q(W)."""
    guide = vae.weight_guide
    weights, log_p_w, log_q_w = {}, 0.0, 0.0
    for site in WEIGHT_SITES:
        loc, log_scale = guide.locs[site.replace(".", "__")], guide.log_scales[site.replace(".", "__")]
        weights[site] = w = loc + log_scale.exp() * torch.randn(loc.shape)
        log_q_w = log_q_w + normal_log_density(w.flatten(), loc.flatten(), log_scale.exp().flatten())
        log_p_w = log_p_w + normal_log_density(w.flatten(), torch.tensor(0.0), torch.tensor(prior_scale))
    z, loc, scale = hand_latent_draw(vae, x, y)
    log_lik = hand_log_likelihood(vae, x, z, y, weights)
    data_terms = (log_lik + standard_normal_log_density(z) - normal_log_density(z, loc, scale)).sum()
    return -((num_data / len(x)) * data_terms + log_p_w - log_q_w), log_p_w - log_q_w


@pytest.mark.parametrize("model", ["vae", "cvae"])
def test_bayesian_elbo_counts_the_weight_kl_once_per_dataset(batch, model):
    """-loss = N/B * sum_i [log p(x_i|z_i,W) + log p(z_i) - log q(z_i|x_i)] + log p(W) - log q(W), against
    the hand derivation on the same draws of W and z: loss and every gradient (q(W)'s and the encoder's)."""
    x, y = batch
    # q(W)'s scale 0.05, not the default 1e-3: log q(W)'s gradient to each mean is +-eps/s on two paths that
    # cancel, and at s = 1e-3 their float32 rounding (ulp(1000)) alone exceeds the comparison's tolerance.
    overrides = ("decoder.bayesian=true", "decoder.weight_prior_scale=0.5", "decoder.weight_init_scale=0.05")
    vae = tiny_vae(f"model={model}", *overrides)
    label = y if vae.conditional else None
    losses = {}
    for num_data in (NUM_DATA, 2 * NUM_DATA):
        pyro.set_rng_seed(SEED)
        ours = Trace_ELBO().differentiable_loss(*program(vae, num_data), *inputs(vae, x, y))
        pyro.set_rng_seed(SEED)
        hand, weight_terms = hand_bayesian_loss(vae, x, label, num_data, prior_scale=0.5)
        weight_gradients = torch.autograd.grad(hand, list(vae.weight_guide.parameters()), retain_graph=True)
        assert all(g.abs().sum() > 0 for g in weight_gradients)  # every mean and scale of q(W) is reached
        assert_same_loss_and_gradients(vae, ours, hand)
        losses[num_data] = ours
    # doubling the dataset doubles the data terms and leaves the weight KL alone
    difference = 2 * losses[NUM_DATA] - losses[2 * NUM_DATA]
    assert torch.allclose(difference, -weight_terms, rtol=1e-4, atol=1e-2)


def test_bayesian_likelihood_averages_over_weight_draws(batch, monkeypatch):
    """evaluate with weight_draws = 3 splits an image's K = 12 importance samples into 3 chunks of 4, each
    decoded with a W of its own: its bound and ELBO given W equal those written out here on the same
    draws (per chunk z ~ q(z|x), then W ~ q(W) site by site), from 3 draws of W; one W for all 12
    samples would draw in another order and give other figures (measured: 0.02 to 1.8 nats off)."""
    x, _ = batch
    vae = tiny_vae("decoder.bayesian=true", "decoder.weight_init_scale=0.3")
    z = torch.zeros(3, vae.latent_dim)
    assert not torch.allclose(vae.decode(z).mean, vae.decode(z).mean)  # each call draws W ~ q(W)
    k, draws, guide = 12, 3, vae.weight_guide
    drawn = []
    draw = guide.draw
    monkeypatch.setattr(guide, "draw", lambda: drawn.append(1) or draw())

    def by_hand(chunks):
        """The bound logsumexp_k log w_k - log K and the mean log w, averaged over the images."""
        log_w = []
        for count in chunks:
            loc, raw_scale = run_by_hand(vae.encoder.head, x.flatten(1)).chunk(2, dim=-1)
            scale = F.softplus(raw_scale) + FLOOR
            z = loc + scale * torch.randn(count, *loc.shape)
            weights = {}
            for site in WEIGHT_SITES:
                mean, log_scale = guide.locs[site.replace(".", "__")], guide.log_scales[site.replace(".", "__")]
                weights[site] = mean + log_scale.exp() * torch.randn(mean.shape)
            log_lik = hand_log_likelihood(vae, x, z, weights=weights)
            log_w.append(log_lik + standard_normal_log_density(z) - normal_log_density(z, loc, scale))
        log_w = torch.cat(log_w)
        return (torch.logsumexp(log_w, 0) - math.log(k)).mean().item(), log_w.mean().item()

    with torch.no_grad():
        pyro.set_rng_seed(SEED)
        result = evaluate(vae, x, num_samples=k, weight_draws=draws, num_data=NUM_DATA)
        pyro.set_rng_seed(SEED)
        log_likelihood, elbo = by_hand([k // draws] * draws)
    assert len(drawn) == draws
    # float32 rounding on the same draws: seen below 2e-6 nats
    assert result.log_likelihood == pytest.approx(log_likelihood, abs=1e-4)
    assert result.elbo_given_weights == pytest.approx(elbo, abs=1e-4)


def test_bayesian_weight_kl_is_the_closed_form_of_normals():
    """KL(N(m, s^2) || N(0, p^2)) = log(p / s) + (s^2 + m^2) / (2 p^2) - 1/2, summed over weights."""
    vae = tiny_vae("decoder.bayesian=true", "decoder.weight_prior_scale=0.5", "decoder.weight_init_scale=0.2")
    guide = vae.weight_guide
    hand = 0.0
    for site in guide.sites:
        m = guide.locs[guide._key(site)].detach().double()
        s = guide.log_scales[guide._key(site)].detach().double().exp()
        hand += (torch.log(0.5 / s) + (s**2 + m**2) / (2 * 0.25) - 0.5).sum().item()
    assert guide.kl_to_prior().item() == pytest.approx(hand, rel=1e-5)


@pytest.mark.slow  # 2000 training losses against 4000 x 400 validation draws
def test_bayesian_train_and_val_figures_are_one_bound_on_the_same_images(batch):
    """The training column (-loss / N of the step's objective, one W and z draw each) and the
    validation ELBO of evaluate() estimate the same bound on the same images: their means agree
    within 5 standard errors. Without KL(q(W) || p(W)) / N in either, they differ by hundreds of errors."""
    x, y = batch
    num_data = len(x)  # the training set is these six images, and so is the validation set
    cfg = compose_tiny("decoder.bayesian=true", "decoder.weight_init_scale=0.05")
    vae = build_vae(cfg, (1, 4, 4), 10)
    objective = make_objective(cfg.objective)
    with torch.no_grad():
        train = torch.stack(
            [
                -objective.differentiable_loss(*program(vae, num_data), *inputs(vae, x, y)) / num_data
                for _ in range(2000)
            ]
        )
    val = evaluate(vae, x, y, num_samples=4000, weight_draws=400, num_data=num_data)
    standard_error = train.std().item() / math.sqrt(len(train))
    assert abs(train.mean().item() - val.elbo) < 5 * standard_error
    assert val.weight_kl == pytest.approx(vae.weight_guide.kl_to_prior().item() / num_data)
    assert val.elbo == pytest.approx(val.elbo_given_weights - val.weight_kl)
    assert val.weight_kl > 100 * standard_error  # leaving the weight KL out of one side would be caught
    with pytest.raises(ValueError, match="pass num_data"):
        evaluate(vae, x, y)


@pytest.mark.parametrize("elbo", [Trace_ELBO, TraceMeanField_ELBO])
@pytest.mark.parametrize("init_scale", [1e-6, 1e-8])
def test_tiny_initial_weight_scales_learn(batch, init_scale, elbo):
    """A scale parameterised as softplus minus a floor of 1e-6 froze at 1e-6 and broke below it."""
    x, y = batch
    vae = tiny_vae("decoder.bayesian=true", f"decoder.weight_init_scale={init_scale}")
    guide = vae.weight_guide
    scale_parameters = [p for name, p in guide.named_parameters() if not name.startswith("locs.")]
    initial = {site: guide.distribution(site).base_dist.scale.detach().clone() for site in guide.sites}
    optimizer = torch.optim.Adam(vae.parameters(), lr=1e-3)
    for _ in range(5):
        optimizer.zero_grad()
        elbo().differentiable_loss(*program(vae, NUM_DATA), *inputs(vae, x, y)).backward()
        assert all(torch.isfinite(p.grad).all() and (p.grad != 0).all() for p in scale_parameters)
        optimizer.step()
    for site in guide.sites:
        scale = guide.distribution(site).base_dist.scale.detach()
        assert (scale != initial[site]).all(), site
        assert scale.mean() > 1.002 * initial[site].mean(), site  # the entropy term widens q(W)


@pytest.mark.slow  # a whole run
def test_conditional_run_writes_class_samples_and_labels_its_figures(tmp_path):
    metrics = read_metrics(train_tiny_run(tmp_path, "latent_dim=2", "model=cvae"))
    assert metrics["likelihood_of"] == "log p(x|y)"
    assert (tmp_path / "figures" / "class_samples.png").is_file()


@pytest.mark.slow  # a whole run
def test_bayesian_run_writes_the_uncertainty_figure(tmp_path):
    metrics = read_metrics(train_tiny_run(tmp_path, "latent_dim=2", "decoder.bayesian=true"))
    assert metrics["likelihood_of"] == "log p(x)" and math.isfinite(metrics["test_log_likelihood"])
    assert metrics["test_elbo"] == pytest.approx(metrics["test_elbo_given_weights"] - metrics["test_weight_kl"])
    history = (tmp_path / "history.csv").read_text().splitlines()
    assert history[0].split(",")[:5] == ["epoch", "train_elbo", "val_elbo", "val_elbo_given_weights", "weight_kl"]
    assert (tmp_path / "figures" / "uncertainty.png").is_file()
    loaded = pyro_vae.load(tmp_path)
    assert loaded.bayesian and torch.isfinite(loaded.decode(torch.zeros(2, 2)).mean).all()


def test_reported_test_elbo_is_the_true_elbo_whatever_the_kl_weight(tmp_path):
    metrics = read_metrics(train_tiny_run(tmp_path, "latent_dim=2", "kl_weight=0.0", "epochs=3"))
    # beta = 0 trains without the KL; the reported ELBO still subtracts it.
    assert metrics["test_kl"] > 1.0
    assert metrics["test_elbo"] == pytest.approx(metrics["test_reconstruction"] - metrics["test_kl"], abs=1.0)
