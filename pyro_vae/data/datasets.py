"""Load a data set into train / validation / test splits on the device."""

from typing import Any

import torch

from .splits import DatasetReader, DataSplits, carve_splits


def load_data(reader: DatasetReader, dataset: Any, device: torch.device) -> DataSplits:
    """Read the data set of ``reader`` as the ``dataset`` settings say (``name``, ``root``, ``download``,
    ``verify``, ``val_size``, ``train_size``, ``test_size``: any object with these attributes) and keep each
    split on ``device`` as uint8. A run recorded before ``dataset.verify`` existed verifies."""
    splits = reader.load(dataset.root, dataset.download, getattr(dataset, "verify", True))
    return carve_splits(
        dataset.name,
        splits["train"].to(device),
        splits["test"].to(device),
        reader.class_names,
        val_size=dataset.val_size,
        train_size=dataset.train_size,
        test_size=dataset.test_size,
        val=splits["val"].to(device) if "val" in splits else None,
    )
