"""``task=sample_quality``: how good a finished run's samples look, measured beside its likelihood.

Each set of images (the run's prior samples, its reconstructions of test images, a GAN's draws) is
mapped into the feature space of a classifier trained on the run's own data set
(:mod:`pyro_vae.quality.feature_cache`) and compared there with the test images: FD, KID,
precision and recall (:mod:`pyro_vae.quality.metrics`). Like is scored with like: grey images
(decoder means, a GAN's outputs) against the grey test images, binary draws against the test
images binarized. The reference rows, training images against test images at the same counts, are
the floor of FD and KID and the ceiling of precision and recall; they depend on the data set only,
so they are computed once and kept beside the classifier in the cache.
"""

import hashlib
import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List

import torch
from omegaconf import DictConfig, OmegaConf

from ...atomic import write_json
from ...data import DataSplits, PixelTransform
from ...data.splits import LabelledImages
from ...data.transform import Binarization, Observation
from ...errors import ConfigError
from ...modelling.gan import GAN
from ...quality.classifier import FeatureClassifier, as_pixels
from ...quality.feature_cache import digest, feature_extractor
from ...quality.metrics import quality_metrics
from ..configuration.builders import load_dataset
from ..configuration.schema import option
from ..directory.finished_run import FinishedRun, open_run
from ..directory.reporting import write_metrics
from ..directory.run_record import Begin, nothing_to_begin
from . import figures
from .progress import phase

log = logging.getLogger(__name__)

GREY, BINARY = "grey", "binary"
SHOWN = 64  # images of each scored set in sample_quality.png
DEFAULT_KID_SUBSET_SIZE = 1000  # task.kid_subset_size=null: Binkowski et al.'s subsets, where the sets are as large
# The binarization of the reference images: fixed, so that every run is scored against the same draws.
REFERENCE_BINARIZATION = PixelTransform("dynamic", 0, Observation.binary, "bernoulli")


@dataclass(frozen=True)
class ScoredSet:
    """Images to score, what they are, and which view of the test images they are scored against."""

    name: str
    what: str
    images: torch.Tensor  # float, (N, C, H, W) in [0, 1]
    reference: str  # GREY or BINARY


def sample_quality_run(cfg: DictConfig, output_dir: Path, begin: Begin = nothing_to_begin) -> Dict[str, Any]:
    """Score the run's samples (``task.n`` of each kind) against its test images; write ``metrics.json``
    and ``sample_quality.png`` into ``output_dir``; return what ``metrics.json`` holds."""
    settings = cfg.task
    run = open_run(cfg, output_dir)
    data = _standard_split(run)
    kid_subset_size = _kid_subset_size(settings, len(data.test))
    begin()
    start = time.perf_counter()
    classifier, classifier_info = feature_extractor(data, Path(cfg.quality.cache_dir), run.device)
    scoring = {"kid_subsets": settings.kid_subsets, "kid_subset_size": kid_subset_size, "k": settings.k}
    binary = _scores_binary_draws(run)
    test = _real_views(data.test.images, "test", binary)
    test_features = {view: classifier.features(images) for view, images in test.items()}
    sets = _sample_sets(run, data.test, settings.n, binary)
    against = f"{settings.n:,} of each against {len(data.test):,} test images"
    with phase("sample quality", len(sets), "sets", f"{', '.join(s.name for s in sets)}: {against}") as advance:
        rows = {}
        for scored in sets:
            rows[scored.name] = _row(scored, classifier.features(scored.images), test_features, scoring)
            advance(1)
    reference = _reference_rows(data, classifier, classifier_info, test_features, settings.n, scoring)
    quality = {
        "feature_space": _feature_space(classifier_info, data.name),
        "classifier": {
            key: classifier_info[key]
            for key in ("architecture", "feature_dim", "test_accuracy", "val_accuracy", "cache_path")
        },
        "n_samples": settings.n,
        "n_reference": len(data.test),
        "sets": rows,
        "reference": reference,
        **scoring,
    }
    if getattr(run.vae, "conditional", False):
        quality["class_accuracy"] = _class_accuracy(classifier, sets[0].images, run.vae.num_classes)
    metrics = {
        "sample_quality": quality,
        "run_dir": str(run.path),
        "model": run.cfg.model.name,
        "best_epoch": run.epoch,
        "dataset": data.name,
        "device": str(run.device),
        "seconds": time.perf_counter() - start,
    }
    write_metrics(output_dir / "metrics.json", metrics)
    _figure(sets, as_pixels(data.train.images[:SHOWN]), rows, output_dir / "sample_quality.png")
    for name, row in {**rows, **reference}.items():
        log.info(
            "%-22s FD %8.3f  KID %.4f +- %.4f  precision %.3f  recall %.3f  (%d against %d %s)",
            name, row["fd"], row["kid_mean"], row["kid_std"], row["precision"], row["recall"],
            row["n_generated"], row["n_real"], row["reference"],
        )  # fmt: skip
    log.info("%s: sample quality in %s -> %s", run.path, quality["feature_space"], output_dir / "metrics.json")
    return metrics


