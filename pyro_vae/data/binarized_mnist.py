"""The statically binarized MNIST of Larochelle and Murray (2011): one fixed Bernoulli draw of MNIST,
three text files (``.amat``: an image a line, 784 values 0 or 1 separated by spaces) with their own
validation split, and no labels. No checksum is published, so a file is verified by its format and
the official number of images; pixels are kept as 0 and 255, which any binarization keeps as they are."""

from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch

from ..errors import DataError
from .downloads import fetch, not_shipped
from .idx import unofficial
from .splits import DatasetReader, LabelledImages

URL = "http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/"
SPLITS: Dict[str, str] = {"train": "train", "val": "valid", "test": "test"}
IMAGES: Dict[str, int] = {"train": 50000, "val": 10000, "test": 10000}  # of the official release
PIXELS = 784
CLASS_NAMES = ("unlabelled",)
# what each byte of the text is: values 0 and 1, blanks between them, line ends, anything else
_OTHER, _BLANK, _NEWLINE, _DIGIT_0, _DIGIT_1 = range(5)
_KIND = np.full(256, _OTHER, np.uint8)
_KIND[list(b" \t\r")] = _BLANK
_KIND[ord("\n")] = _NEWLINE
_KIND[ord("0")] = _DIGIT_0
_KIND[ord("1")] = _DIGIT_1


def file_name(split: str) -> str:
    return f"binarized_mnist_{SPLITS[split]}.amat"


def _fix(root: Path) -> str:
    names = ", ".join(file_name(split) for split in SPLITS)
    return f"download {names} from {URL} into {root}, or set dataset.download=true on a networked machine"


def parse_amat(raw: bytes, source: Path, fix: str) -> torch.Tensor:
    """The images of an .amat text file as uint8 (N, 1, 28, 28), 0 or 255, refusing anything but
    lines of 784 single-digit values 0 or 1 (read vectorized: the training file is 78 MB of text)."""
    kind = _KIND[np.frombuffer(raw.rstrip(), np.uint8)]  # one pass over the text
    digit, newline = kind >= _DIGIT_0, kind == _NEWLINE
    bad = np.flatnonzero(kind == _OTHER)
    merged = np.flatnonzero(digit[1:] & digit[:-1])  # "10", "11": one value of two digits
    if len(bad) or len(merged):
        start = min(bad[:1].tolist() + merged[:1].tolist())
        while start and kind[start - 1] not in (_BLANK, _NEWLINE):
            start -= 1
        line = int(np.count_nonzero(newline[:start])) + 1
        token = raw[start:].split(maxsplit=1)[0][:20].decode("latin-1")
        raise DataError(
            f"{source}: line {line} holds {token!r}; expected {PIXELS} values 0 or 1 separated by spaces, {fix}"
        )
    if not len(kind):
        raise DataError(f"{source}: holds no images; {fix}")
    bounds = [0, *(np.flatnonzero(newline) + 1).tolist(), len(kind)]  # a line, its newline included
    counts = np.array([np.count_nonzero(digit[a:b]) for a, b in zip(bounds[:-1], bounds[1:])])
    wrong = np.flatnonzero(counts != PIXELS)
    if len(wrong):
        raise DataError(
            f"{source}: line {wrong[0] + 1} holds {counts[wrong[0]]} values, expected {PIXELS} (28x28 pixels); {fix}"
        )
    pixels = (kind[digit] == _DIGIT_1).astype(np.uint8) * 255
    return torch.from_numpy(pixels.reshape(-1, 1, 28, 28))


def _read(root: Path, split: str, download: bool, verify: bool) -> LabelledImages:
    path = root / file_name(split)
    if download and not path.is_file():
        fetch(f"{URL}{path.name}", root, path.name)  # no checksum is published
    if not path.is_file():
        raise DataError(f"{path}: not found; {_fix(root)}")
    images = parse_amat(path.read_bytes(), path, _fix(root))
    official = len(images) == IMAGES[split] or unofficial(
        path, f"holds {len(images)} images, the official file {IMAGES[split]}", _fix(root), verify
    )
    return LabelledImages(images, torch.zeros(len(images), dtype=torch.int64), official)


def load_binarized_mnist(root: Optional[str], download: bool = False, verify: bool = True) -> Dict[str, LabelledImages]:
    """The train (50,000), val (10,000) and test (10,000) images as uint8 (N, 1, 28, 28), every label 0."""
    if root is None:
        raise not_shipped("binarized MNIST", "its three .amat files")
    folder = Path(root).expanduser()
    return {split: _read(folder, split, download, verify) for split in SPLITS}


READER = DatasetReader(load_binarized_mnist, CLASS_NAMES, (1, 28, 28), labelled=False, binary=True)
