"""Seconds until ``python run.py`` answers a command that does no work: ``--help``, ``--cfg job`` and a
refused setting (``latent_dim=-3``), against ``python -c "import torch"`` timed in the same run.

Each command runs in a fresh process (nothing cached in this one), ``--repeats`` times, the commands
interleaved so that a busy spell of the machine slows all of them alike. run.py loads torch only when
a run starts, so each of these should answer before the reference has imported torch (a ratio below
1); tests/runs/test_startup.py checks, untimed, that none of them imports it. Reports the median wall
seconds, the median CPU seconds of the process (user + system: on a busy machine, what it would take on
an idle core) and the ratio of each to the reference's. Prints a table and writes
benchmarks/results/startup.json.

    .venv/bin/python benchmarks/startup.py [--repeats 5]
"""

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Dict, List, Sequence, Tuple

from common import ROOT, add_results_argument, save_results, table

REFERENCE = 'python -c "import torch"'


def commands(run_dir: Path) -> Dict[str, Tuple[List[str], int]]:
    """Each command's name, its arguments after the interpreter and the exit status it must end with."""
    run_py = str(ROOT / "run.py")
    return {
        REFERENCE: (["-c", "import torch"], 0),
        "python run.py --help": ([run_py, "--help"], 0),
        "python run.py --cfg job": ([run_py, "--cfg", "job"], 0),
        # refused before any work; the run folder (which it must not leave behind) in a temporary folder
        "python run.py latent_dim=-3": ([run_py, "latent_dim=-3", f"hydra.run.dir={run_dir}"], 2),
    }


def timed(args: Sequence[str], status: int) -> Tuple[float, float]:
    """Wall and CPU seconds (user + system) of ``python ARGS`` in a fresh process, from the repository root."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    result = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != status:  # a crash is not a start-up time
        raise SystemExit(f"{' '.join(args)}: exit status {result.returncode}, not {status}\n{result.stderr}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per command")
    add_results_argument(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        timed_commands = commands(Path(tmp) / "outputs" / "run")
        walls: Dict[str, List[float]] = {name: [] for name in timed_commands}
        cpus: Dict[str, List[float]] = {name: [] for name in timed_commands}
        for _ in range(args.repeats):
            for name, (command, status) in timed_commands.items():
                wall, cpu = timed(command, status)
                walls[name].append(wall)
                cpus[name].append(cpu)
    wall_reference, cpu_reference = statistics.median(walls[REFERENCE]), statistics.median(cpus[REFERENCE])
    rows = [
        {
            "command": name,
            "wall_seconds": statistics.median(walls[name]),
            "vs import torch": statistics.median(walls[name]) / wall_reference,
            "cpu_seconds": statistics.median(cpus[name]),
            "cpu vs import torch": statistics.median(cpus[name]) / cpu_reference,
        }
        for name in walls
    ]
    print(table(rows, ["command", "wall_seconds", "vs import torch", "cpu_seconds", "cpu vs import torch"]))
    print(
        f"median of {args.repeats} fresh processes per command, interleaved; ratios against {REFERENCE}, measured "
        "in the same run; cpu: the process's user + system seconds"
    )
    print(f"wrote {save_results(args.results, 'startup', {'repeats': args.repeats, 'rows': rows})}")


if __name__ == "__main__":
    main()
