"""Shared fixtures: Hydra's compose API over conf/, tiny configurations and tiny VAEs."""

import subprocess
import sys
from pathlib import Path
from typing import Optional

import pyro
import pytest
import torch
from omegaconf import DictConfig

from pyro_vae.config import CONF, compose_config  # noqa: F401 (tests import CONF from here)
from pyro_vae.vae import VAE, build_vae

ROOT = Path(__file__).resolve().parents[1]

# A configuration small enough for CI: a few hundred MNIST images, one narrow hidden layer.
TINY = [
    "data.train_size=512",
    "data.val_size=256",
    "data.test_size=128",
    "net.hidden_dims=[64]",
    "latent_dim=4",
    "batch_size=64",
    "epochs=2",
    "eval.iwae_k=8",
    "device=cpu",
]


@pytest.fixture
def tiny_cfg() -> DictConfig:
    return compose_config(TINY)


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


def run_py(*args: str, returncode: Optional[int] = 0, env=None, timeout: int = 300) -> subprocess.CompletedProcess:
    """``python run.py ARGS`` as a user runs it, from the repository root; asserts its exit
    status unless ``returncode`` is None."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "run.py"), *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if returncode is not None:
        assert result.returncode == returncode, result.stdout + result.stderr
    return result


def one_line(result: subprocess.CompletedProcess) -> str:
    """The single line a refused command prints (stdout and stderr together)."""
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    return lines[0]


def snapshot(folder: Path) -> dict:
    """Every file under ``folder`` with its bytes and modification time: equal snapshots mean
    nothing there was written, rewritten or appended to."""
    return {p.relative_to(folder): (p.read_bytes(), p.stat().st_mtime_ns) for p in folder.rglob("*") if p.is_file()}
