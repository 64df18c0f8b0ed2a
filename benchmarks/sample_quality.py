"""Seconds to score a VAE's samples with task=sample_quality's metrics, the feature classifier cached.

For n samples and the n test images: the prior draws decoded, the features of both sets, and FD,
KID and precision/recall (pyro_vae.quality.metrics), at n and at n / 4 in the same run (the ratio
shows how the nearest-neighbour part grows with n). The classifier is loaded from --cache-dir, or
trained there first (its training time is reported, not counted). Uses the default VAE, untrained
unless --run-dir gives a finished run (the cost does not depend on the weights).
Prints a table and writes benchmarks/results/sample_quality.json.

    .venv/bin/python benchmarks/sample_quality.py [--n 10000] [--cache-dir ~/.cache/pyro_vae] [--run-dir DIR]
"""

import argparse
import time
from functools import partial
from pathlib import Path

import pyro
import torch
from common import add_results_argument, config, save_results, table

from pyro_vae import load
from pyro_vae.quality.classifier import as_pixels
from pyro_vae.quality.feature_cache import feature_extractor
from pyro_vae.quality.metrics import quality_metrics
from pyro_vae.runs.configuration.builders import build_vae, load_dataset
from pyro_vae.runs.tasks import figures


def seconds_of(work):
    start = time.perf_counter()
    result = work()
    return result, time.perf_counter() - start


@torch.no_grad()
def measure(vae, classifier, test_images: torch.Tensor, n: int, kid_subset_size: int) -> dict:
    """The seconds of each stage of scoring ``n`` prior draws against ``n`` test images."""
    samples, sampling = seconds_of(partial(figures.prior_draws, vae, n))
    real, real_seconds = seconds_of(partial(classifier.features, as_pixels(test_images[:n])))
    generated, generated_seconds = seconds_of(partial(classifier.features, samples))
    metrics = partial(quality_metrics, real, generated, kid_subset_size=min(kid_subset_size, n))
    _, metrics_seconds = seconds_of(metrics)
    features = real_seconds + generated_seconds
    return {
        "n": n,
        "sampling_seconds": sampling,
        "features_seconds": features,
        "metrics_seconds": metrics_seconds,
        "total_seconds": sampling + features + metrics_seconds,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=10000, help="samples scored (and test images as the reference)")
    parser.add_argument("--cache-dir", type=Path, default=Path("~/.cache/pyro_vae"))
    parser.add_argument("--run-dir", type=Path, default=None)
    parser.add_argument("--train-size", type=int, default=None, help="fewer training images (a quick check)")
    parser.add_argument("--kid-subset-size", type=int, default=1000)
    add_results_argument(parser)
    args = parser.parse_args()
    # A quick check trains the classifier on few images and validates it on half as many.
    sizes = (
        [f"dataset.train_size={args.train_size}", f"dataset.val_size={args.train_size // 2}"] if args.train_size else []
    )
    cfg = config([*sizes, f"dataset.test_size={args.n}"])
    pyro.set_rng_seed(0)
    device = torch.device("cpu")
    data = load_dataset(cfg, device)
    (classifier, info), load_seconds = seconds_of(lambda: feature_extractor(data, args.cache_dir, device))
    vae = load(args.run_dir) if args.run_dir else build_vae(cfg, data.image_shape, data.num_classes).eval()
    rows = [measure(vae, classifier, data.test.images, n, args.kid_subset_size) for n in (args.n // 4, args.n)]
    how = "trained" if info["trained_now"] else "loaded"
    accuracy = 100 * info["test_accuracy"]
    print(f"feature classifier: {info['architecture']}, {info['feature_dim']} features, test accuracy {accuracy:.2f}%")
    print(f"  {how} in {load_seconds:.1f} s")
    print(table(rows, ["n", "sampling_seconds", "features_seconds", "metrics_seconds", "total_seconds"]))
    ratio = rows[1]["total_seconds"] / rows[0]["total_seconds"]
    print(f"n = {rows[1]['n']} takes {ratio:.2f}x the time of n = {rows[0]['n']}")
    figures_out = {"rows": rows, "ratio_n_to_quarter": ratio, "classifier": info, "classifier_seconds": load_seconds}
    print("wrote", save_results(args.results, "sample_quality", figures_out))


if __name__ == "__main__":
    main()
