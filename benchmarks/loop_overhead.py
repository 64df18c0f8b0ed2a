"""Seconds per epoch: the training loop in Lightning's Trainer against the hand-written loop it replaced.

New: ``runs/loop/vae_training.py``'s ``fit`` (a LightningModule in Lightning's Trainer); old: the epoch loop
of ``runs/training.py`` (``fit`` and ``run_epoch``) that it replaced. Also Lightning's own cost per step.

The old loop runs from another tree: a git worktree of the commit before the move, made with

    git worktree add /tmp/old 72ea59b        # or HEAD~N; remove with: git worktree remove /tmp/old

and named with ``--old-tree /tmp/old`` (or ``--old-rev 72ea59b``, which extracts ``git archive`` of that
commit into a temporary folder instead). The new loop runs from this checkout (``--new-tree``/``--new-rev``
pick another). Each round starts, for each configuration, a fresh ``python run.py`` process per tree, the
two in alternating order, each with its tree's ``pyro_vae`` first on the path (checked in the process:
``pyro_vae.__file__`` and the module of the ``fit`` that ran), one torch thread (``threads=1``,
``torch.set_num_threads(1)``, OMP_NUM_THREADS=1) and the same MNIST subset. The figure is each loop's
own ``epoch_seconds`` in history.csv (the epoch's training, validation left out), over epochs 2 to
``--epochs`` (the first warms up), the median over the rounds; ``fit`` is the wall of the whole
``fit`` call (the untrained validation, every epoch with its validation and checkpoints). Configurations:
``default``, batch 128 with the default network, and ``burda``, batch 20 with Burda et al.'s
(``experiment=burda_vae``: two tanh layers of 200, latent 50, Adam's eps 1e-4; with ``schedule=constant``,
a constant learning rate as in ``default``). Both take ``--train-size`` images (10,000 by default), 1,000
for validation, 100 test images at K=2.

``ratio`` is new / old; ``overhead_us_per_step`` is (new - old) / steps per epoch. Last, Lightning's cost
per step on its own: a LightningModule with manual optimization whose ``training_step`` does nothing
(and one that only calls ``manual_backward`` on a one-weight loss), ``--empty-steps`` batches an epoch, in
a Trainer set as ``runs/loop/trainer.py`` sets it (no logger, bar, sanity or validation batches), against a
bare Python loop over the same batches calling the same function. Prints a table and the load average,
and writes benchmarks/results/loop_overhead.json. Run it on an otherwise idle machine.

    .venv/bin/python benchmarks/loop_overhead.py --old-tree /tmp/old [--rounds 3] [--epochs 3]
        [--train-size 10000] [--configurations default burda] [--empty-steps 5000]
"""

import argparse
import csv
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Dict, Iterator, List, Sequence

import lightning.pytorch as pl
import torch
from common import ROOT, add_results_argument, cpu_model, save_results, table

# ``python run.py OVERRIDES`` in a child process, with the tree's pyro_vae (PYTHONPATH) and one thread;
# prints which pyro_vae and which fit ran, and the wall of that fit.
RUN_TIMER = r"""
import json, runpy, sys, time
from pathlib import Path
import torch
torch.set_num_threads(1)
tree = Path(sys.argv[1]).resolve()
import pyro_vae
if Path(pyro_vae.__file__).resolve().parent != tree / "pyro_vae":
    raise SystemExit(f"pyro_vae came from {pyro_vae.__file__}, not {tree}")
try:
    from pyro_vae.runs.tasks import training_run  # the run wing in sub-wings
except ImportError:
    from pyro_vae.runs import training_run  # the old loop's tree
fit, timing = training_run.fit, {}
def timed_fit(*args, **kwargs):
    start = time.perf_counter()
    try:
        return fit(*args, **kwargs)
    finally:
        timing["fit_seconds"] = time.perf_counter() - start
training_run.fit = timed_fit
sys.argv = [str(tree / "run.py"), *sys.argv[2:]]
try:
    runpy.run_path(str(tree / "run.py"), run_name="__main__")
except SystemExit as exit:
    if exit.code:
        raise
print(json.dumps({"pyro_vae": pyro_vae.__file__, "fit": f"{fit.__module__}.{fit.__name__}",
                  "torch_threads": torch.get_num_threads(), **timing}))
"""

