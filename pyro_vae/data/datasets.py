"""Load a dataset named in the config into train / validation / test splits on the device."""

from typing import Callable, Dict, Tuple

import torch
from omegaconf import DictConfig

from ..errors import ConfigError
from . import cifar10, mnist
from .splits import DataSplits, LabelledImages, carve_splits

Loader = Callable[[DictConfig], Tuple[Dict[str, LabelledImages], Tuple[str, ...]]]

LOADERS: Dict[str, Loader] = {
    "mnist": lambda data: (mnist.load_mnist(data.root, data.download), mnist.CLASS_NAMES),
    "cifar10": lambda data: (cifar10.load_cifar10(data.root, data.download), cifar10.CLASS_NAMES),
}


def load_data(data: DictConfig, device: torch.device) -> DataSplits:
    """Read the dataset of ``data.name`` and keep each split on ``device`` as uint8."""
    if data.name not in LOADERS:
        raise ConfigError(f"data.name={data.name}: unknown dataset; choose one of {', '.join(LOADERS)}")
    splits, class_names = LOADERS[data.name](data)
    return carve_splits(
        data.name,
        splits["train"].to(device),
        splits["test"].to(device),
        class_names,
        val_size=data.val_size,
        train_size=data.train_size,
        test_size=data.test_size,
    )
