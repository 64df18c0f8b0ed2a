"""A data set's feature classifier, trained once and cached outside any run (``quality.cache_dir``).

An entry is named by the data set, the architecture and a key: the SHA-256 of the training and
validation images and labels (their bytes and shapes), the class names, the recipe (with its
version) and the seed. Other data or another recipe gets another entry; the same ones, from any
run, the same entry. Sweep jobs asking at once take a lock beside the entry (``NAME.pt.lock``, an OS
lock that a killed job does not leave held): one trains, the others wait and load what it wrote,
whole, since entries are written atomically (``pyro_vae.atomic``). An entry
that cannot be read, lacks a field, holds another key or weights the recipe cannot take is retrained,
with a warning, and replaced.
"""

import hashlib
import json
import logging
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Dict, Iterator, Optional, Tuple, Union

import torch
from filelock import FileLock, Timeout

from ..atomic import save_torch
from ..data.splits import DataSplits
from ..errors import ConfigError
from .classifier import FeatureClassifier
from .classifier_training import Recipe, accuracies, default_recipe, train_classifier

log = logging.getLogger(__name__)

ENTRY_FIELDS = ("key", "recipe", "seed", "state_dict", "val", "test", "test_digest", "best_epoch", "train_seconds")


class DamagedEntry(Exception):
    """A cache entry that must not be trusted; the message says why."""


def refuse_unlabelled(data: DataSplits) -> None:
    """One line refusing data without classes: a classifier's feature space needs two or more."""
    if data.num_classes < 2:
        raise ConfigError(
            f"dataset={data.name}: has no class labels (one class, {data.class_names[0]!r}), and the sample-quality "
            "features come from a classifier of its classes; use a labelled data set (mnist, fashion_mnist, kmnist, "
            "cifar10, svhn) or dataset=folder with one sub-folder per class"
        )


def digest(*tensors: torch.Tensor) -> str:
    """The SHA-256 of the shapes, types and bytes of ``tensors``."""
    hashed = hashlib.sha256()
    for tensor in tensors:
        hashed.update(f"{tuple(tensor.shape)}{tensor.dtype}".encode())
        hashed.update(tensor.detach().cpu().contiguous().numpy())
    return hashed.hexdigest()


def cache_key(data: DataSplits, recipe: Recipe, seed: int) -> str:
    """The key of the classifier that ``recipe`` and ``seed`` train on ``data``'s training and validation splits."""
    content = {
        "train": digest(data.train.images, data.train.labels),
        "val": digest(data.val.images, data.val.labels),
        "class_names": list(data.class_names),
        "recipe": recipe.as_dict(),
        "seed": seed,
    }
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()


def entry_path(cache_dir: Union[str, Path], data: DataSplits, recipe: Recipe, key: str) -> Path:
    return Path(cache_dir).expanduser() / f"{data.name}-{recipe.architecture}-{key[:16]}.pt"


def feature_extractor(
    data: DataSplits,
    cache_dir: Union[str, Path],
    device: torch.device,
    seed: int = 0,
    recipe: Optional[Recipe] = None,
) -> Tuple[FeatureClassifier, Dict[str, Any]]:
    """The feature classifier of ``data`` on ``device`` (eval mode), loaded from ``cache_dir`` or trained
    and stored there, and what is known of it: ``architecture``, ``feature_dim``, ``val_accuracy`` and
    ``test_accuracy`` (grey images; ``*_binary_accuracy`` on binary draws where the recipe trains on them),
    ``best_epoch``, ``train_seconds``, ``cache_path``, ``trained_now`` and ``seconds`` (this call's)."""
    start = time.perf_counter()
    refuse_unlabelled(data)
    recipe = recipe or default_recipe(data.image_shape)
    key = cache_key(data, recipe, seed)
    path = entry_path(cache_dir, data, recipe, key)
    found, trained_now = _trusted(path, key, data, recipe, warn=False), False
    if found is None:
        with _locked(path):  # another process may have written it while this one waited
            found = _trusted(path, key, data, recipe, warn=True)
            if found is None:
                found, trained_now = _train_and_store(path, key, data, recipe, seed, device), True
    classifier, entry = found
    classifier.to(device).eval()
    test = entry["test"]
    if entry["test_digest"] != digest(data.test.images, data.test.labels):  # another dataset.test_size
        test = accuracies(classifier, data.test, "test", recipe, seed)
    return classifier, {
        "architecture": recipe.architecture,
        "feature_dim": classifier.feature_dim,
        **{f"val_{name}": value for name, value in entry["val"].items()},
        **{f"test_{name}": value for name, value in test.items()},
        "best_epoch": entry["best_epoch"],
        "train_seconds": entry["train_seconds"],
        "cache_path": str(path),
        "trained_now": trained_now,
        "seconds": time.perf_counter() - start,
    }


