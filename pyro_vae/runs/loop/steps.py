"""One SVI training step, the one place it is defined: estimate the loss on a minibatch,
differentiate it, update the parameters.

The default, ``svi_step=torch`` (:class:`TorchOptimizerStep`), is an optimisation of
``pyro.infer.SVI`` on ``Trace_ELBO``: it takes the objective's ``differentiable_loss``
(``DeviceTrace_ELBO``, the same estimate without a host read per site) and updates all parameters
with one torch optimizer. ``svi_step=pyro`` (:class:`PyroSVIStep`) is Pyro's textbook loop itself,
``pyro.infer.SVI`` with ``pyro.optim`` and, for ``objective=trace``, Pyro's own ``Trace_ELBO``.
Both minimise the same loss (``tests/modelling/test_svi.py`` checks that they reach the same parameters),
so the first is only a faster route to the second.
"""

import contextlib
from typing import Any, Callable, Dict, Optional, Protocol

import torch
from omegaconf import DictConfig
from pyro.infer import SVI, Trace_ELBO
from pyro.infer.elbo import ELBO

from ...modelling.objectives import KLWeighting
from ...modelling.vae import VAE
from ..configuration.builders import make_objective
from .optimizers import make_optimizer, make_pyro_optimizer


class TrainingStep(Protocol):
    """What the training loop needs of a step: the update, the torch optimizer a schedule drives
    (None for Pyro's per-parameter optimizers), the current rate, and state to checkpoint."""

    optimizer: Optional[torch.optim.Optimizer]

    def __call__(self, x: torch.Tensor, y: Optional[torch.Tensor], kl_weight: float = 1.0) -> torch.Tensor: ...

    @property
    def lr(self) -> float: ...

    def state_dict(self) -> Dict[str, Any]: ...

    def load_state_dict(self, state: Dict[str, Any]) -> None: ...


class ElboLoss(torch.nn.Module):
    """The objective's loss on a minibatch as a module's forward."""

    def __init__(self, vae: VAE, objective: ELBO) -> None:
        super().__init__()
        self.vae, self.objective = vae, objective
        # Bound once: JitTrace_ELBO caches its compiled loss by id(model) and id(guide), and
        # ``vae.model`` is a new bound-method object at every access (a retrace every step).
        self.model, self.guide = vae.model, vae.guide

    def forward(self, x: torch.Tensor, y: Optional[torch.Tensor], kl_weight: float = 1.0) -> torch.Tensor:
        with kl_weighting(kl_weight):
            return self.objective.differentiable_loss(
                self.model, self.guide, *model_arguments(x, y, self.vae.conditional)
            )


class TorchOptimizerStep:
    """``step(x, y, kl_weight)``: one update by ``objective`` and a torch ``optimizer``; returns the loss
    (minus the bound of the whole training set) as a device tensor. ``backward``: the training loop's
    (Lightning's ``manual_backward``, which a data-parallel run needs), or the tensor's own."""

    def __init__(
        self, vae: VAE, objective: ELBO, optimizer: torch.optim.Optimizer, backward: Callable = torch.Tensor.backward
    ) -> None:
        self.optimizer, self.backward = optimizer, backward
        self.loss = ElboLoss(vae, objective)

    def __call__(self, x: torch.Tensor, y: Optional[torch.Tensor], kl_weight: float = 1.0) -> torch.Tensor:
        self.optimizer.zero_grad(set_to_none=True)
        loss = self.loss(x, y, kl_weight)
        self.backward(loss)
        self.optimizer.step()
        return loss.detach()

    @property
    def lr(self) -> float:
        return self.optimizer.param_groups[0]["lr"]

    def state_dict(self) -> Dict[str, Any]:
        return self.optimizer.state_dict()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.optimizer.load_state_dict(state)


class PyroSVIStep:
    """``step(x, y, kl_weight)`` by ``pyro.infer.SVI(model, guide, pyro.optim, Trace_ELBO)``."""

    def __init__(self, vae: VAE, objective: Trace_ELBO, optimizer_cfg: DictConfig, lr: float) -> None:
        self.optim = make_pyro_optimizer(optimizer_cfg, lr, vae.num_data)
        self.svi = SVI(vae.model, vae.guide, self.optim, loss=objective)
        self.lr, self.conditional = lr, vae.conditional
        # Pyro keeps one torch optimizer per parameter, so there is none for a schedule to drive
        # (settings.validate refuses svi_step=pyro with a schedule other than constant).
        self.optimizer = None

    def __call__(self, x: torch.Tensor, y: Optional[torch.Tensor], kl_weight: float = 1.0) -> torch.Tensor:
        with kl_weighting(kl_weight):
            return torch.tensor(self.svi.step(*model_arguments(x, y, self.conditional)))

    def state_dict(self) -> Dict[str, Any]:
        return self.optim.get_state()

    def load_state_dict(self, state: Dict[str, Any]) -> None:
        self.optim.set_state(state)


def model_arguments(x: torch.Tensor, y: Optional[torch.Tensor], conditional: bool) -> tuple:
    """What the model and guide take: the images, and their labels for a conditional VAE."""
    return (x, y) if conditional else (x,)


def kl_weighting(kl_weight: float):
    """beta-weighting of the latent sites (:class:`KLWeighting`); no handler at all for the ELBO itself."""
    return KLWeighting(kl_weight) if kl_weight != 1 else contextlib.nullcontext()


def make_step(vae: VAE, cfg: DictConfig) -> TrainingStep:
    """The training step of ``cfg`` (``svi_step``, ``objective``, ``optimizer``, ``lr``) for ``vae``, whose
    ``num_data`` is the size of its training set, outside a training loop (benchmarks, tests)."""
    if cfg.svi_step == "pyro":
        return PyroSVIStep(vae, make_objective(cfg.objective, textbook=True), cfg.optimizer, cfg.lr)
    optimizer = make_optimizer(cfg.optimizer, cfg.lr, vae.parameters(), vae.num_data)
    return TorchOptimizerStep(vae, make_objective(cfg.objective), optimizer)