def _standard_split(run: FinishedRun) -> DataSplits:
    """The run's data set split as its ``dataset=`` option splits it: the classifier and the reference
    rows come from it, so that runs which held out another number of validation images (the published
    setups keep 1,000) are scored in one feature space, by one classifier. A run on a subset of the
    training images (``dataset.train_size``), or on a data set too small for the standard split, keeps
    its own."""
    standard = option("dataset", run.cfg.dataset.name).node.val_size
    own = run.data
    subset = run.cfg.dataset.get("train_size") is not None
    if run.cfg.dataset.val_size == standard or subset or standard >= len(own.train) + len(own.val):
        return own
    split = OmegaConf.merge(run.cfg, {"dataset": {"val_size": standard}})
    return load_dataset(split, run.device)


def _kid_subset_size(settings: DictConfig, test_images: int) -> int:
    """KID's subset size: ``task.kid_subset_size`` as set, refused when a scored set is smaller (KID's
    subsets come from every scored set: the reconstructions, at most the test images, too); left null,
    the usual 1,000 or the whole of the smallest scored set where it has fewer, as the log says."""
    fewest = min(settings.n, test_images)
    if settings.k >= fewest:
        raise ConfigError(f"task.k={settings.k}: needs more than k images in each set ({fewest} here); lower task.k")
    if settings.kid_subset_size is None:
        size = min(DEFAULT_KID_SUBSET_SIZE, fewest)
        log.info(
            "KID subsets of %d images (the smallest scored set has %d); set task.kid_subset_size to choose",
            size,
            fewest,
        )
        return size
    if settings.kid_subset_size > fewest:
        raise ConfigError(
            f"task.kid_subset_size={settings.kid_subset_size}: exceeds the {fewest} images of the smallest scored set "
            f"(task.n={settings.n}, {test_images} test images); set task.kid_subset_size <= {fewest}"
        )
    return settings.kid_subset_size


def _real_views(images: torch.Tensor, split: str, binary: bool) -> Dict[str, torch.Tensor]:
    """uint8 ``images`` as grey levels, and binarized by the fixed reference draw when binary samples are scored."""
    views = {GREY: as_pixels(images)}
    if binary:
        views[BINARY] = REFERENCE_BINARIZATION.fixed(images, split)
    return views


def _scores_binary_draws(run: FinishedRun) -> bool:
    """Binary images are scored against binarized test images: a Bernoulli VAE's draws from p(x|z), and
    every sample of a GAN trained on binary draws (``dataset.binarize`` other than none)."""
    if isinstance(run.vae, GAN):
        return run.cfg.dataset.binarize != Binarization.none
    return run.vae.likelihood.observes == Observation.binary


