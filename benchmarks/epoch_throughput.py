"""Images per second over one full MNIST training epoch: the project's data path against the
data path of Pyro's VAE tutorial, measured in the same run.

Project: the uint8 training split held as one tensor on the device, shuffled minibatches drawn
by indexing it and binarized on the fly, one training step per batch (``common.train_epoch``, as in
``run.py``). Tutorial: ``torchvision.datasets.MNIST`` with ``ToTensor``, a ``DataLoader``
(batch 128, shuffled, one worker as in the tutorial) and ``SVI.step`` with ``pyro.optim.Adam``.
Both train the same network on dynamically binarized images with the same batch size.
Prints a table and writes benchmarks/results/epoch_throughput.json.

    .venv/bin/python benchmarks/epoch_throughput.py [--batch-size 128]
"""

import argparse
import gzip
import statistics
import tempfile
import time
from pathlib import Path

import pyro
import torch
from common import add_results_argument, config, save_results, table, train_epoch
from pyro.infer import SVI, Trace_ELBO
from torch.utils.data import DataLoader, Subset
from torchvision import datasets, transforms

from pyro_vae.data import mnist
from pyro_vae.runs.configuration.builders import build_vae, load_dataset, pixel_transform
from pyro_vae.runs.loop.steps import make_step


def fresh_vae(cfg):
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    return build_vae(cfg, (1, 28, 28), 10)


def project_epoch(cfg, run_dir: Path) -> float:
    data = load_dataset(cfg, torch.device(cfg.device))
    sampler = pixel_transform(cfg).minibatches(data.train, cfg.batch_size)
    vae = fresh_vae(cfg)
    vae.num_data = len(data.train)
    step = make_step(vae, cfg)
    start = time.perf_counter()
    train_epoch(step, sampler, 1, cfg.seed).item()
    return len(sampler) * cfg.batch_size / (time.perf_counter() - start)


def write_torchvision_layout(root: Path) -> None:
    """torchvision reads the decompressed IDX files from MNIST/raw."""
    raw = root / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in mnist.FILES:
        (raw / name).write_bytes(gzip.decompress((mnist.SHIPPED_ROOT / f"{name}.gz").read_bytes()))


def tutorial_epoch(cfg, root: Path) -> float:
    train_set = datasets.MNIST(str(root), train=True, transform=transforms.ToTensor(), download=False)
    if cfg.dataset.train_size:
        train_set = Subset(train_set, range(cfg.dataset.train_size))
    loader = DataLoader(train_set, batch_size=cfg.batch_size, shuffle=True, num_workers=1, drop_last=True)
    vae = fresh_vae(cfg)
    vae.num_data = len(train_set)
    svi = SVI(vae.model, vae.guide, pyro.optim.Adam({"lr": cfg.lr}), loss=Trace_ELBO(max_plate_nesting=1))
    images = 0
    start = time.perf_counter()
    for x, _ in loader:
        svi.step(torch.bernoulli(x))
        images += len(x)
    return images / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=3, help="epochs of each path, interleaved; the median counts")
    parser.add_argument("--images", type=int, default=None, help="train on the first N images only (a quick check)")
    add_results_argument(parser)
    args = parser.parse_args()
    cfg = config([f"batch_size={args.batch_size}", f"dataset.train_size={args.images or 'null'}"])
    tutorial_runs, project_runs = [], []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        write_torchvision_layout(root)
        for _ in range(args.rounds):
            tutorial_runs.append(tutorial_epoch(cfg, root))
            project_runs.append(project_epoch(cfg, Path(tmp)))
    tutorial, project = statistics.median(tutorial_runs), statistics.median(project_runs)
    rows = [
        {
            "data path": "pyro tutorial: torchvision MNIST + DataLoader + SVI.step",
            "images_per_s": tutorial,
            "ratio": 1.0,
        },
        {"data path": "pyro-vae: on-device tensor + run_epoch", "images_per_s": project, "ratio": project / tutorial},
    ]
    print(table(rows, ["data path", "images_per_s", "ratio"]))
    print(
        f"batch {args.batch_size}, median of {args.rounds} epochs each, same network and ELBO; ratio against the "
        "tutorial's path"
    )
    figures = {
        "batch_size": args.batch_size,
        "rows": rows,
        "tutorial_runs": tutorial_runs,
        "project_runs": project_runs,
    }
    print(f"wrote {save_results(args.results, 'epoch_throughput', figures)}")


if __name__ == "__main__":
    main()
