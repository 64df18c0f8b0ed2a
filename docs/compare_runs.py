"""Draw a comparison of finished runs of unconditional VAEs (docs/figures/gaussian_modes.png and
families.png): for each run, reconstructions of the first test images and decoded draws from its
prior, one pair of rows a run.

    .venv/bin/python docs/compare_runs.py OUT.png LABEL=RUN_DIR [LABEL=RUN_DIR ...]
"""

import argparse
from pathlib import Path
from typing import List, Optional

import torch
from matplotlib.figure import Figure
from omegaconf import OmegaConf

from pyro_vae.runs.configuration.builders import load_dataset, pixel_transform
from pyro_vae.runs.directory import checkpoints
from pyro_vae.runs.tasks.tasks import figures


def test_images(run_dir: Path, count: int) -> torch.Tensor:
    """The run's first ``count`` test images, in the view its likelihood scores."""
    cfg = OmegaConf.create(checkpoints.read(run_dir / checkpoints.BEST)["config"])
    images = load_dataset(cfg, torch.device("cpu")).test.images[:count]
    return pixel_transform(cfg).fixed(images, "test")


@torch.no_grad()
def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    parser.add_argument("--count", type=int, default=12)
    args = parser.parse_args(argv)
    runs = [(label, Path(path).expanduser()) for label, path in (run.split("=", 1) for run in args.runs)]
    fig = Figure(figsize=(args.count * 0.7, 1.0 + 1.9 * len(runs)), layout="constrained")
    axes = fig.subplots(1 + 2 * len(runs), 1)
    figures.show(axes[0], test_images(runs[0][1], args.count), args.count, "test images")
    for (label, run_dir), ax_recon, ax_prior in zip(runs, axes[1::2], axes[2::2]):
        vae = checkpoints.load(run_dir)
        x = test_images(run_dir, args.count)
        figures.show(ax_recon, figures.reconstruct(vae, x), args.count, f"{label}: reconstructions")
        torch.manual_seed(0)
        figures.show(
            ax_prior, figures.prior_draws(vae, args.count), args.count, f"{label}: decoded draws from the prior"
        )
    figures.save(fig, args.out)


if __name__ == "__main__":
    main()
