"""Labelled image tensors and the train / validation / test carving of a dataset."""

from dataclasses import dataclass, replace
from typing import Any, Callable, Dict, Optional, Tuple

import torch

from ..errors import ConfigError


@dataclass(frozen=True)
class LabelledImages:
    """uint8 images (N, C, H, W) and their int64 labels (N,); ``verified``: read from files that matched
    the official release (false only under ``dataset.verify=false``)."""

    images: torch.Tensor
    labels: torch.Tensor
    verified: bool = True

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: Optional[int]) -> "LabelledImages":
        return self if n is None else replace(self, images=self.images[:n], labels=self.labels[:n])

    def tail(self, n: int) -> "LabelledImages":
        return replace(self, images=self.images[-n:], labels=self.labels[-n:])

    def subset(self, indices: torch.Tensor) -> "LabelledImages":
        return replace(self, images=self.images[indices], labels=self.labels[indices])

    def to(self, device: torch.device) -> "LabelledImages":
        return replace(self, images=self.images.to(device), labels=self.labels.to(device))


@dataclass(frozen=True)
class DatasetReader:
    """What a data set's module offers: ``load(root, download, verify)`` -> its ``train`` and ``test``
    splits (and ``val`` where the release has its own), and what settings are checked against before
    any file is read: its class names and image shape, whether it has labels (``labelled``: else every
    label is 0, of the one class "unlabelled"), whether its pixels are binary already (``binary``), and
    ``verify_refusal``, the line refusing ``dataset.verify=false`` where unverified files are unsafe to read.
    A data set whose image size or reading depends on its own settings (CelebA's ``dataset.image_size``)
    gives ``configure``, the reader for those settings, and ``refusal``, the line refusing settings it
    cannot read (too large for memory, say), checked before any file is read."""

    load: Callable[[Optional[str], bool, bool], Dict[str, "LabelledImages"]]
    class_names: Tuple[str, ...]
    image_shape: Tuple[int, int, int]
    labelled: bool = True
    binary: bool = False
    verify_refusal: Optional[str] = None
    configure: Optional[Callable[[Any], "DatasetReader"]] = None
    refusal: Optional[Callable[[Any], Optional[str]]] = None

    def for_settings(self, dataset: Any) -> "DatasetReader":
        """The reader for the ``dataset.*`` settings ``dataset``: itself, unless it has ``configure``."""
        return self.configure(dataset) if self.configure else self


@dataclass(frozen=True)
class DataSplits:
    """The three splits of one dataset on the training device, with what the networks need to know."""

    name: str
    train: LabelledImages
    val: LabelledImages
    test: LabelledImages
    class_names: Tuple[str, ...]

    @property
    def verified(self) -> bool:
        """Whether every file read matched the official release (``metrics.json``'s ``data_verified``)."""
        return self.train.verified and self.val.verified and self.test.verified

    @property
    def image_shape(self) -> Tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def image_size_refusal(dataset: Any, low: int, high: int, why: str) -> Optional[str]:
    """The line refusing a ``dataset.image_size`` outside the data set's own range, ``why`` giving its ends."""
    size = dataset.image_size
    if low <= size <= high:
        return None
    return f"dataset.image_size={size}: must be an integer from {low} to {high} for dataset={dataset.name} ({why})"


def check_size(setting: str, value: Optional[int], available: int) -> None:
    if value is not None and not (isinstance(value, int) and 0 < value <= available):
        raise ConfigError(f"{setting}={value}: must be null or an integer from 1 to {available}")


def carve_splits(
    name: str,
    train: LabelledImages,
    test: LabelledImages,
    class_names: Tuple[str, ...],
    val_size: int,
    train_size: Optional[int],
    test_size: Optional[int],
    val: Optional[LabelledImages] = None,
) -> DataSplits:
    """Hold out the last ``val_size`` training images for validation, or, for a release with a validation
    split of its own (``val``), take its first ``val_size``; then take the first N of the other splits."""
    if val is None:
        check_size("dataset.val_size", val_size, len(train) - 1)
        fit, val = train.head(len(train) - val_size), train.tail(val_size)
    else:
        check_size("dataset.val_size", val_size, len(val))
        fit, val = train, val.head(val_size)
    check_size("dataset.train_size", train_size, len(fit))
    check_size("dataset.test_size", test_size, len(test))
    return DataSplits(name, fit.head(train_size), val, test.head(test_size), class_names)
