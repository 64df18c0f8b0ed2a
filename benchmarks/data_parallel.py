"""Seconds per epoch of the default model trained by one process and by several (DDP in Lightning's Trainer).

Each configuration is a real ``python run.py`` run on the first ``--images`` training images for
``--epochs`` epochs; the figure is the median epoch time from its ``history.csv``, leaving out the
first epoch (warm-up). On the CPU the processes share the machine's cores: ``trainer.devices=2
threads=1`` is two processes of one thread each (gloo), beside one process of one and of two
threads. ``vs one process`` is each row's epoch time over that of ``trainer.devices=1 threads=1``,
in the same run. Take figures on an otherwise idle machine.

    .venv/bin/python benchmarks/data_parallel.py [--images 20000] [--epochs 3] [--devices 2]
"""

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from common import ROOT, add_results_argument, save_results, table


def epoch_seconds(overrides, images: int, epochs: int, folder: Path) -> float:
    run_dir = folder / "_".join(o.replace("=", "-") for o in overrides)
    subprocess.run(
        [
            sys.executable,
            str(ROOT / "run.py"),
            *overrides,
            f"dataset.train_size={images}",
            "dataset.test_size=100",
            f"epochs={epochs}",
            "eval.iwae_k=2",
            "eval.val_iwae_k=2",
            "device=cpu",
            f"hydra.run.dir={run_dir}",
        ],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=3600,
    )
    with open(run_dir / "history.csv") as f:
        rows = list(csv.DictReader(f))
    return statistics.median(float(row["epoch_seconds"]) for row in rows[1:] or rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=20000, help="training images (default: a third of MNIST)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--devices", type=int, default=2, help="processes of the data-parallel rows")
    add_results_argument(parser)
    args = parser.parse_args()
    configurations = {
        "trainer.devices=1 threads=1": ["trainer.devices=1", "threads=1"],
        f"trainer.devices=1 threads={args.devices}": ["trainer.devices=1", f"threads={args.devices}"],
        f"trainer.devices={args.devices} threads=1": [f"trainer.devices={args.devices}", "threads=1"],
    }
    with tempfile.TemporaryDirectory() as folder:
        seconds = {name: epoch_seconds(o, args.images, args.epochs, Path(folder)) for name, o in configurations.items()}
    reference = seconds["trainer.devices=1 threads=1"]
    rows = [
        {
            "configuration": name,
            "epoch_seconds": value,
            "images_per_s": args.images / value,
            "vs one process": value / reference,
        }
        for name, value in seconds.items()
    ]
    print(table(rows, list(rows[0])))
    print(f"epoch of {args.images} images at batch 128, the median of epochs 2 to {args.epochs}")
    print(f"wrote {save_results(args.results, 'data_parallel', {'rows': rows, 'images': args.images})}")


if __name__ == "__main__":
    main()
