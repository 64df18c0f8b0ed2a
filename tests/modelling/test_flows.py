"""The IAF guide (``guide=iaf``) and the flow prior (``prior=flow``) against the change of variables
worked out here by brute force, sharing no code with Zuko's own log-determinants.

For a draw z_T = f_T(...f_1(z_0)), z_0 = mu + sigma eps:
    log q(z_T | x) = log N(z_0; mu, diag sigma^2) - sum_t log |det J_t|,
with each step's Jacobian J_t taken by autograd. An autoregressive step's Jacobian is triangular
in its order (checked), so its log-determinant is the sum of the logs of its diagonal, the
"log-scales". For the flow prior, log p(z) = log N(u; 0, I) + log |det du/dz|, u the flow's image
of z. Then the ELBO under each against its hand derivation on the same draws (losses and
gradients), DReG with the IAF guide, and tiny runs end to end.
"""

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from torch.autograd.functional import jacobian

import pyro_vae
from pyro_vae.modelling.flows import PyroFlow
from pyro_vae.modelling.guides import InverseAutoregressiveFlow
from pyro_vae.modelling.objectives import IWAE_ELBO
from pyro_vae.modelling.priors import FlowPrior

from ..helpers import compose_tiny, program, read_metrics, run_py, train_tiny_run
from .hand_densities import bernoulli_log_density, normal_log_density, standard_normal_log_density
from .test_hierarchical import assert_same_gradients, gradients, run_mlp

SHAPE, LATENT, NUM_DATA = (1, 4, 4), 3, 60
IAF = ("guide=iaf", "guide.steps=2", "guide.context_dim=5", "guide.widths=[8]", f"latent_dim={LATENT}")
FLOW = ("prior=flow", "prior.steps=2", "prior.widths=[8]", f"latent_dim={LATENT}")

pytestmark = pytest.mark.usefixtures("single_thread")


def build(*overrides: str):
    from pyro_vae.runs.builders import build_vae

    pyro.set_rng_seed(0)
    return build_vae(compose_tiny(*overrides), SHAPE, 10)


def autoregressive_log_det(step, z: torch.Tensor, create_graph: bool = False) -> torch.Tensor:
    """log |det J| of ``step`` at the vector ``z`` by autograd, after checking that J is triangular once
    its rows and columns are put in the order of how many inputs each output reads (autoregressive)."""
    j = jacobian(step, z, create_graph=create_graph)
    order = torch.argsort((j != 0).sum(1))
    permuted = j.detach()[order][:, order]
    assert torch.equal(permuted, permuted.tril()), "a step of the flow is not autoregressive"
    return j.diagonal().abs().log().sum()


def iaf_by_hand(family: InverseAutoregressiveFlow, loc, scale, context, eps, create_graph: bool = False):
    """One image: z_0 = mu + sigma eps through the steps in drawing order, and log q by the change of variables."""
    z = loc + scale * eps
    log_q = normal_log_density(z, loc, scale)
    for lazy_step in family.steps:
        draw = lazy_step(context[None]).inv  # the step's drawing direction, for this image's context

        def step(v, draw=draw):
            return draw(v[None])[0]

        log_q = log_q - autoregressive_log_det(step, z, create_graph)
        z = step(z)
    return z, log_q


def test_iaf_log_density_is_the_base_density_minus_the_log_scales():
    vae = build(*IAF)
    assert isinstance(vae.variational_family, InverseAutoregressiveFlow) and not vae.closed_form_kl
    x = torch.bernoulli(torch.full((4, *SHAPE), 0.3))
    q = vae.encode(x)
    assert isinstance(q, PyroFlow) and q.batch_shape == (4,) and q.event_shape == (LATENT,)
    loc, scale, context = vae.encoder(x)
    torch.manual_seed(5)
    z = q.rsample()
    torch.manual_seed(5)
    eps = torch.randn(4, LATENT)  # the base noise of that draw
    by_hand = [iaf_by_hand(vae.variational_family, *row) for row in zip(loc, scale, context, eps)]
    assert torch.allclose(z, torch.stack([z_hand for z_hand, _ in by_hand]), atol=1e-6)
    hand = torch.stack([log_q for _, log_q in by_hand])
    assert torch.allclose(q.log_prob(z), hand, atol=1e-5)  # the draw's cached density
    assert torch.allclose(q.log_prob(z.clone()), hand, atol=1e-4)  # scored afresh: Zuko inverts the steps


def test_flow_prior_log_density_is_the_change_of_variables():
    vae = build(*FLOW)
    assert isinstance(vae.latent_prior, FlowPrior) and not vae.closed_form_kl
    p = vae.prior(5)
    assert isinstance(p, PyroFlow) and p.batch_shape == (5,) and p.event_shape == (LATENT,)
    to_base = vae.latent_prior.flow.transform()  # z -> u, the direction that scores
    z = torch.randn(5, LATENT) * 2
    hand = []
    for row in z:
        j = jacobian(lambda v: to_base(v[None])[0], row)
        hand.append(standard_normal_log_density(to_base(row[None])[0]) + torch.linalg.slogdet(j).logabsdet)
    assert torch.allclose(p.log_prob(z), torch.stack(hand), atol=1e-5)
    drawn = p.sample()
    assert drawn.shape == (5, LATENT)
    # a draw maps back to the base: drawing runs the flow's inverse, scoring its forward
    u = torch.randn(5, LATENT)
    assert torch.allclose(to_base(to_base.inv(u)), u, atol=1e-5)
    assert p.mean.shape == (5, LATENT) and (p.stddev > 0).all()  # Monte Carlo moments, for the figures


