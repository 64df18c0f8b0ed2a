"""Shared fixtures: tiny configurations, tiny VAEs and a fresh Pyro state for every test (the
helpers the test modules share are in helpers.py)."""

import os

import pyro
import pytest
import torch
from omegaconf import DictConfig

from pyro_vae.modelling.vae import VAE
from pyro_vae.runs.configuration import cpu_features
from pyro_vae.runs.configuration.builders import build_vae

from .helpers import compose_tiny

if os.environ.get("PYTEST_XDIST_WORKER"):
    # pytest-xdist runs one worker per core: a worker's second intra-op thread would only contend with the
    # other workers (torch's threads collapse on a core another process keeps busy).
    torch.set_num_threads(1)


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


# /proc/cpuinfo of an x86 CPU with native bfloat16 dot products (AVX512_BF16: AMD Zen 4, Intel Cooper Lake on)
X86_BF16_CPUINFO = (
    "processor\t: 0\nvendor_id\t: AuthenticAMD\nmodel name\t: AMD EPYC 9B14 (stand-in)\n"
    "flags\t\t: fpu sse sse2 avx avx2 fma avx512f avx512bw avx512_bf16 avx512_vnni\n\n"
)


@pytest.fixture
def cpu_with_bf16(tmp_path_factory, monkeypatch):
    """A stand-in /proc/cpuinfo whose flags include avx512_bf16, for a test that trains with
    trainer.precision=bf16-mixed on the CPU: a CPU without native bfloat16 dot products refuses it
    (pyro_vae/runs/configuration/cpu_features.py), and the machines that run the suite may lack them."""
    cpuinfo = tmp_path_factory.mktemp("cpu") / "cpuinfo"
    cpuinfo.write_text(X86_BF16_CPUINFO)
    monkeypatch.setattr(cpu_features, "CPUINFO", str(cpuinfo))
