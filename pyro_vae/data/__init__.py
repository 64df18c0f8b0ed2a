"""Datasets as uint8 tensors on the training device, and the pixel transforms that feed the VAE."""

from .datasets import load_data
from .splits import DatasetReader, DataSplits
from .transform import LEVELS, Binarization, Choice, Observation, PixelTransform

__all__ = [
    "Binarization",
    "Choice",
    "DataSplits",
    "DatasetReader",
    "LEVELS",
    "load_data",
    "Observation",
    "PixelTransform",
]
