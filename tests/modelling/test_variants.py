"""The conditional VAE, the Bayesian decoder and the KL weight: their ELBOs against the hand derivation."""

import math

import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceMeanField_ELBO

import pyro_vae
from pyro_vae.modelling.estimators import evaluate
from pyro_vae.runs.builders import build_vae, make_objective
from pyro_vae.runs.steps import kl_weighting
from pyro_vae.runs.training import kl_weight_at

from ..helpers import compose_config, compose_tiny, inputs, program, read_metrics, train_tiny_run

pytestmark = pytest.mark.usefixtures("single_thread")

SEED = 7
NUM_DATA = 90


def tiny_vae(*overrides):
    return build_vae(compose_tiny(*overrides), (1, 4, 4), 10)


@pytest.fixture
def batch():
    return torch.bernoulli(torch.full((6, 1, 4, 4), 0.3)), torch.tensor([0, 1, 2, 3, 4, 9])


def guide_trace(vae, x, y, kl_weight=1.0):
    _, guide = program(vae, NUM_DATA)
    with kl_weighting(kl_weight):
        return poutine.trace(guide).get_trace(*inputs(vae, x, y))


def pyro_loss(vae, trace, x, y, elbo=None, kl_weight=1.0):
    """Pyro's loss with the guide's draws fixed to those of ``trace``."""
    elbo = elbo or Trace_ELBO()
    model, guide = program(vae, NUM_DATA)
    with kl_weighting(kl_weight):
        return elbo.differentiable_loss(model, poutine.replay(guide, trace=trace), *inputs(vae, x, y))


def test_conditional_vae_needs_and_uses_the_label(batch):
    x, y = batch
    vae = tiny_vae("model=cvae")
    with pytest.raises(ValueError, match="conditional .*pass the labels y"):
        vae.encode(x)
    z = torch.zeros(2, vae.latent_dim)
    assert not torch.allclose(vae.decode(z, torch.tensor([0, 0])).mean, vae.decode(z, torch.tensor([1, 1])).mean)
    assert not torch.allclose(vae.encode(x, y).mean, vae.encode(x, (y + 1) % 10).mean)


def test_conditional_elbo_equals_hand_derivation(batch):
    x, y = batch
    vae = tiny_vae("model=cvae")
    trace = guide_trace(vae, x, y)
    z = trace.nodes["z"]["value"]
    q = vae.encode(x, y)
    hand = -(NUM_DATA / len(x)) * (vae.decode(z, y).log_prob(x) + vae.prior(len(x)).log_prob(z) - q.log_prob(z)).sum()
    assert torch.allclose(pyro_loss(vae, trace, x, y), hand, rtol=1e-5)


@pytest.mark.parametrize("beta", [0.0, 0.3, 2.0])
def test_kl_weight_scales_the_kl_terms_only(batch, beta):
    x, y = batch
    vae = tiny_vae()
    trace = guide_trace(vae, x, y, kl_weight=beta)
    z = trace.nodes["z"]["value"]
    q = vae.encode(x)
    per_image = vae.decode(z).log_prob(x) + beta * (vae.prior(len(x)).log_prob(z) - q.log_prob(z))
    hand = -(NUM_DATA / len(x)) * per_image.sum()
    assert torch.allclose(pyro_loss(vae, trace, x, y, kl_weight=beta), hand, rtol=1e-5)
    # with the KL in closed form (TraceMeanField_ELBO) the weight multiplies KL(q || p)
    kl = torch.distributions.kl_divergence(q, vae.prior(len(x)))
    hand_meanfield = -(NUM_DATA / len(x)) * (vae.decode(z).log_prob(x) - beta * kl).sum()
    meanfield = pyro_loss(vae, trace, x, y, elbo=TraceMeanField_ELBO(), kl_weight=beta)
    assert torch.allclose(meanfield, hand_meanfield, rtol=1e-5)


def test_kl_warmup_is_linear_from_zero():
    cfg = compose_config(["kl_weight=0.8", "kl_warmup_epochs=4"])
    assert kl_weight_at(cfg, 1, 0.0) == 0.0
    assert kl_weight_at(cfg, 1, 1.0) == pytest.approx(0.2)
    assert kl_weight_at(cfg, 3, 0.5) == pytest.approx(0.8 * 2.5 / 4)
    assert kl_weight_at(cfg, 4, 1.0) == pytest.approx(0.8) and kl_weight_at(cfg, 9, 0.3) == pytest.approx(0.8)
    assert kl_weight_at(compose_config(["kl_weight=0.5"]), 1, 0.0) == 0.5


def test_bayesian_elbo_counts_the_weight_kl_once_per_dataset(batch):
    """-loss = N/B * sum_i [log p(x_i|z_i,W) + log p(z_i) - log q(z_i|x_i)] + log p(W) - log q(W)."""
    x, y = batch
    vae = tiny_vae("decoder.bayesian=true", "decoder.weight_prior_scale=0.5")
    trace = guide_trace(vae, x, y)
    weights = {site: trace.nodes[site]["value"] for site in vae.weight_guide.sites}
    z = trace.nodes["z"]["value"]
    q = vae.encode(x)
    with poutine.condition(data=weights):
        log_lik = vae.likelihood(vae.decoder(z)).log_prob(x)
    data_terms = (log_lik + vae.prior(len(x)).log_prob(z) - q.log_prob(z)).sum()
    log_prior_w = sum(torch.distributions.Normal(0.0, 0.5).log_prob(w).sum() for w in weights.values())
    log_q_w = sum(vae.weight_guide.distribution(site).log_prob(w) for site, w in weights.items())
    hand = -((NUM_DATA / len(x)) * data_terms + log_prior_w - log_q_w)
    loss = pyro_loss(vae, trace, x, y)
    assert torch.allclose(loss, hand, rtol=1e-5)
    # doubling the dataset doubles the data terms and leaves the weight KL alone
    model, guide = program(vae, 2 * NUM_DATA)
    doubled = Trace_ELBO().differentiable_loss(model, poutine.replay(guide, trace=trace), *inputs(vae, x, y))
    assert torch.allclose(2 * loss - doubled, -(log_prior_w - log_q_w), rtol=1e-4, atol=1e-2)
    grads = torch.autograd.grad(loss, list(vae.weight_guide.parameters()))
    assert all(torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads)


def test_bayesian_likelihood_averages_over_weight_draws(batch):
    x, y = batch
    vae = tiny_vae("decoder.bayesian=true", "decoder.weight_init_scale=0.3")
    z = torch.zeros(3, vae.latent_dim)
    first, second = vae.decode(z).mean, vae.decode(z).mean
    assert not torch.allclose(first, second)  # each call draws W ~ q(W)


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
