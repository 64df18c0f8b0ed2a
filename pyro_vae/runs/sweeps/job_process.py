"""One sweep job in a process of its own, so that a job killed by a signal fails alone.

The joblib launcher runs jobs inside a pool of loky workers; when one worker dies (``kill -9``,
the OOM killer) loky shuts the whole pool down, and every other job of the sweep dies with it.
Here the worker only waits for a child ``python -m pyro_vae.runs.sweeps.job_process`` that does the job's
work: a killed child is one failed job, recorded as such in the sweep summary, and the worker
goes on to the next job.
"""

import logging
import pickle
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Callable, Optional

from omegaconf import DictConfig

from ...errors import PyroVAEError

Task = Callable[[DictConfig, Path], Optional[float]]

# Hydra's own job-log format, so that run.log reads the same whichever process wrote it.
LOG_FORMAT = "[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"


class JobKilled(PyroVAEError):
    """The job's process ended by a signal before finishing."""


def runs_in_a_worker_pool(launcher: DictConfig) -> bool:
    """Whether Hydra's ``launcher`` runs the jobs in a shared pool of worker processes (joblib)."""
    return str(launcher.get("_target_", "")).endswith("JoblibLauncher")


def run_in_child_process(task: Task, cfg: DictConfig, output_dir: Path) -> Optional[float]:
    """``task(cfg, output_dir)`` in a child process with this process's torch thread count: its
    return value, or its exception raised here, or :class:`JobKilled` if a signal ended it."""
    import torch  # here, not above: run.py and the callbacks import this module before any work

    with tempfile.TemporaryDirectory(prefix="pyro_vae_job_") as exchange:
        job_file, outcome_file = Path(exchange) / "job.pkl", Path(exchange) / "outcome.pkl"
        job_file.write_bytes(pickle.dumps((task, cfg, output_dir, torch.get_num_threads())))
        child = subprocess.run([sys.executable, "-m", __name__, str(job_file), str(outcome_file)])
        if child.returncode < 0:
            raise JobKilled(
                f"the job's process was killed by {signal.Signals(-child.returncode).name}; "
                f"its last finished epoch is in {output_dir / 'last.pt'} (resume=true continues it)"
            )
        if not outcome_file.is_file():
            raise JobKilled(f"the job's process ended with exit code {child.returncode} and no result")
        kind, value = pickle.loads(outcome_file.read_bytes())
    if kind == "error":
        raise value
    return value


def _run_job(job_file: Path, outcome_file: Path) -> None:
    """The child's side: run the pickled job, log to its run.log, and pickle what came of it."""
    import torch

    task, cfg, output_dir, threads = pickle.loads(job_file.read_bytes())
    torch.set_num_threads(threads)
    handlers = [logging.FileHandler(output_dir / "run.log"), logging.StreamHandler(sys.stdout)]
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT, handlers=handlers)
    try:
        outcome = ("value", task(cfg, output_dir))
    except Exception as error:  # handed to the parent, which raises it as the job's failure
        outcome = ("error", error)
    try:
        payload = pickle.dumps(outcome)
    except Exception:  # an exception that does not pickle: its type and message
        payload = pickle.dumps(("error", PyroVAEError(f"{type(outcome[1]).__name__}: {outcome[1]}")))
    outcome_file.write_bytes(payload)


if __name__ == "__main__":
    _run_job(Path(sys.argv[1]), Path(sys.argv[2]))
