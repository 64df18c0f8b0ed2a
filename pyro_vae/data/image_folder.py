"""A folder of the user's own image files (``dataset=folder``): PNG and JPEG (also BMP, GIF, TIFF, WebP),
grey or colour, of any size and mode, read with the reader of ``task=reconstruct`` (``image_files``:
8- and 16-bit and float pixels), each centre-cropped to its largest square and resized (bilinear) to
``dataset.image_size`` with ``dataset.channels`` (1: grey, 3: RGB).

The classes are the sub-folders of ``dataset.root`` (their names, sorted; the images anywhere under each),
or, with none, the one class "images" of the files in the folder itself. The test split is a fixed
``dataset.test_fraction`` of the files drawn by ``dataset.split_seed``, never by ``seed``, so that a
sweep of seeds is scored on one test set; the validation split is the last ``dataset.val_size`` of the
rest in that drawn order, and ``dataset.train_size`` and ``dataset.test_size`` take the first N of the others.
No checksum: the files are the user's own (``data_verified`` is true, ``dataset.verify`` is not read).
A folder whose kept images would not fit in ``celeba.MAX_BYTES`` is refused, from its file count, before
any image is decoded."""

import warnings
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from PIL import Image, ImageMode, UnidentifiedImageError

from ..errors import ConfigError, DataError
from .celeba import MAX_BYTES
from .image_files import EIGHT_BIT, pixel_levels
from .splits import DatasetReader, LabelledImages, check_size, image_size_refusal

# Extensions (lower case) read as images; a file with any other extension is skipped, one with these is
# read or refused by name.
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp")
FLAT_CLASS = "images"  # the one class of a folder without sub-folders
# dataset.image_size: from 8, which net=conv's three stride-2 layers (its default) take down to 1x1, to 256, the
# largest side VAE papers train on (NVAE's CelebA-HQ and FFHQ); at 256 in colour the default MLP's first and last
# layers alone hold 2 x 196,608 x 512 = 201M weights, 3.2 GB with their gradients and Adam's two moments.
IMAGE_SIZES = (8, 256)
IMAGE_SIZE_WHY = "pixels a side; net=conv's three stride-2 layers take 8 to 1x1, and 256 is the largest VAE papers use"


def _is_image(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_EXTENSIONS and path.is_file()


def _visible(path: Path, top: Path) -> bool:
    """Not hidden (no part of the path below ``top`` starts with a dot: ``.ipynb_checkpoints``, ``.DS_Store``)."""
    return not any(part.startswith(".") for part in path.relative_to(top).parts)


def _images_under(folder: Path) -> List[Path]:
    return sorted(p for p in folder.rglob("*") if _visible(p, folder) and _is_image(p))


def _folder(root: Optional[str]) -> Path:
    if root is None:
        raise ConfigError("dataset.root=null: dataset=folder reads a folder of your own images; set dataset.root=DIR")
    return Path(root).expanduser()


def list_images(root: Optional[str]) -> Tuple[Tuple[str, ...], List[Tuple[Path, int]], bool]:
    """The class names, every image file with its class index in a fixed order (class, then path), and
    whether the classes are sub-folders: one class per sub-folder of ``root`` that holds images, or the one
    class "images" of the files in ``root`` itself. Refuses a missing or empty folder, and one with images
    both flat and in sub-folders."""
    folder = _folder(root)
    if not folder.is_dir():
        what = "not a folder" if folder.exists() else "not found"
        raise ConfigError(f"dataset.root={root}: {what}; set dataset.root to a folder of PNG or JPEG images")
    flat = sorted(p for p in folder.iterdir() if _visible(p, folder) and _is_image(p))
    classes = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir() and _visible(p, folder)):
        images = _images_under(sub)
        if images:
            classes[sub.name] = images
    if flat and classes:
        raise ConfigError(
            f"dataset.root={root}: holds image files ({flat[0].name}, ...) beside class sub-folders "
            f"({', '.join(list(classes)[:3])}, ...); move them into a sub-folder of their class, or the "
            "sub-folders out"
        )
    if not flat and not classes:
        raise ConfigError(
            f"dataset.root={root}: holds no image files ({', '.join(IMAGE_EXTENSIONS)}), neither in it nor in "
            "sub-folders; set dataset.root to a folder of PNG or JPEG images"
        )
    if flat:
        return (FLAT_CLASS,), [(path, 0) for path in flat], False
    files = [(path, label) for label, paths in enumerate(classes.values()) for path in paths]
    return tuple(classes), files, True


