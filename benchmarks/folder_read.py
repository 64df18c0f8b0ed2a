"""Seconds and memory to read a folder of generated PNG images with ``dataset=folder``, as a run reads it.

Writes ``--images`` PNGs (random smooth colour images of mixed sizes around 64x64, in 10 class
sub-folders) into a temporary folder, then, in a fresh process for each setting (so that its peak
resident memory is its own), lists, splits and decodes them with ``load_dataset`` at each
``dataset.image_size`` and ``dataset.channels``. Reports the images decoded per second, the uint8
tensor kept, and the growth of the peak resident set size (``resource.getrusage``) over the read.
Prints a table and writes benchmarks/results/folder_read.json.

    .venv/bin/python benchmarks/folder_read.py [--images 10000]
"""

import argparse
import multiprocessing
import resource
import tempfile
import time
from pathlib import Path
from typing import Dict

import numpy as np
import torch
from common import add_results_argument, config, save_results, table
from PIL import Image

from pyro_vae.runs.configuration.builders import load_dataset

CLASSES = 10
SETTINGS = ((28, 1), (64, 3))  # (dataset.image_size, dataset.channels): the default, and colour photos


def write_images(root: Path, count: int) -> float:
    """``count`` PNGs of 56 to 72 pixels a side under ``root``/class_K/; the seconds it took."""
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    for i in range(count):
        folder = root / f"class_{i % CLASSES}"
        folder.mkdir(exist_ok=True)
        small = Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8))
        small.resize((56 + i % 17, 72 - i % 13), Image.Resampling.BILINEAR).save(folder / f"{i:05d}.png")
    return time.perf_counter() - start


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(root: str, count: int, image_size: int, channels: int) -> Dict[str, float]:
    """Runs in a fresh process: one read of the folder of ``count`` files, timed, with the peak memory it added."""
    overrides = [f"dataset.root={root}", f"dataset.image_size={image_size}", f"dataset.channels={channels}"]
    cfg = config(["dataset=folder", *overrides, f"dataset.val_size={min(100, count // 10)}"])  # 100: the default
    before = _peak_rss_mib()
    start = time.perf_counter()
    data = load_dataset(cfg, torch.device("cpu"))
    seconds = time.perf_counter() - start
    splits = (data.train, data.val, data.test)
    images = sum(len(split) for split in splits)
    return {
        "image_size": image_size,
        "channels": channels,
        "images": images,
        "read_seconds": seconds,
        "images_per_s": images / seconds,
        "tensor_mib": sum(split.images.numel() for split in splits) / 2**20,
        "rss_growth_mib": _peak_rss_mib() - before,
        "rss_peak_mib": _peak_rss_mib(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=10_000, help="PNG files to generate and read")
    add_results_argument(parser)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        write_seconds = write_images(Path(tmp), args.images)
        with multiprocessing.get_context("spawn").Pool(1, maxtasksperchild=1) as pool:
            rows = [pool.apply(measure, (tmp, args.images, size, channels)) for size, channels in SETTINGS]
    columns = ["image_size", "channels", "images", "read_seconds", "images_per_s", "tensor_mib", "rss_growth_mib"]
    print(table(rows, columns))
    print(
        f"{args.images} generated PNGs (56-72 pixels a side, RGB, {CLASSES} sub-folders; written in "
        f"{write_seconds:.1f} s), each setting read once in a fresh process; rss_growth_mib: the peak resident "
        "set size's growth over the read"
    )
    figures = {"files": args.images, "write_seconds": write_seconds, "rows": rows}
    print(f"wrote {save_results(args.results, 'folder_read', figures)}")


if __name__ == "__main__":
    main()
