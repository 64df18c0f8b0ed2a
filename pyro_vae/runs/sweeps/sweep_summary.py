"""The summary of a Hydra multirun: one row per job with its overrides, status and final metrics.

It is rebuilt from the sweep directory alone (each job's ``.hydra/overrides.yaml``,
``metrics.json`` and ``job_status.json``), so it works the same whichever launcher ran the
jobs, and a failed job is a row with its error rather than a missing line.
"""

import csv
import io
import json
import math
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional, Sequence

import yaml

from ...atomic import write_text

STATUS_FILE = "job_status.json"
# The Markdown table keeps to the headline figures; the CSV holds every metric.
MARKDOWN_METRICS = (
    "test_elbo",
    "test_log_likelihood",
    "test_bits_per_dim",
    "val_elbo_best",
    "epochs_completed",
    "train_seconds",
)


@dataclass
class JobRecord:
    job: str
    status: str
    overrides: Dict[str, str] = field(default_factory=dict)
    metrics: Dict[str, object] = field(default_factory=dict)
    error: str = ""

    def row(self) -> Dict[str, object]:
        return {"job": self.job, "status": self.status, **self.overrides, **self.metrics, "error": self.error}

    def value(self, metric: str) -> Optional[float]:
        value = self.metrics.get(metric)
        return float(value) if isinstance(value, (int, float)) and math.isfinite(value) else None


def running_status() -> Dict[str, object]:
    """The status of a job that has started in this process."""
    return {"status": "running", "pid": os.getpid(), "host": socket.gethostname()}


def _status(status_file: Path) -> Dict[str, object]:
    """The job's recorded status; 'running' in a process of this machine that no longer exists
    means the job was killed before it could record its end."""
    if not status_file.is_file():
        return {"status": "running"}
    status = json.loads(status_file.read_text())
    if status["status"] == "running" and status.get("host") == socket.gethostname() and not _alive(status["pid"]):
        return {"status": "failed", "error": f"its process {status['pid']} ended without finishing (killed)"}
    return status


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # it exists, as another user's process
        pass
    return True


def _job_order(path: Path):
    return (0, int(path.name), "") if path.name.isdigit() else (1, 0, path.name)


def collect_jobs(sweep_dir: Path) -> List[JobRecord]:
    """Every job directory of the sweep, in job order; a job with no status file yet is 'running'."""
    jobs = []
    for job_dir in sorted((p.parents[1] for p in sweep_dir.glob("*/.hydra/overrides.yaml")), key=_job_order):
        status_file, metrics_file = job_dir / STATUS_FILE, job_dir / "metrics.json"
        status = _status(status_file)
        overrides = {}
        for override in yaml.safe_load((job_dir / ".hydra" / "overrides.yaml").read_text()) or []:
            key, _, value = override.partition("=")
            overrides[key.lstrip("+~")] = value
        metrics = json.loads(metrics_file.read_text()) if metrics_file.is_file() else {}
        jobs.append(JobRecord(job_dir.name, status["status"], overrides, metrics, status.get("error", "")))
    return jobs


def swept_keys(jobs: Sequence[JobRecord]) -> List[str]:
    """The overrides whose value differs between jobs, in command-line order."""
    keys = list(dict.fromkeys(key for job in jobs for key in job.overrides))
    return [key for key in keys if len({job.overrides.get(key) for job in jobs}) > 1]


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def write_summary(sweep_dir: Path, metric: str) -> List[JobRecord]:
    """Write ``sweep_summary.csv``, ``.md`` and ``.png`` into ``sweep_dir``; return the jobs."""
    jobs = collect_jobs(sweep_dir)
    rows = [job.row() for job in jobs]
    columns = list(dict.fromkeys(key for row in rows for key in row if key != "error")) + ["error"]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="")
    writer.writeheader()
    writer.writerows(rows)
    write_text(sweep_dir / "sweep_summary.csv", buffer.getvalue())
    shown = ["job", "status", *dict.fromkeys(k for job in jobs for k in job.overrides)]
    shown += [m for m in MARKDOWN_METRICS if any(m in job.metrics for job in jobs)] + ["error"]
    lines = ["| " + " | ".join(shown) + " |", "|" + " --- |" * len(shown)]
    lines += ["| " + " | ".join(_format(row.get(c, "")) for c in shown) + " |" for row in rows]
    write_text(sweep_dir / "sweep_summary.md", "\n".join(lines) + "\n")
    plot_summary(jobs, metric, sweep_dir / "sweep_summary.png")
    return jobs


def prepare_plotting() -> None:
    """Import what :func:`plot_summary` draws with, once a sweep starts: a summary written as the
    process exits (``atexit``) could not import it then (matplotlib and torch register exit handlers)."""
    import matplotlib.figure  # noqa: F401

    from ..tasks import figures  # noqa: F401


def plot_summary(jobs: Sequence[JobRecord], metric: str, path: Path) -> None:
    """``metric`` against each swept setting: a panel per setting, or for two settings, lines of the
    second over the first."""
    from matplotlib.figure import Figure  # here, not above: the sweep's callbacks load before any work

    from ..tasks.figures import save

    done = [job for job in jobs if job.value(metric) is not None]
    keys = swept_keys(jobs)
    fig = Figure(figsize=(5.5 * max(1, len(keys) if len(keys) != 2 else 1), 4))
    if len(keys) == 2:
        ax = fig.subplots()
        x_key, line_key = keys
        for line_value in dict.fromkeys(job.overrides.get(line_key) for job in done):
            members = [job for job in done if job.overrides.get(line_key) == line_value]
            _plot_against(ax, members, x_key, metric, label=f"{line_key}={line_value}")
        ax.legend(fontsize=8)
        axes = [ax]
    else:
        axes = fig.subplots(1, max(1, len(keys)), squeeze=False)[0]
        for ax, key in zip(axes, keys or [None]):
            _plot_against(ax, done, key, metric)
    for ax in axes:
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    missing = len(jobs) - len(done)
    fig.suptitle(f"{len(done)} of {len(jobs)} jobs" + (f"; {missing} without {metric}" if missing else ""), fontsize=9)
    save(fig, path)


def _plot_against(ax, jobs: Sequence[JobRecord], key: Optional[str], metric: str, label: Optional[str] = None) -> None:
    """``metric`` over the values of override ``key`` (numeric axis where they all parse, else categories)."""
    values = [job.overrides.get(key, "") if key else job.job for job in jobs]
    try:
        xs = [float(v) for v in values]
    except ValueError:
        xs = values
    order = sorted(range(len(jobs)), key=lambda i: xs[i])
    ax.plot([xs[i] for i in order], [jobs[i].value(metric) for i in order], marker="o", label=label)
    ax.set_xlabel(key or "job")
