"""Labelled image tensors and the train / validation / test carving of a dataset."""

from dataclasses import dataclass
from typing import Callable, Dict, Optional, Tuple

import torch

from ..errors import ConfigError


@dataclass(frozen=True)
class LabelledImages:
    """uint8 images (N, C, H, W) and their int64 labels (N,)."""

    images: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.labels)

    def head(self, n: Optional[int]) -> "LabelledImages":
        return self if n is None else LabelledImages(self.images[:n], self.labels[:n])

    def to(self, device: torch.device) -> "LabelledImages":
        return LabelledImages(self.images.to(device), self.labels.to(device))


@dataclass(frozen=True)
class DatasetReader:
    """What a data set's module offers: ``load(root, download)`` -> its ``train`` and ``test`` splits,
    its class names and its image shape (known before reading, so settings are checked first)."""

    load: Callable[[Optional[str], bool], Dict[str, "LabelledImages"]]
    class_names: Tuple[str, ...]
    image_shape: Tuple[int, int, int]


@dataclass(frozen=True)
class DataSplits:
    """The three splits of one dataset on the training device, with what the networks need to know."""

    name: str
    train: LabelledImages
    val: LabelledImages
    test: LabelledImages
    class_names: Tuple[str, ...]

    @property
    def image_shape(self) -> Tuple[int, int, int]:
        return tuple(self.train.images.shape[1:])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)


def _check_size(setting: str, value: Optional[int], available: int) -> None:
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
) -> DataSplits:
    """Hold out the last ``val_size`` training images for validation, then take the first N of each split."""
    _check_size("dataset.val_size", val_size, len(train) - 1)
    fit = LabelledImages(train.images[:-val_size], train.labels[:-val_size])
    val = LabelledImages(train.images[-val_size:], train.labels[-val_size:])
    _check_size("dataset.train_size", train_size, len(fit))
    _check_size("dataset.test_size", test_size, len(test))
    return DataSplits(name, fit.head(train_size), val, test.head(test_size), class_names)