def _trusted(
    path: Path, key: str, data: DataSplits, recipe: Recipe, warn: bool
) -> Optional[Tuple[FeatureClassifier, Dict[str, Any]]]:
    """The classifier and entry at ``path``, or None where there is none or it is damaged (warned of if ``warn``)."""
    if not path.exists():
        return None
    try:
        return _read(path, key, data, recipe)
    except DamagedEntry as damage:
        if warn:
            log.warning("%s: damaged feature-classifier cache entry (%s); retraining it", path, damage)
        return None


def _read(path: Path, key: str, data: DataSplits, recipe: Recipe) -> Tuple[FeatureClassifier, Dict[str, Any]]:
    try:
        entry = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many types for a truncated or foreign file
        raise DamagedEntry(f"unreadable: {exc.__class__.__name__}") from exc
    if not isinstance(entry, dict) or any(field not in entry for field in ENTRY_FIELDS):
        raise DamagedEntry(f"not a dict with the fields {', '.join(ENTRY_FIELDS)}")
    if entry["key"] != key:
        raise DamagedEntry("the key it holds is not the key of its name")
    if not all(isinstance(entry[split], dict) for split in ("val", "test")):
        raise DamagedEntry("its accuracies are not dicts")
    classifier = recipe.build(data.image_shape, data.num_classes)
    try:
        classifier.load_state_dict(entry["state_dict"])
    except Exception as exc:  # RuntimeError for shapes and names, others for a state dict that is no dict
        raise DamagedEntry(f"its weights do not fit the recipe: {exc.__class__.__name__}") from exc
    return classifier, entry


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold ``PATH.lock``, saying so when another process holds it first; an unwritable folder is one line."""
    lock = FileLock(f"{path}.lock")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            lock.acquire(timeout=0)
        except Timeout:
            log.info("%s: another process is training this classifier; waiting for it", path)
            lock.acquire()
    except OSError as exc:
        raise ConfigError(
            f"quality.cache_dir={path.parent}: cannot be written ({exc.strerror or exc}); set quality.cache_dir (or "
            "PYRO_VAE_CACHE) to a writable folder"
        ) from exc
    try:
        yield
    finally:
        lock.release()


def _train_and_store(
    path: Path, key: str, data: DataSplits, recipe: Recipe, seed: int, device: torch.device
) -> Tuple[FeatureClassifier, Dict[str, Any]]:
    log.info("training the feature classifier of dataset=%s (%s), to be cached in %s", data.name, recipe, path)
    trained = train_classifier(data, recipe, seed, device)
    test = accuracies(trained.classifier, data.test, "test", recipe, seed)
    entry = {
        "key": key,
        "recipe": recipe.as_dict(),
        "seed": seed,
        "state_dict": {name: value.detach().cpu() for name, value in trained.classifier.state_dict().items()},
        "val": trained.val,
        "test": test,
        "test_digest": digest(data.test.images, data.test.labels),
        "best_epoch": trained.best_epoch,
        "train_seconds": trained.train_seconds,
    }
    save_torch(entry, path)
    log.info("feature classifier of dataset=%s: test accuracy %s, %.0f s", data.name, test, trained.train_seconds)
    return trained.classifier, entry
