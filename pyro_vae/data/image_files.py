"""Image files (PNG, JPEG, TIFF, ...) read as pixels in [0, 1] and as the uint8 pixels of a run's image shape
(``task=reconstruct``).

Pixels are scaled by what the file holds: 8-bit (and 1-bit) levels by 255, 16-bit ones by 65535, and float
ones taken as they are when they lie in [0, 1]; any other file is refused by name rather than clipped or
truncated to something else without a word.
"""

import warnings
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageMode, UnidentifiedImageError

from ..errors import DataError

# Pixel types (numpy's typestr, as PIL.ImageMode gives them) that the images of a run are stored in,
# converted by PIL itself to grey or RGB (palette, alpha and CMYK included).
EIGHT_BIT = ("|u1", "|b1")
# One-band pixel types of more depth: the number that takes them to [0, 1], None for floats taken as they are.
ONE_BAND_SCALES = {"u2": 65535.0, "f4": None, "f8": None}


def read_image(path: Path, image_shape: Sequence[int]) -> torch.Tensor:
    """The uint8 (C, H, W) pixels of an image file in the run's channel count (grey or RGB): the
    nearest of the 256 levels k / 255 the run's images have to each of ``pixel_levels``."""
    channels, height, width = image_shape
    try:
        with warnings.catch_warnings():
            # PIL warns of an image of 90-180 million pixels; its size is refused below, before any decoding.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            if image.size != (width, height):
                raise DataError(
                    f"{path}: {image.width}x{image.height} pixels, but this run's images are "
                    f"{width}x{height} (width x height); resize the image to that size"
                )
            levels = pixel_levels(image, channels, path)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: not found; task.images takes paths of image files such as PNGs") from exc
    except Image.DecompressionBombError as exc:  # the header claims more than twice PIL's limit: not even opened
        raise DataError(
            f"{path}: not decoded, its header claims too large an image ({str(exc).rstrip('.')}); this run's "
            f"images are {width}x{height} pixels"
        ) from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise DataError(f"{path}: not a readable image ({exc.__class__.__name__}); give PNG or JPEG files") from exc
    pixels = torch.from_numpy(np.rint(levels * 255).astype(np.uint8))
    return pixels.permute(2, 0, 1)


def pixel_levels(image: Image.Image, channels: int, path: Path) -> np.ndarray:
    """The (H, W, ``channels``) pixels of an open ``image`` in [0, 1] (grey when ``channels`` is 1, else
    RGB), scaled by its bit depth; refuses, naming ``path``, an image whose pixels have no such scale."""
    kind = ImageMode.getmode(image.mode).typestr
    if kind in EIGHT_BIT:
        levels = np.asarray(image.convert("L" if channels == 1 else "RGB"), dtype=np.float64) / 255
        return levels.reshape(image.height, image.width, channels)
    if len(image.getbands()) != 1 or kind[1:] not in ONE_BAND_SCALES:
        raise DataError(
            f"{path}: pixels of mode {image.mode} ({kind}) have no bit depth to scale by; save it as an 8- or 16-bit "
            "PNG"
        )
    scale = ONE_BAND_SCALES[kind[1:]]
    levels = np.asarray(image, dtype=np.float64)
    if scale is not None:
        levels = levels / scale
    elif not (np.isfinite(levels).all() and levels.min() >= 0 and levels.max() <= 1):
        raise DataError(
            f"{path}: float pixels from {levels.min():g} to {levels.max():g}, outside [0, 1]; scale them to [0, 1] "
            "or save the image as an 8- or 16-bit PNG"
        )
    return np.repeat(levels[:, :, None], channels, axis=2)
