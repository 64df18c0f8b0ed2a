"""Images per second of a training epoch and of the test log-likelihood at each data set's shape, with
the network a run of it uses, against the MNIST shape measured in the same run.

The shapes: 28x28x1 (MNIST, Fashion-MNIST, KMNIST, the binarized MNIST, Omniglot: the default MLP and
Bernoulli decoder), 32x32x3 (CIFAR-10, SVHN: ``likelihood=gaussian``, which brings the convolutional
networks) and 64x64x3 (CelebA and a folder at ``dataset.image_size=64``: the same networks). The images
are random uint8 of that shape (the cost does not depend on the pixels), trained by ``common.train_epoch``
(the step ``run.py`` takes, in a bare loop); the test log-likelihood is ``evaluate`` with K = ``--k``.
The rounds interleave the shapes, so that a busy spell of a shared machine slows all of them alike: the
ratios are the figures to read. Prints a table and writes benchmarks/results/data_shapes.json.

    .venv/bin/python benchmarks/data_shapes.py [--steps 40] [--test-images 20] [--k 1000] [--rounds 3]
"""

import argparse
import statistics
import tempfile
import time
from pathlib import Path
from typing import Dict, List

import pyro
import torch
from common import add_results_argument, config, save_results, table, train_epoch

from pyro_vae.data.splits import LabelledImages
from pyro_vae.modelling.estimators import evaluate
from pyro_vae.runs.configuration.builders import build_vae, pixel_transform
from pyro_vae.runs.loop.steps import make_step

# shape name -> (image shape, the overrides of a run of such data: its likelihood and network)
SHAPES = {
    "28x28x1 mlp bernoulli": ((1, 28, 28), []),
    "32x32x3 conv gaussian": ((3, 32, 32), ["likelihood=gaussian"]),
    "64x64x3 conv gaussian": ((3, 64, 64), ["likelihood=gaussian", "dataset=celeba"]),
}
REFERENCE = "28x28x1 mlp bernoulli"
NUM_DATA = 50_000  # the training-set size the step scales its loss by (the cost does not depend on it)


def measure(shape, overrides: List[str], steps: int, test_images: int, k: int, run_dir: Path) -> Dict[str, float]:
    """Training and test images per second of one fresh VAE of ``overrides`` on random images of ``shape``."""
    cfg = config(overrides)
    pyro.clear_param_store()
    pyro.set_rng_seed(0)
    transform = pixel_transform(cfg)
    vae = build_vae(cfg, shape, 10)
    vae.num_data = NUM_DATA
    step = make_step(vae, cfg)
    images = torch.randint(0, 256, ((steps + 2) * cfg.batch_size, *shape), dtype=torch.uint8)

    def sampler(batches: torch.Tensor):
        return transform.minibatches(
            LabelledImages(batches, torch.zeros(len(batches), dtype=torch.long)), cfg.batch_size
        )

    train_epoch(step, sampler(images[: 2 * cfg.batch_size]), 1, cfg.seed)  # warm-up
    start = time.perf_counter()
    train_epoch(step, sampler(images[2 * cfg.batch_size :]), 2, cfg.seed)
    train = steps * cfg.batch_size / (time.perf_counter() - start)
    test = transform.fixed(images[:test_images], "test")
    start = time.perf_counter()
    evaluate(vae.eval(), test, num_samples=k, chunk_size=cfg.eval.chunk_size)
    return {"train_images_per_s": train, "test_images_per_s": test_images / (time.perf_counter() - start)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="training steps timed per shape and round")
    parser.add_argument("--test-images", type=int, default=20, help="test images scored per shape and round")
    parser.add_argument("--k", type=int, default=1000, help="importance samples per test image (eval.iwae_k)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over the shapes, interleaved; the median counts")
    add_results_argument(parser)
    args = parser.parse_args()
    runs: Dict[str, List[Dict[str, float]]] = {name: [] for name in SHAPES}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.rounds):
            for name, (shape, overrides) in SHAPES.items():
                runs[name].append(measure(shape, overrides, args.steps, args.test_images, args.k, Path(tmp)))
    medians = {name: {key: statistics.median(r[key] for r in rs) for key in rs[0]} for name, rs in runs.items()}
    reference = medians[REFERENCE]
    rows = [
        {
            "shape": name,
            "train_images_per_s": figures["train_images_per_s"],
            "train_ratio": figures["train_images_per_s"] / reference["train_images_per_s"],
            "test_images_per_s": figures["test_images_per_s"],
            "test_ratio": figures["test_images_per_s"] / reference["test_images_per_s"],
        }
        for name, figures in medians.items()
    ]
    print(table(rows, ["shape", "train_images_per_s", "train_ratio", "test_images_per_s", "test_ratio"]))
    print(
        f"batch {config().batch_size}, {args.steps} steps and {args.test_images} test images at K = {args.k} per "
        f"shape, median of {args.rounds} interleaved rounds; ratios against {REFERENCE}, measured in the same run"
    )
    figures = {"steps": args.steps, "test_images": args.test_images, "k": args.k, "rows": rows, "runs": runs}
    print(f"wrote {save_results(args.results, 'data_shapes', figures)}")


if __name__ == "__main__":
    main()
