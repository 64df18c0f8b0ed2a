"""Estimate the cost of CIFAR-10 runs without the data set: time 40 training steps and the test
evaluation of 20 images on random uint8 images of CIFAR-10's shape (the cost does not depend on
the pixel values), and scale them to an epoch of 45,000 training images (50,000 less the 5,000
that validate) and to the 10,000 test images.

    python docs/cifar_epoch_cost.py likelihood=gaussian threads=1 [more overrides]
"""

import math
import sys
import time
from pathlib import Path
from typing import List

import pyro
import torch

from pyro_vae import compose_config
from pyro_vae.data.batches import MinibatchSampler
from pyro_vae.data.splits import LabelledImages
from pyro_vae.modelling.estimators import evaluate
from pyro_vae.runs.builders import build_vae, pixel_transform
from pyro_vae.runs.settings import apply_threads
from pyro_vae.runs.steps import make_step
from pyro_vae.runs.training import run_epoch

TRAIN, TEST, SHAPE = 45_000, 10_000, (3, 32, 32)
STEPS, TEST_IMAGES = 40, 20


def main(overrides: List[str]) -> None:
    cfg = compose_config(["device=cpu", *overrides])
    apply_threads(cfg.threads)
    pyro.set_rng_seed(0)
    images = torch.randint(0, 256, ((STEPS + 2) * cfg.batch_size, *SHAPE), dtype=torch.uint8)
    transform = pixel_transform(cfg)
    vae = build_vae(cfg, SHAPE, 10)
    step = make_step(vae, cfg, TRAIN)

    def sampler(batches: torch.Tensor) -> MinibatchSampler:
        return transform.minibatches(
            LabelledImages(batches, torch.zeros(len(batches), dtype=torch.long)), cfg.batch_size
        )

    run_epoch(step, sampler(images[: 2 * cfg.batch_size]), 1, cfg, Path("."))  # warm-up
    start = time.perf_counter()
    run_epoch(step, sampler(images[2 * cfg.batch_size :]), 2, cfg, Path("."))
    per_step = (time.perf_counter() - start) / STEPS
    start = time.perf_counter()
    evaluate(
        vae.eval(),
        transform.fixed(images[:TEST_IMAGES], "test"),
        num_samples=cfg.eval.iwae_k,
        chunk_size=cfg.eval.chunk_size,
    )
    per_image = (time.perf_counter() - start) / TEST_IMAGES
    print(
        f"{' '.join(overrides)}: {per_step * 1e3:.0f} ms a step of {cfg.batch_size}, "
        f"{per_step * math.floor(TRAIN / cfg.batch_size) / 60:.1f} min an epoch of {TRAIN} images; "
        f"test evaluation with K = {cfg.eval.iwae_k}: {per_image * TEST / 60:.0f} min for {TEST} images"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