def split_indices(count: int, test_fraction: float, split_seed: int) -> Dict[str, np.ndarray]:
    """The file indices of the test split (a ``test_fraction`` of ``count``, at least one) and of the
    rest, the training split, in an order drawn from ``split_seed`` alone."""
    order = np.random.default_rng(split_seed).permutation(count)
    n_test = min(max(int(round(count * test_fraction)), 1), count - 1)
    return {"test": order[:n_test], "train": order[n_test:]}


def _counts(dataset: Any, count: int) -> Dict[str, Tuple[int, int]]:
    """split -> (images it has, images it keeps) for ``count`` files, the sizes checked against what there is."""
    if count < 3:
        raise ConfigError(
            f"dataset.root={dataset.root}: holds {count} image file{'s' if count != 1 else ''}; dataset=folder needs "
            "at least 3, one each for the train, validation and test splits"
        )
    sizes = split_indices(count, dataset.test_fraction, dataset.split_seed)
    n_train, n_test = len(sizes["train"]), len(sizes["test"])
    check_size("dataset.val_size", dataset.val_size, n_train - 1)
    check_size("dataset.train_size", dataset.train_size, n_train - dataset.val_size)
    check_size("dataset.test_size", dataset.test_size, n_test)
    fit = n_train - dataset.val_size
    return {
        "train": (fit, dataset.train_size or fit),
        "val": (dataset.val_size, dataset.val_size),
        "test": (n_test, dataset.test_size or n_test),
    }


DOWNLOAD_REFUSAL = (
    "dataset.download=true: dataset=folder reads your own files in dataset.root, there is nothing to download; set "
    "dataset.download=false"
)


def settings_refusal(dataset: Any) -> Optional[str]:
    """The line refusing ``dataset.*`` settings that the folder cannot be read with: a download, a
    ``dataset.image_size`` beyond ``IMAGE_SIZES``, a missing or empty folder, split sizes beyond its files,
    or kept images too large for ``MAX_BYTES``."""
    if dataset.download:
        return DOWNLOAD_REFUSAL
    if refusal := image_size_refusal(dataset, *IMAGE_SIZES, IMAGE_SIZE_WHY):
        return refusal
    if dataset.channels not in (1, 3):  # settings.RANGES has refused it already; a config built in Python, here
        return f"dataset.channels={dataset.channels}: must be 1 (grey) or 3 (colour)"
    try:
        _, files, _ = list_images(dataset.root)
        counts = _counts(dataset, len(files))
    except ConfigError as exc:
        return str(exc)
    images = sum(kept for _, kept in counts.values())
    size, channels = dataset.image_size, dataset.channels
    nbytes = images * channels * size * size
    if nbytes > MAX_BYTES:
        fits = MAX_BYTES // (channels * size * size) - counts["val"][1] - counts["test"][1]
        return (
            f"dataset.image_size={size}: {images:,} images of {dataset.root} take {nbytes / 2**30:.1f} GiB as uint8 "
            f"({channels} channel{'s' if channels > 1 else ''}), more than the {MAX_BYTES // 2**30} GiB a run keeps "
            f"on its device; set dataset.train_size={max(fits, 1)} or less, or a smaller dataset.image_size"
        )
    return None


