"""Load a dataset named in the config into train / validation / test splits on the device."""

from typing import Callable, Dict, Tuple

import torch
from omegaconf import DictConfig

from ..errors import ConfigError
from . import cifar10, mnist
from .splits import DataSplits, LabelledImages, carve_splits

Loader = Callable[[DictConfig], Tuple[Dict[str, LabelledImages], Tuple[str, ...]]]

LOADERS: Dict[str, Loader] = {
    "mnist": lambda dataset: (mnist.load_mnist(dataset.root, dataset.download), mnist.CLASS_NAMES),
    "cifar10": lambda dataset: (cifar10.load_cifar10(dataset.root, dataset.download), cifar10.CLASS_NAMES),
}


def load_data(dataset: DictConfig, device: torch.device) -> DataSplits:
    """Read the dataset of ``dataset.name`` and keep each split on ``device`` as uint8."""
    if dataset.name not in LOADERS:
        raise ConfigError(f"dataset={dataset.name}: unknown dataset; choose one of {', '.join(LOADERS)}")
    splits, class_names = LOADERS[dataset.name](dataset)
    return carve_splits(
        dataset.name,
        splits["train"].to(device),
        splits["test"].to(device),
        class_names,
        val_size=dataset.val_size,
        train_size=dataset.train_size,
        test_size=dataset.test_size,
    )
