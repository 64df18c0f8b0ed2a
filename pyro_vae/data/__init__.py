"""Datasets as uint8 tensors on the training device, and the pixel transforms that feed the VAE."""

from .datasets import DataSplits, load_data
from .pixels import PixelTransform

__all__ = ["DataSplits", "load_data", "PixelTransform"]