# name: what the table calls it, and its settings
CONFIGURATIONS = {
    "default": ("batch 128, default network", ["batch_size=128"]),
    "burda": ("batch 20, Burda's network", ["experiment=burda_vae", "schedule=constant", "batch_size=20"]),
}
# Everything a run does besides training kept small: a small validation and test split, K=2.
RUN = ["device=cpu", "threads=1", "seed=0", "dataset.val_size=1000", "dataset.test_size=100", "eval.iwae_k=2"]


def git_tree(rev: str, folder: Path) -> Path:
    """The files of commit ``rev`` of this repository, extracted into ``folder``."""
    folder.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(folder)], input=archive, check=True)
    return folder


def run_loop(tree: Path, overrides: Sequence[str], run_dir: Path) -> Dict[str, Any]:
    """One fresh ``run.py`` of ``tree``: its history rows, its fit's wall seconds and the fit that ran."""
    environment = {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    result = subprocess.run(
        [sys.executable, "-c", RUN_TIMER, str(tree), *overrides, f"hydra.run.dir={run_dir}"],
        cwd=tree,
        env=environment,
        capture_output=True,
        text=True,
        timeout=1800,
    )
    if result.returncode:
        raise SystemExit(f"run.py in {tree} {' '.join(overrides)}: exit status {result.returncode}\n{result.stderr}")
    report = json.loads(result.stdout.strip().splitlines()[-1])
    with open(run_dir / "history.csv", newline="") as history:
        report["history"] = [{key: float(value) for key, value in row.items()} for row in csv.DictReader(history)]
    return report


class Batches:
    """An epoch's batches as the run's EpochBatches gives them: an iterable with a length (a list would be
    read by Lightning as one loader per element)."""

    def __init__(self, batches: List[torch.Tensor]) -> None:
        self.batches = batches

    def __len__(self) -> int:
        return len(self.batches)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self.batches)


class EmptySteps(pl.LightningModule):
    """Manual optimization around a step that does nothing (or only ``manual_backward`` on a one-weight loss)."""

    def __init__(self, batches: List[torch.Tensor], backward: bool) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.batches, self.with_backward = batches, backward
        self.weight = torch.nn.Parameter(torch.ones(()))
        self.epoch_seconds: List[float] = []
        self.start = 0.0

    def train_dataloader(self) -> "Batches":
        return Batches(self.batches)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD([self.weight], lr=0.0)

    def on_train_epoch_start(self) -> None:
        self.start = time.perf_counter()

    def training_step(self, batch: torch.Tensor, index: int) -> None:
        if self.with_backward:
            self.manual_backward((self.weight * batch).sum())

    def on_train_epoch_end(self) -> None:
        self.epoch_seconds.append(time.perf_counter() - self.start)


def bare_epochs(batches: List[torch.Tensor], backward: bool, epochs: int) -> List[float]:
    """The same steps in a plain ``for`` loop: each epoch's seconds."""
    weight = torch.nn.Parameter(torch.ones(()))

    def training_step(batch: torch.Tensor, index: int) -> None:
        if backward:
            (weight * batch).sum().backward()

    seconds = []
    for _ in range(epochs):
        start = time.perf_counter()
        for index, batch in enumerate(batches):
            training_step(batch, index)
        seconds.append(time.perf_counter() - start)
    return seconds