def hand_elbo_terms(vae, x, z):
    """log p(x|z) + log N(z; 0, I): the model's half of the ELBO, from the decoder's raw output."""
    return bernoulli_log_density(x.flatten(1), run_mlp(vae.decoder.body, z))


def test_trace_elbo_with_the_iaf_guide_equals_the_hand_derivation():
    """Pyro's loss on the guide's own draw against -(N/B) sum_i [log p(x|z) + log p(z) - log q(z|x)],
    with z and log q(z|x) built by hand from the same base noise; the gradients reach the flow's steps
    through z and through the log-determinants (taken by autograd, with their graph)."""
    vae = build(*IAF)
    x = torch.bernoulli(torch.full((3, *SHAPE), 0.3))
    model, guide = program(vae, NUM_DATA)
    torch.manual_seed(9)
    ours = Trace_ELBO().differentiable_loss(model, guide, x)
    torch.manual_seed(9)
    eps = torch.randn(3, LATENT)
    loc, scale, context = vae.encoder(x)
    rows = [iaf_by_hand(vae.variational_family, *row, create_graph=True) for row in zip(loc, scale, context, eps)]
    z, log_q = torch.stack([r[0] for r in rows]), torch.stack([r[1] for r in rows])
    hand = -(NUM_DATA / len(x)) * (hand_elbo_terms(vae, x, z) + standard_normal_log_density(z) - log_q).sum()
    assert torch.allclose(ours, hand, rtol=1e-5)
    ours_gradients, hand_gradients = gradients(vae, ours, retain_graph=True), gradients(vae, hand)
    assert_same_gradients(vae, ours_gradients, hand_gradients)
    steps = [g for (name, _), g in zip(vae.named_parameters(), hand_gradients) if "family.steps" in name]
    assert steps and all(g is not None and g.abs().sum() > 0 for g in steps)


def test_trace_elbo_under_the_flow_prior_equals_the_hand_derivation():
    vae = build(*FLOW)
    x = torch.bernoulli(torch.full((4, *SHAPE), 0.3))
    model, guide = program(vae, NUM_DATA)
    trace = poutine.trace(guide).get_trace(x)
    ours = Trace_ELBO().differentiable_loss(model, poutine.replay(guide, trace=trace), x)
    z = trace.nodes["z"]["value"]
    to_base = vae.latent_prior.flow.transform()
    log_p = torch.stack(
        [
            standard_normal_log_density(to_base(row[None])[0])
            + torch.linalg.slogdet(jacobian(lambda v: to_base(v[None])[0], row, create_graph=True)).logabsdet
            for row in z
        ]
    )
    loc, scale = vae.encoder(x)
    hand = -(NUM_DATA / len(x)) * (hand_elbo_terms(vae, x, z) + log_p - normal_log_density(z, loc, scale)).sum()
    assert torch.allclose(ours, hand, rtol=1e-5)
    ours_gradients, hand_gradients = gradients(vae, ours, retain_graph=True), gradients(vae, hand)
    assert_same_gradients(vae, ours_gradients, hand_gradients)
    flow = [g for (name, _), g in zip(vae.named_parameters(), hand_gradients) if name.startswith("latent_prior")]
    assert flow and all(g is not None and g.abs().sum() > 0 for g in flow)


def test_dreg_with_the_iaf_guide_keeps_the_bound_and_the_decoder_gradient():
    """DReG changes the guide's gradient only: the same loss and decoder gradient as the standard
    estimator on the same draws, and a guide gradient that differs (it drops the score term). The
    modelling wing computes it; a run refuses it with guide=iaf, for its cost (tests/runs/test_refusals.py)."""
    vae = build(*IAF)
    x = torch.bernoulli(torch.full((3, *SHAPE), 0.3))
    model, guide = program(vae, NUM_DATA)
    results = {}
    for gradient in ("standard", "dreg"):
        pyro.set_rng_seed(4)
        loss = IWAE_ELBO(3, gradient).differentiable_loss(model, guide, x)
        results[gradient] = (loss, gradients(vae, loss))
    assert torch.allclose(results["standard"][0], results["dreg"][0], rtol=1e-5)
    assert_same_gradients(vae, results["standard"][1], results["dreg"][1], {"decoder"})
    encoder = [name.startswith("encoder") for name, _ in vae.named_parameters()]
    differs = [not torch.allclose(a, b) for a, b, e in zip(results["standard"][1], results["dreg"][1], encoder) if e]
    assert any(differs)


@pytest.mark.slow  # two tiny runs end to end, and tasks on them through run.py
@pytest.mark.parametrize("family", [IAF + ("objective=iwae", "objective.num_particles=2"), FLOW], ids=["iaf", "flow"])
def test_a_run_with_a_flow_trains_and_every_task_works(tmp_path, family):
    run = train_tiny_run(tmp_path / "run", *family)
    metrics = read_metrics(run)
    assert metrics["test_log_likelihood"] >= metrics["test_elbo"]
    assert metrics["test_kl"] > 0  # a Monte Carlo KL
    for figure in ("samples", "reconstructions", "latent_space", "encoding", "decoding"):
        assert (run / "figures" / f"{figure}.png").is_file(), figure
    assert pyro_vae.load(run).latent_dim == LATENT
    for task in ("task=sample task.n=9", "task=interpolate task.steps=4", "task=evaluate"):
        out = tmp_path / task.split()[0].replace("=", "_")  # a task takes the run's own settings
        run_py(*task.split(), f"task.run_dir={run}", "eval.iwae_k=8", "device=cpu", "threads=1", f"hydra.run.dir={out}")
