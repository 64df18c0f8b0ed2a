"""Image files (PNG, JPEG, ...) read as uint8 pixels of a run's image shape, for ``task=reconstruct``."""

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, UnidentifiedImageError

from ..errors import DataError


def read_image(path: Path, image_shape: Sequence[int]) -> torch.Tensor:
    """The uint8 (C, H, W) pixels of an image file in the run's channel count (grey or RGB)."""
    channels, height, width = image_shape
    try:
        with Image.open(path) as image:
            pixels = np.array(image.convert("L" if channels == 1 else "RGB"))
    except FileNotFoundError as exc:
        raise DataError(f"{path}: not found; task.images takes paths of image files such as PNGs") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: not a readable image ({exc.__class__.__name__}); give PNG or JPEG files") from exc
    if pixels.shape[:2] != (height, width):
        raise DataError(
            f"{path}: {pixels.shape[1]}x{pixels.shape[0]} pixels, but this run's images are "
            f"{width}x{height} (width x height); resize the image to that size"
        )
    pixels = torch.from_numpy(pixels)
    return pixels[None] if channels == 1 else pixels.permute(2, 0, 1)
