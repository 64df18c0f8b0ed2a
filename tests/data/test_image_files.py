"""Image files a user hands to ``task=reconstruct``, written for real with PIL: each kind scaled to [0, 1] by
its bit depth, or refused in one line naming the file, and a forged header refused before any decoding."""

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pyro_vae.data.image_files import pixel_levels, read_image
from pyro_vae.errors import DataError

from ..helpers import with_header_size

GREY, RGB = (1, 28, 28), (3, 28, 28)


def write(path: Path, pixels: np.ndarray) -> Path:
    Image.fromarray(pixels).save(path)
    return path


def ramp(dtype, top: float) -> np.ndarray:
    """28x28 pixels from 0 to ``top``, every value distinct."""
    return np.linspace(0, top, 28 * 28).reshape(28, 28).astype(dtype)


def levels_of(path: Path, channels: int) -> np.ndarray:
    with Image.open(path) as image:
        return pixel_levels(image, channels, path)


def test_8_bit_grey_and_rgb_files_read_as_they_are(tmp_path):
    grey = ramp(np.uint8, 255)
    rgb = np.stack([grey, 255 - grey, grey // 2], axis=-1)
    assert np.array_equal(read_image(write(tmp_path / "grey.png", grey), GREY).numpy()[0], grey)
    assert np.array_equal(read_image(write(tmp_path / "rgb.png", rgb), RGB).permute(1, 2, 0).numpy(), rgb)


def test_a_16_bit_png_is_scaled_by_its_bit_depth_not_clipped(tmp_path):
    pixels = ramp(np.uint16, 65535)
    path = write(tmp_path / "deep.png", pixels)
    assert Image.open(path).mode == "I;16"
    np.testing.assert_array_equal(levels_of(path, 1)[:, :, 0], pixels / 65535)
    read = read_image(path, GREY).numpy()[0]
    np.testing.assert_array_equal(read, np.rint(pixels / 65535 * 255))
    assert (read == 255).mean() < 0.01  # it was 99% before: every level above 255 clipped


def test_a_16_bit_grey_file_gives_an_rgb_run_three_equal_channels(tmp_path):
    pixels = ramp(np.uint16, 65535)
    read = read_image(write(tmp_path / "deep.png", pixels), RGB).numpy()
    assert read.shape == RGB and (read == np.rint(pixels / 65535 * 255)).all()


def test_a_float_tiff_in_0_1_is_taken_as_it_is(tmp_path):
    pixels = ramp(np.float32, 1.0)
    path = write(tmp_path / "float.tiff", pixels)
    assert Image.open(path).mode == "F"
    np.testing.assert_array_equal(levels_of(path, 1)[:, :, 0], pixels.astype(np.float64))
    np.testing.assert_array_equal(read_image(path, GREY).numpy()[0], np.rint(pixels.astype(np.float64) * 255))


@pytest.mark.parametrize(
    "pixels, message",
    [
        (ramp(np.float32, 255.0), r"float pixels from 0 to 255, outside \[0, 1\]; scale them to \[0, 1\] or save"),
        (np.full((28, 28), np.nan, dtype=np.float32), r"float pixels from nan to nan, outside \[0, 1\]"),
        (ramp(np.int32, 1000), r"pixels of mode I \(<i4\) have no bit depth to scale by; save it as an 8- or 16-bit"),
    ],
    ids=["float beyond 1", "float nan", "32-bit integers"],
)
def test_pixels_without_a_scale_are_refused_naming_the_file(tmp_path, pixels, message):
    path = write(tmp_path / "odd.tiff", pixels)
    with pytest.raises(DataError, match=f"^{path}: {message}") as refused:
        read_image(path, GREY)
    assert "\n" not in str(refused.value)


def test_a_header_claiming_40000x40000_pixels_is_refused_before_decoding(tmp_path):
    path = with_header_size(write(tmp_path / "bomb.png", ramp(np.uint8, 255)), 40000, 40000)
    with pytest.raises(DataError) as refused:
        read_image(path, GREY)
    line = str(refused.value)
    assert line.startswith(f"{path}: not decoded, its header claims too large an image (Image size (1600000000 ")
    assert line.endswith("this run's images are 28x28 pixels") and "\n" not in line


@pytest.mark.filterwarnings("error")  # nor a DecompressionBombWarning
def test_a_header_below_pils_limit_is_refused_by_its_size_before_decoding(tmp_path):
    path = with_header_size(write(tmp_path / "large.png", ramp(np.uint8, 255)), 10000, 10000)  # 1e8 pixels
    with pytest.raises(DataError, match=f"^{path}: 10000x10000 pixels, but this run's images are 28x28 "):
        read_image(path, GREY)  # its data holds 28x28 pixels: decoding it would fail as truncated