def lightning_epochs(batches: List[torch.Tensor], backward: bool, epochs: int, root: Path) -> List[float]:
    """The steps in Lightning's Trainer, set as runs/loop/trainer.py sets it on the CPU: each epoch's seconds."""
    module = EmptySteps(batches, backward)
    trainer = pl.Trainer(
        accelerator="cpu",
        devices=1,
        max_epochs=epochs,
        logger=False,
        enable_checkpointing=False,  # the run's own checkpoint callback is not part of the loop's cost
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
        log_every_n_steps=1,
        default_root_dir=str(root),
    )
    trainer.fit(module)
    return module.epoch_seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    old = parser.add_mutually_exclusive_group(required=True)
    old.add_argument("--old-tree", type=Path, help="a checkout of the old loop (git worktree add /tmp/old 72ea59b)")
    old.add_argument("--old-rev", help="or a commit of this repository, extracted into a temporary folder")
    new = parser.add_mutually_exclusive_group()
    new.add_argument("--new-tree", type=Path, default=ROOT, help="the new loop's checkout (default: this one)")
    new.add_argument("--new-rev", help="or a commit of this repository, extracted into a temporary folder")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved runs of each loop per configuration")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per run; epochs 2 on are timed")
    parser.add_argument("--train-size", type=int, default=10000, help="training images (dataset.train_size)")
    parser.add_argument(
        "--configurations",
        nargs="+",
        default=list(CONFIGURATIONS),
        choices=list(CONFIGURATIONS),
        help="; ".join(f"{name}: {label}" for name, (label, _) in CONFIGURATIONS.items()),
    )
    parser.add_argument("--empty-steps", type=int, default=5000, help="batches per epoch of the empty-step loops")
    add_results_argument(parser)
    args = parser.parse_args()
    if args.epochs < 2:
        parser.error("--epochs must be at least 2: the first epoch warms up and is not timed")
    torch.set_num_threads(1)
    for name in ("lightning.pytorch", "lightning.fabric", "lightning_fabric"):
        logging.getLogger(name).setLevel(logging.WARNING)
    warnings.filterwarnings("ignore", module="lightning")
    print(f"{cpu_model()}; torch {torch.__version__}, lightning {pl.__version__}; one torch thread per process")
    load_before = os.getloadavg()
    print(f"load average before: {' '.join(f'{load:.2f}' for load in load_before)} ({os.cpu_count()} cores)")

    overrides = [*RUN, f"epochs={args.epochs}", f"dataset.train_size={args.train_size}"]
    runs: Dict[str, Dict[str, List[Dict[str, Any]]]] = {name: {"old": [], "new": []} for name in args.configurations}
    empty: Dict[str, Dict[str, List[float]]] = {variant: {"old": [], "new": []} for variant in ("empty", "backward")}
    empty_fit: Dict[str, Dict[str, List[float]]] = {variant: {"old": [], "new": []} for variant in empty}
    batches = [torch.rand(20) for _ in range(args.empty_steps)]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        trees = {
            "old": git_tree(args.old_rev, folder / "old") if args.old_rev else args.old_tree.resolve(),
            "new": git_tree(args.new_rev, folder / "new") if args.new_rev else args.new_tree.resolve(),
        }
        print(f"old loop: {trees['old']}\nnew loop: {trees['new']}")
        count = 0
        for round_index in range(args.rounds):
            for config_index, name in enumerate(args.configurations):
                order = ("old", "new") if (round_index + config_index) % 2 == 0 else ("new", "old")
                for which in order:
                    count += 1
                    report = run_loop(trees[which], [*overrides, *CONFIGURATIONS[name][1]], folder / f"run{count}")
                    runs[name][which].append(report)
                    counted = [row["epoch_seconds"] for row in report["history"][1:]]
                    print(
                        f"round {round_index + 1}, {CONFIGURATIONS[name][0]}, {which} ({report['fit']}): "
                        f"{' '.join(f'{s:.3f}' for s in counted)} s/epoch, fit {report['fit_seconds']:.2f} s, "
                        f"load {os.getloadavg()[0]:.2f}"
                    )
            for variant in empty:
                order = ("old", "new") if round_index % 2 == 0 else ("new", "old")
                for which in order:
                    start = time.perf_counter()
                    if which == "old":
                        seconds = bare_epochs(batches, variant == "backward", args.epochs)
                    else:
                        seconds = lightning_epochs(batches, variant == "backward", args.epochs, folder / "lightning")
                    empty_fit[variant][which].append(time.perf_counter() - start)
                    empty[variant][which].extend(seconds[1:])
    load_after = os.getloadavg()

    rows = []
    for name in args.configurations:
        old_runs, new_runs = runs[name]["old"], runs[name]["new"]
        batch_size = int(next(o.split("=")[1] for o in CONFIGURATIONS[name][1] if o.startswith("batch_size=")))
        steps = args.train_size // batch_size  # the sampler drops the last partial batch
        old_s = statistics.median(row["epoch_seconds"] for run in old_runs for row in run["history"][1:])
        new_s = statistics.median(row["epoch_seconds"] for run in new_runs for row in run["history"][1:])
        paired = [
            statistics.median(row["epoch_seconds"] for row in new["history"][1:])
            / statistics.median(row["epoch_seconds"] for row in old["history"][1:])
            for old, new in zip(old_runs, new_runs)
        ]
        rows.append(
            {
                "configuration": CONFIGURATIONS[name][0],
                "steps": steps,
                "old_epoch_seconds": old_s,
                "new_epoch_seconds": new_s,
                "ratio": new_s / old_s,
                "overhead_us_per_step": 1e6 * (new_s - old_s) / steps,
                "old_fit_seconds": statistics.median(run["fit_seconds"] for run in old_runs),
                "new_fit_seconds": statistics.median(run["fit_seconds"] for run in new_runs),
                "round_ratios": paired,
                "old_epochs": [[row["epoch_seconds"] for row in run["history"]] for run in old_runs],
                "new_epochs": [[row["epoch_seconds"] for row in run["history"]] for run in new_runs],
                "old_fit": sorted({run["fit"] for run in old_runs}),
                "new_fit": sorted({run["fit"] for run in new_runs}),
                "lr": sorted({row["lr"] for run in old_runs + new_runs for row in run["history"]}),
            }
        )
    for variant, label in (("empty", "empty training_step"), ("backward", "manual_backward only")):
        old_s, new_s = statistics.median(empty[variant]["old"]), statistics.median(empty[variant]["new"])
        rows.append(
            {
                "configuration": label,
                "steps": args.empty_steps,
                "old_epoch_seconds": old_s,
                "new_epoch_seconds": new_s,
                "bare_us_per_step": 1e6 * old_s / args.empty_steps,
                "trainer_us_per_step": 1e6 * new_s / args.empty_steps,
                "overhead_us_per_step": 1e6 * (new_s - old_s) / args.empty_steps,
                "old_fit_seconds": statistics.median(empty_fit[variant]["old"]),
                "new_fit_seconds": statistics.median(empty_fit[variant]["new"]),
            }
        )
    loops, steps_alone = rows[: len(args.configurations)], rows[len(args.configurations) :]
    columns = ["configuration", "steps", "old_epoch_seconds", "new_epoch_seconds", "ratio", "overhead_us_per_step"]
    print(table(loops, [*columns, "old_fit_seconds", "new_fit_seconds"]))
    print(
        f"epoch seconds: each loop's own history.csv epoch_seconds, epochs 2-{args.epochs}, median over "
        f"{args.rounds} interleaved rounds; ratio = new / old; overhead = (new - old) / steps, in microseconds"
    )
    print("fit seconds: median wall of the whole fit (untrained validation, every epoch with validation, checkpoints)")
    for row in loops:
        ratios = ", ".join(f"{ratio:.3f}" for ratio in row["round_ratios"])
        verdict = "within" if row["ratio"] <= 1.05 else "ABOVE"
        print(f"{row['configuration']}: new/old {row['ratio']:.3f}x, {verdict} 1.05x (per round: {ratios})")
    print()
    print(
        table(
            steps_alone, ["configuration", "steps", "bare_us_per_step", "trainer_us_per_step", "overhead_us_per_step"]
        )
    )
    print(
        "Lightning's own cost per step: the same step function in a bare for loop and as training_step in the "
        f"Trainer (manual optimization), epochs 2-{args.epochs}, median over {args.rounds} rounds, in microseconds"
    )
    print(f"load average after: {' '.join(f'{load:.2f}' for load in load_after)}")
    figures = {
        "rows": rows,
        "trees": {which: str(tree) for which, tree in trees.items()},
        "overrides": overrides,
        "configurations": {CONFIGURATIONS[name][0]: CONFIGURATIONS[name][1] for name in args.configurations},
        "rounds": args.rounds,
        "epochs": args.epochs,
        "load_average_before": load_before,
        "load_average_after": load_after,
    }
    print(f"wrote {save_results(args.results, 'loop_overhead', figures)}")


if __name__ == "__main__":
    main()
