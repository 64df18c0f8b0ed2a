"""Datasets as uint8 tensors on the training device, and the pixel transforms that feed the VAE."""

from .datasets import DataSplits, load_data
from .transform import LEVELS, PixelTransform, observed_view

__all__ = ["DataSplits", "LEVELS", "load_data", "PixelTransform", "observed_view"]
