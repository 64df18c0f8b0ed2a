"""Draw the samples of finished runs side by side, the same number from each, after training images
(docs/figures/vae_vs_gan.png): a VAE's decoder means of prior draws, a GAN's G(z).

    .venv/bin/python docs/compare_samples.py OUT.png LABEL=RUN_DIR [LABEL=RUN_DIR ...] [--count 64]
"""

import argparse
from pathlib import Path
from typing import List, Optional

import torch
from omegaconf import OmegaConf

from pyro_vae.quality.classifier import as_pixels
from pyro_vae.runs.configuration.builders import load_dataset
from pyro_vae.runs.directory import checkpoints
from pyro_vae.runs.tasks import figures


@torch.no_grad()
def main(argv: Optional[List[str]] = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path)
    parser.add_argument("runs", nargs="+", help="LABEL=RUN_DIR")
    parser.add_argument("--count", type=int, default=64)
    args = parser.parse_args(argv)
    runs = [(label, Path(path).expanduser()) for label, path in (run.split("=", 1) for run in args.runs)]
    cfg = OmegaConf.create(checkpoints.read(runs[0][1] / checkpoints.BEST)["config"])
    panels = [("training images", as_pixels(load_dataset(cfg, torch.device("cpu")).train.images[: args.count]))]
    for label, run_dir in runs:
        torch.manual_seed(0)
        panels.append((label, figures.model_samples(checkpoints.load(run_dir), args.count)))
    figures.panels(panels, args.out)


if __name__ == "__main__":
    main()
