"""Shared pieces of the benchmark scripts: composing configs, timing, machine description, results."""

import argparse
import platform
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Dict, List, Sequence

import pyro
import torch
from omegaconf import DictConfig

from pyro_vae.atomic import write_json
from pyro_vae.runs.configuration.config import compose_config

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"

# Every step measured, reference or project, flushes subnormal floats to zero as training does
# on the CPU (pyro_vae/training.py says why); a reference without it would slow down as it runs.
torch.set_flush_denormal(True)


def config(overrides: Sequence[str] = ()) -> DictConfig:
    """The project's config composed exactly as run.py would, with ``overrides``."""
    return compose_config(["device=cpu", *overrides])


def cpu_model() -> str:
    """The CPU's model name and its widest vector extensions (epochs differ 4x between AVX2 and AVX-512)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return platform.processor() or platform.machine()
    model = next((line.split(":", 1)[1].strip() for line in info.splitlines() if line.startswith("model name")), "")
    flags = next((line.split(":", 1)[1].split() for line in info.splitlines() if line.startswith("flags")), [])
    vector = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_tile") if flag in flags]
    return f"{model} ({', '.join(vector) or 'no AVX2'})"


def machine() -> Dict[str, Any]:
    return {
        "cpu": cpu_model(),
        "torch_threads": torch.get_num_threads(),
        "cuda": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
        "torch": torch.__version__,
        "pyro": pyro.__version__,
        "python": platform.python_version(),
    }


def _sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def ms_per_call(
    factories: Dict[str, Callable[[], Callable[[Any], Any]]], inputs: List[Any], rounds: int = 5, warmup: int = 10
) -> Dict[str, float]:
    """Median over ``rounds`` of the mean milliseconds per ``step(batch)`` over ``inputs``, for each step.

    Each factory builds its step afresh (Pyro's param store is global, so two models must not
    be alive at once); the rounds interleave the steps, so that a busy spell of the machine
    slows all of them alike and the ratios between them stay fair.
    """
    times: Dict[str, List[float]] = {name: [] for name in factories}
    for _ in range(rounds):
        for name, factory in factories.items():
            step = factory()
            for batch in inputs[:warmup]:
                step(batch)
            _sync()
            start = time.perf_counter()
            for batch in inputs:
                step(batch)
            _sync()
            times[name].append(1000 * (time.perf_counter() - start) / len(inputs))
    return {name: statistics.median(values) for name, values in times.items()}


def table(rows: List[Dict[str, Any]], columns: Sequence[str]) -> str:
    """A plain-text table of ``rows`` (floats to 2 decimals)."""
    cells = [[f"{row[c]:.2f}" if isinstance(row[c], float) else str(row[c]) for c in columns] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.rjust(w) for v, w in zip(r, widths)) for r in cells]
    return "\n".join(lines)


def add_results_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--results", type=Path, default=RESULTS, help="folder for the JSON of figures")


def save_results(folder: Path, name: str, figures: Dict[str, Any]) -> Path:
    path = folder / f"{name}.json"
    write_json(path, {"machine": machine(), **figures})
    return path


def train_epoch(step: Callable, sampler, epoch: int, seed: int) -> torch.Tensor:
    """One epoch of the training step over ``sampler``'s batches, in a bare loop: the data path and the step
    alone (the Trainer's own cost per step is benchmarks/loop_overhead.py's)."""
    total = torch.zeros(())
    for x, y in sampler.epoch(epoch, seed):
        total = total + step(x, y)
    return total