def read_resized(path: Path, image_size: int, channels: int) -> np.ndarray:
    """One image file as uint8 (``channels``, S, S): its pixels in [0, 1] as ``image_files.pixel_levels``
    scales them, the largest centred square, resized (bilinear, antialiased as PIL resizes) to S x S, and
    rounded to the nearest of the 256 levels k / 255."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(path)
        with image:
            side = min(image.size)
            left, top = (image.width - side) // 2, (image.height - side) // 2
            square = image.crop((left, top, left + side, top + side))
            levels = resized_levels(square, image_size, channels, path)
    except Image.DecompressionBombError as exc:  # the header claims more than twice PIL's limit: not decoded
        raise DataError(f"{path}: not decoded, its header claims too large an image ({str(exc).rstrip('.')})") from exc
    except (UnidentifiedImageError, OSError) as exc:  # not an image, or a truncated one
        raise DataError(
            f"{path}: not a readable image ({exc.__class__.__name__}); the file is corrupt or not an image, "
            "remove it from dataset.root"
        ) from exc
    return np.rint(levels * 255).astype(np.uint8).transpose(2, 0, 1)


def resized_levels(image: Image.Image, image_size: int, channels: int, path: Path) -> np.ndarray:
    """The (S, S, ``channels``) pixels in [0, 1] of ``image`` resized to S x S: an 8-bit image converted to
    grey or RGB by PIL and resized in 8 bits; a one-band image of more depth scaled to [0, 1] first and
    resized as 32-bit floats."""
    shape = (image_size, image_size)
    if ImageMode.getmode(image.mode).typestr in EIGHT_BIT:
        converted = image.convert("L" if channels == 1 else "RGB")
        return pixel_levels(converted.resize(shape, Image.Resampling.BILINEAR), channels, path)
    levels = pixel_levels(image, 1, path)[:, :, 0]  # refuses, naming path, a mode with no scale
    plane = Image.fromarray(levels.astype(np.float32), mode="F").resize(shape, Image.Resampling.BILINEAR)
    resized = np.clip(np.asarray(plane, dtype=np.float64), 0, 1)
    return np.repeat(resized[:, :, None], channels, axis=2)


def _read_split(files: Sequence[Tuple[Path, int]], image_size: int, channels: int) -> LabelledImages:
    pixels = np.empty((len(files), channels, image_size, image_size), np.uint8)
    for i, (path, _) in enumerate(files):
        pixels[i] = read_resized(path, image_size, channels)
    labels = torch.tensor([label for _, label in files], dtype=torch.int64)
    return LabelledImages(torch.from_numpy(pixels), labels)


def load_folder(
    root: Optional[str], download: bool = False, verify: bool = True, dataset: Any = None
) -> Dict[str, LabelledImages]:
    """The train, val and test splits of the folder at ``root`` under the ``dataset`` settings, uint8
    (N, C, S, S) with int64 class indices; only the images the split sizes keep are decoded."""
    if download:
        raise ConfigError(DOWNLOAD_REFUSAL)
    _, files, _ = list_images(root)
    counts = _counts(dataset, len(files))
    order = split_indices(len(files), dataset.test_fraction, dataset.split_seed)
    fit, val = order["train"][: counts["train"][0]], order["train"][counts["train"][0] :]
    chosen = {"train": fit[: counts["train"][1]], "val": val, "test": order["test"][: counts["test"][1]]}
    size, channels = dataset.image_size, dataset.channels
    return {split: _read_split([files[i] for i in indices], size, channels) for split, indices in chosen.items()}


def _configure(dataset: Any) -> DatasetReader:
    """The reader for the ``dataset`` settings: the folder's classes (its sub-folders, listed, no image read)
    and the image shape; a folder that cannot be listed keeps the one class, for ``settings_refusal`` to refuse."""
    try:
        class_names, _, labelled = list_images(dataset.root)
    except ConfigError:
        class_names, labelled = (FLAT_CLASS,), False
    size = dataset.image_size
    return replace(
        READER,
        load=partial(load_folder, dataset=dataset),
        class_names=class_names,
        image_shape=(dataset.channels, size, size),
        labelled=labelled,
    )


def _unconfigured(root: Optional[str], download: bool = False, verify: bool = True) -> Dict[str, LabelledImages]:
    raise ConfigError("dataset=folder is read with its dataset.* settings: use DatasetReader.for_settings")


READER = DatasetReader(
    _unconfigured,
    (FLAT_CLASS,),
    (1, 28, 28),
    configure=_configure,
    refusal=settings_refusal,
)
