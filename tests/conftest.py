"""Shared fixtures: tiny configurations, tiny VAEs and a fresh Pyro state for every test (the
helpers the test modules share are in helpers.py)."""

import pyro
import pytest
import torch
from omegaconf import DictConfig

from pyro_vae.modelling.vae import VAE
from pyro_vae.runs.builders import build_vae

from .helpers import compose_tiny


@pytest.fixture
def tiny_cfg() -> DictConfig:
    return compose_tiny()


@pytest.fixture(scope="module")
def single_thread():
    """One torch thread for a module of tiny tensors, where a second intra-op thread only spins: on
    a shared 2-core machine it made such modules several times slower. Restored afterwards. A module
    asks for it with ``pytestmark = pytest.mark.usefixtures("single_thread")``."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def fresh_pyro_state():
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    yield
    pyro.clear_param_store()


@pytest.fixture
def small_vae(tiny_cfg) -> VAE:
    """The tiny config's VAE on 4x4 binary images, freshly initialised."""
    return build_vae(tiny_cfg, (1, 4, 4), 10)


@pytest.fixture
def binary_batch() -> torch.Tensor:
    return torch.bernoulli(torch.full((6, 1, 4, 4), 0.3))
