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

import math

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO
from torch import nn
from torch.autograd.functional import jacobian
from torch.nn import functional as F

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
    from pyro_vae.runs.configuration.builders import build_vae

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


MIN_SLOPE = 1e-3  # the smallest exp(a) of Zuko's affine step: a = r / (1 + |r| / log(1 / MIN_SLOPE))


def made_shift_and_log_scale(step, v: torch.Tensor, context: torch.Tensor, fixed: bool = False):
    """One IAF step's (b, a) at its input ``v``: its masked network run by hand on [v, h(x)] (each layer
    x (W * mask)^T + bias, the weights detached if ``fixed``), whose outputs are (b_i, r_i) for each i in
    turn, and a = r / (1 + |r| / log(1 / MIN_SLOPE)), the soft bound on the log-scale."""
    out = torch.cat([v, context.expand(*v.shape[:-1], context.shape[-1])], dim=-1)
    for layer in step.transform.hyper:
        if isinstance(layer, nn.Linear):
            weight, bias = (layer.weight.detach(), layer.bias.detach()) if fixed else (layer.weight, layer.bias)
            out = F.linear(out, layer.mask * weight, bias)
        else:
            out = layer(out)
    shift, raw = out.unflatten(-1, (-1, 2)).unbind(-1)
    return shift, raw / (1 + raw.abs() / math.log(1 / MIN_SLOPE))


def iaf_head_by_hand(vae, x: torch.Tensor):
    """mu, sigma = softplus + floor and the context h(x), read in that order from the encoder's head run by hand."""
    out = run_mlp(vae.encoder.head, x.flatten(1))
    floor = vae.variational_family.min_scale
    return out[..., :LATENT], F.softplus(out[..., LATENT : 2 * LATENT]) + floor, out[..., 2 * LATENT :]


def iaf_draw_by_hand(vae, loc, scale, context, eps):
    """z_0 = mu + sigma eps, then z_t = z_{t-1} exp(a_t) + b_t with (b_t, a_t) read at z_{t-1}; log q(z_T | x) =
    log N(z_0; mu, sigma^2) - sum_t sum_i a_t,i."""
    z = loc + scale * eps
    log_q = normal_log_density(z, loc, scale)
    for step in vae.variational_family.steps:
        shift, log_scale = made_shift_and_log_scale(step, z, context)
        z = z * log_scale.exp() + shift
        log_q = log_q - log_scale.sum(-1)
    return z, log_q


def iaf_fixed_log_density_by_hand(vae, z, loc, scale, context):
    """log q(z | x) with every parameter of the guide held fixed, a function of z alone: each step inverted by
    LATENT fixed-point passes v <- (z_t - b(v)) exp(-a(v)) from v = 0, exact once every dimension has seen
    those it depends on (the step is autoregressive), and so is its derivative in z."""
    log_q = 0.0
    context = context.detach()
    for step in reversed(vae.variational_family.steps):
        v = torch.zeros_like(z)
        for _ in range(LATENT):
            shift, log_scale = made_shift_and_log_scale(step, v, context, fixed=True)
            v = (z - shift) * (-log_scale).exp()
        _, log_scale = made_shift_and_log_scale(step, v, context, fixed=True)
        log_q, z = log_q - log_scale.sum(-1), v
    return log_q + normal_log_density(z, loc.detach(), scale.detach())


# Zuko's steps run their masked networks only when a density is scored: the objective scores the guide's
# trace while its parameters are detached, or the steps' gradient would keep the term
# sum_k w~_k d log q(z_k | x) / d(weights) that DReG removes (the "family.steps" case caught it).
@pytest.mark.parametrize("part", ["head", "family.steps"])
def test_dreg_with_the_iaf_guide_is_the_hand_written_surrogate(part):
    """IWAE with DReG and the IAF guide, against the hand derivation on the same draws: z and log q by the
    steps' masked networks' raw outputs. The loss and the decoder's gradient are those of
    -(N/B) sum_i [logsumexp_k log w_ik - log K]; the gradient of each ``part`` of the encoder (reached through
    z only) is that of -(N/B) sum_ik stop(w~_ik^2) log w_ik with log q(z_ik | x_i) scored with the guide's
    parameters held fixed (Tucker et al. 2019, eq. 6), inverting each step by hand. A run refuses DReG with
    guide=iaf, for its cost (tests/runs/test_refusals.py); the modelling wing computes it."""
    k = 4
    vae = build(*IAF)
    x = torch.bernoulli(torch.full((3, *SHAPE), 0.3))
    pyro.set_rng_seed(4)
    ours = IWAE_ELBO(k, "dreg").differentiable_loss(*program(vae, NUM_DATA), x)
    ours_gradients = gradients(vae, ours)
    pyro.set_rng_seed(4)
    loc, scale, context = iaf_head_by_hand(vae, x)
    z, log_q = iaf_draw_by_hand(vae, loc, scale, context, torch.randn(k, *loc.shape))
    log_p = hand_elbo_terms(vae, x, z) + standard_normal_log_density(z)
    fixed_log_q = iaf_fixed_log_density_by_hand(vae, z, loc, scale, context)
    assert torch.allclose(fixed_log_q, log_q, atol=1e-4)  # the inversion finds the draw's own base point
    data_scale = NUM_DATA / len(x)
    bound = -data_scale * (torch.logsumexp(log_p - log_q, 0) - math.log(k)).sum()
    assert torch.allclose(ours, bound, rtol=1e-5)
    standard_gradients = gradients(vae, bound, retain_graph=True)  # z's graph serves the surrogate too
    assert_same_gradients(vae, ours_gradients, standard_gradients, {"decoder"})
    log_w = log_p - fixed_log_q
    surrogate = -data_scale * (torch.softmax(log_w.detach(), 0) ** 2 * log_w).sum()
    dreg_gradients = gradients(vae, surrogate)
    names = [name for name, _ in vae.named_parameters()]
    compared = [
        (name, mine, hand, standard)
        for name, mine, hand, standard in zip(names, ours_gradients, dreg_gradients, standard_gradients)
        if name.startswith(f"encoder.{part}.")
    ]
    assert compared and all(hand.abs().sum() > 0 for _, _, hand, _ in compared)  # every parameter learns through z
    # on these draws DReG is not the standard estimator, so the comparison below can tell them apart
    assert any(not torch.allclose(hand, standard, rtol=1e-4, atol=1e-5) for _, _, hand, standard in compared)
    for name, mine, hand, _ in compared:
        assert torch.allclose(mine, hand, rtol=1e-4, atol=1e-5), (name, (mine - hand).abs().max().item())


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