def _sample_sets(run: FinishedRun, test: LabelledImages, n: int, binary: bool) -> List[ScoredSet]:
    """The run's samples: a GAN's draws; a VAE's prior draws (mean, and binary draws where its pixels
    are binary) and its reconstructions of the test images."""
    if isinstance(run.vae, GAN):
        draws = figures.model_samples(run.vae, n).clamp(0, 1)
        return [ScoredSet("generator", "G(z), z ~ N(0, I)", draws, BINARY if binary else GREY)]
    vae = run.vae
    sets = [ScoredSet("prior_mean", "E[x | z], z ~ p(z)", figures.prior_draws(vae, n).clamp(0, 1), GREY)]
    if binary:
        sets.append(
            ScoredSet("prior_binary", "x ~ p(x | z), z ~ p(z)", figures.prior_draws(vae, n, sampled=True), BINARY)
        )
    count = min(n, len(test))
    reconstructed = figures.reconstructions_of(vae, run.test_view(test.images[:count]), test.labels[:count])
    sets.append(
        ScoredSet("reconstruction_mean", "E[x | z = mean of q(z | x)], x a test image", reconstructed.clamp(0, 1), GREY)
    )
    return sets


def _row(scored: ScoredSet, features: torch.Tensor, test_features: Dict[str, torch.Tensor], scoring: dict) -> dict:
    reference = "grey test images" if scored.reference == GREY else "binarized test images"
    return {
        "what": scored.what,
        "reference": reference,
        **quality_metrics(test_features[scored.reference], features, **scoring),
    }


def _reference_rows(
    data: DataSplits,
    classifier: FeatureClassifier,
    classifier_info: Dict[str, Any],
    test_features: Dict[str, torch.Tensor],
    n: int,
    scoring: dict,
) -> Dict[str, dict]:
    """Training images against test images, in each view scored: read from the cache when computed
    before for the same classifier, test images, count and settings, computed and stored otherwise."""
    key = json.dumps({"test": digest(data.test.images), "n": n, "views": sorted(test_features), **scoring})
    path = Path(classifier_info["cache_path"]).with_suffix(
        f".reference-{hashlib.sha256(key.encode()).hexdigest()[:16]}.json"
    )
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):  # absent, or damaged: computed again
        pass
    train = data.train.images[:n]
    rows = {}
    for view, images in _real_views(train, "train", BINARY in test_features).items():
        scored = ScoredSet(f"train_images_{view}", f"{view} training images", images, view)
        rows[scored.name] = _row(scored, classifier.features(scored.images), test_features, scoring)
    write_json(path, rows)
    return rows


def _feature_space(info: Dict[str, Any], dataset: str) -> str:
    name = {"lenet": "LeNet", "resnet": "ResNet"}[info["architecture"]]
    return (
        f"FD ({name}): the {info['feature_dim']} penultimate features of a {name} trained on {dataset}'s training "
        f"split (test accuracy {100 * info['test_accuracy']:.2f}%); not comparable with Inception FID"
    )


def _class_accuracy(classifier: FeatureClassifier, prior_means: torch.Tensor, num_classes: int) -> Dict[str, Any]:
    """How often the classifier names the class that each prior draw of a conditional VAE was decoded
    for (``figures.prior_draws`` cycles through the classes)."""
    asked = torch.arange(len(prior_means), device=prior_means.device) % num_classes
    right = (classifier.predict(prior_means) == asked.to(classifier.head.weight.device)).float().cpu()
    per_class = [right[asked.cpu() == c].mean().item() for c in range(num_classes)]
    return {"accuracy": right.mean().item(), "per_class": per_class, "n": len(prior_means)}


def _figure(sets: List[ScoredSet], train_images: torch.Tensor, rows: Dict[str, dict], path: Path) -> None:
    """The first ``SHOWN`` images of each scored set, training images first, FD in each title."""
    panels = [("training images", train_images)] + [
        (f"{scored.name}: FD {rows[scored.name]['fd']:.2f}", scored.images[:SHOWN]) for scored in sets
    ]
    figures.panels(panels, path)
