"""Pyro's SVI as the yardstick: the project's fast step must *be* SVI on Trace_ELBO.

N steps of the project's step and N steps of ``pyro.infer.SVI(model, guide, pyro.optim.Adam, Trace_ELBO)``
from the same initial weights and seed, on the same minibatches, must reach the same parameters.

pytestmark = pytest.mark.usefixtures("single_thread")
Both sides use torch's per-tensor Adam arithmetic (``optimizer.fused=false``; Pyro's Adam is one
torch Adam per parameter), so the only differences are float32 summation orders.
"""

import copy

import pyro
import pyro.optim
import pytest
import torch
from pyro.infer import SVI, Trace_ELBO

from pyro_vae.runs.configuration.builders import build_vae
from pyro_vae.runs.loop.steps import PyroSVIStep, TorchOptimizerStep, make_step

from ..helpers import compose_tiny, program

NUM_DATA, BATCH, STEPS = 512, 64, 20


def minibatches():
    generator = torch.Generator().manual_seed(3)
    return [torch.bernoulli(torch.full((BATCH, 1, 4, 4), 0.3), generator=generator) for _ in range(STEPS)]


def textbook_svi(vae, cfg):
    adam = pyro.optim.Adam({"lr": cfg.lr, "betas": tuple(cfg.optimizer.betas), "eps": cfg.optimizer.eps})
    svi = SVI(*program(vae, NUM_DATA), adam, loss=Trace_ELBO())
    return svi.step


FAMILIES = [
    [],
    ["guide=full"],
    ["guide=iaf", "guide.context_dim=3", "guide.widths=[8]"],
    ["prior=vampprior", "prior.num_pseudo_inputs=4"],
    ["prior=flow", "prior.widths=[8]"],
    ["model=hvae", "model.top_latent_dim=2", "model.top_widths=[8]"],
]


@pytest.mark.parametrize("family", FAMILIES, ids=str)
@pytest.mark.parametrize("svi_step, step_type", [("torch", TorchOptimizerStep), ("pyro", PyroSVIStep)])
def test_the_training_step_reaches_the_parameters_of_pyro_svi(svi_step, step_type, family):
    cfg = compose_tiny(f"svi_step={svi_step}", *family, "optimizer.fused=false", "lr=1e-2")
    ours = build_vae(cfg, (1, 4, 4), 10)
    reference = copy.deepcopy(ours)
    start = copy.deepcopy(ours.state_dict())
    batches = minibatches()

    pyro.clear_param_store()
    pyro.set_rng_seed(11)
    ours.num_data = NUM_DATA
    step = make_step(ours, cfg)
    assert isinstance(step, step_type)
    our_losses = [step(x, None).item() for x in batches]

    pyro.clear_param_store()
    pyro.set_rng_seed(11)
    svi_step = textbook_svi(reference, cfg)
    svi_losses = [svi_step(x) for x in batches]

    assert our_losses == pytest.approx(svi_losses, rel=1e-5)
    learned = dict(ours.named_parameters())  # not the buffers (a flow's masks and orders stay as they are)
    for (name, a), b, initial in zip(ours.state_dict().items(), reference.state_dict().values(), start.values()):
        assert name not in learned or not torch.equal(a, initial), name  # training moved every parameter
        # 20 steps at lr 1e-2 move weights by up to 0.2; float32 reorderings stay below 1e-5 of that.
        assert torch.allclose(a, b, rtol=1e-5, atol=2e-6), (name, (a - b).abs().max().item())
