"""Hydra callbacks registered in ``conf/config.yaml``: output folders checked before Hydra writes
to them (and those a refused command made, removed), sweep summaries, and CPU sharing between
parallel jobs.

Hydra imports this module while ``python run.py`` reads its command line, before any work: it
imports nothing heavy (torch loads in the job that needs it), so that a refusal answers at once."""

import atexit
import logging
import os
import sys
from pathlib import Path
from typing import Any, Dict, List, Tuple

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig

from ...atomic import write_json
from ..configuration.refusals import refusal_line
from ..directory.run_directory import RunDirectoryInUse
from .job_process import runs_in_a_worker_pool
from .sweep_summary import STATUS_FILE, JobRecord, prepare_plotting, running_status, write_summary

log = logging.getLogger(__name__)

# This process's multiruns whose summary is not written yet (sweep dir -> metric): Hydra calls no
# on_multirun_end when its sweeper re-raises a failed job's error or the process exits early.
_open_sweeps: Dict[Path, str] = {}


def write_open_summaries() -> List[Tuple[Path, List[JobRecord]]]:
    """Write the summary of every open multirun of this process; each sweep directory with its jobs."""
    written = [(d, write_summary(d, metric)) for d, metric in _open_sweeps.items() if d.is_dir()]
    _open_sweeps.clear()
    return written


atexit.register(write_open_summaries)


def failed_sweep_message(error: Exception) -> str:
    """The line run.py ends a multirun with when Hydra's sweeper re-raises a failed job's ``error``:
    how many jobs failed and where the summary lists each one's error."""
    lines = [
        f"{sum(job.status != 'completed' for job in jobs)} of {len(jobs)} jobs failed (the first: {error}); "
        f"each job's status and error: {sweep_dir / 'sweep_summary.md'}"
        for sweep_dir, jobs in write_open_summaries()
    ]
    return "; ".join(lines) or str(error)


def _is_multirun(config: DictConfig) -> bool:
    return config.hydra.mode == RunMode.MULTIRUN


class SweepSummary(Callback):
    """Each job records its own status in its own directory; the launching process alone writes
    the sweep summary, at the end, so no two jobs ever write one file. It writes it as it exits
    too, for a launcher or sweeper that stops the multirun on a failed or killed job (Hydra then
    never calls ``on_multirun_end``)."""

    def __init__(self, metric: str = "test_log_likelihood") -> None:
        self.metric = metric

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        _open_sweeps[Path(config.hydra.sweep.dir)] = self.metric
        prepare_plotting()

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        """Marks the job running, with the process that runs it: a job whose process has died
        without a status is then listed as failed. A directory that holds an earlier run, which
        this job will refuse to touch, keeps the status it has."""
        output_dir = Path(config.hydra.runtime.output_dir)
        if not _is_multirun(config) or ((output_dir / "last.pt").exists() and not config.get("resume")):
            return
        write_json(output_dir / STATUS_FILE, running_status())

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs: Any) -> None:
        if not _is_multirun(config):
            return
        status = {"status": "completed" if job_return.status == JobStatus.COMPLETED else "failed"}
        if job_return.status != JobStatus.COMPLETED:
            # The job's exception; ``return_value`` would raise it and print Hydra's line about it once more.
            error = job_return._return_value
            if isinstance(error, RunDirectoryInUse):
                return  # the directory holds an earlier run, which this job must leave as it was
            status["error"] = f"{type(error).__name__}: {error}"
        write_json(Path(config.hydra.runtime.output_dir) / STATUS_FILE, status)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        sweep_dir = Path(config.hydra.sweep.dir)
        _open_sweeps.pop(sweep_dir, None)
        jobs = write_summary(sweep_dir, self.metric)
        failed = sum(job.status != "completed" for job in jobs)
        log.info("sweep summary of %d jobs (%d not completed): %s", len(jobs), failed, sweep_dir / "sweep_summary.md")


class ShareCores(Callback):
    """Gives each of several jobs running at once on one machine an equal share of its cores.

    Without it every parallel job starts one torch thread per core, and N jobs oversubscribe the
    machine N times over. Applies to the joblib launcher and to submitit's local executor.
    """

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        if not _is_multirun(config):
            return
        launcher = config.hydra.launcher
        target = str(launcher.get("_target_", ""))
        cores = os.cpu_count() or 1
        if runs_in_a_worker_pool(launcher):
            parallel = launcher.n_jobs if launcher.n_jobs > 0 else cores
            threads = max(1, cores // parallel)
        elif target.endswith("LocalLauncher") and launcher.get("cpus_per_task"):
            threads = launcher.cpus_per_task
        else:
            return
        import torch  # here, not above: a job that shares the cores loads it anyway

        torch.set_num_threads(threads)
        log.info("%s: %d torch thread(s) for this job", target.rsplit(".", 1)[-1], threads)


# The folders that this command's run folder (hydra.run.dir) lacked before the command, the run folder
# first and then its missing parents (outputs/DATE/TIME, outputs/DATE): made by this command, so a refused
# command removes those still empty (:func:`remove_folders_made_for`).
_made_for_run: List[Path] = []


class CheckOutputFolder(Callback):
    """Refuses, in one line and before Hydra creates it, a run or sweep folder that cannot be
    created or written (Hydra itself would stop with a traceback from ``mkdir``), and notes which
    folders of the run's path the command is about to make."""

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        _made_for_run[:] = _require_writable_folder("hydra.run.dir", config.hydra.run.dir)

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        # A sweep keeps its folders: each refused job is recorded there, for the sweep summary to list it.
        _require_writable_folder("hydra.sweep.dir", config.hydra.sweep.dir)


def remove_folders_made_for(run_dir: Path) -> None:
    """Remove the folders that this command made for ``run_dir`` (Hydra's ``runtime.output_dir``) and
    that are still empty, deepest first, each with ``os.rmdir`` (which removes only an empty one): a
    refused command leaves nothing behind. A folder that existed before the command is never touched,
    and the first folder found not empty (something else was written there meanwhile) ends it."""
    made, _made_for_run[:] = list(_made_for_run), []
    if not made or made[0] != Path(os.path.abspath(run_dir)):
        return  # another command's record (called in-process), or nothing made
    _remove_empty(made)


def _remove_empty(folders: List[Path]) -> None:
    for folder in folders:
        if not os.path.lexists(folder):
            continue  # never made (the command stopped before it), or removed meanwhile
        try:
            os.rmdir(folder)
        except OSError:
            return  # not empty: something was written there meanwhile


def _missing_folders(folder: str) -> List[Path]:
    """``folder`` and its parents that do not exist yet, ``folder`` first."""
    path, missing = Path(os.path.abspath(folder)), []
    while not os.path.lexists(path) and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _require_writable_folder(key: str, folder: str) -> List[Path]:
    """Make ``folder`` (as Hydra is about to) or refuse it; the folders this made, ``folder`` first."""
    missing = _missing_folders(folder)
    path = Path(folder)
    try:
        path.mkdir(parents=True, exist_ok=True)
        writable = os.access(path, os.W_OK | os.X_OK)
        reason = "not writable"
    except OSError as exc:
        writable, reason = False, exc.strerror or type(exc).__name__
    if not writable:
        _remove_empty(missing)  # those this made before the one it could not
        # Hydra has not set up the job's logging yet: the line is printed as run.py prints every refusal.
        message = f"{key}={folder}: cannot be created or written ({reason}); choose a folder you can write to"
        print(refusal_line(message), file=sys.stderr)
        sys.exit(2)
    return missing
