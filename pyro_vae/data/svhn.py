"""Street View House Numbers (Netzer et al., 2011), the cropped-digits format: 73,257 training and 26,032
test colour 32x32 images of digits, two MATLAB files read and downloaded as torchvision's ``SVHN`` does
(its URLs and MD5s; label 10 is the digit 0). The 531,131 "extra" images are not read."""

import hashlib
from pathlib import Path
from typing import Dict, Optional

import numpy as np
import torch
from torchvision.datasets import SVHN

from ..errors import DataError
from .downloads import fetch, not_shipped
from .idx import unofficial
from .matlab import read_mat
from .splits import DatasetReader, LabelledImages

# split -> (URL, file name, MD5 of the official file): torchvision.datasets.SVHN.split_list
FILES: Dict[str, tuple] = {split: tuple(SVHN.split_list[split]) for split in ("train", "test")}
CLASS_NAMES = tuple(str(digit) for digit in range(10))
IMAGE_SHAPE = (3, 32, 32)


def _fix(root: Path) -> str:
    urls = ", ".join(url for url, _, _ in FILES.values())
    return f"download {urls} into {root}, or set dataset.download=true on a networked machine"


def _read(root: Path, split: str, download: bool, verify: bool) -> LabelledImages:
    """One split: ``X`` (32, 32, 3, N) uint8 and ``y`` (N, 1) digits 1 to 10, as (N, 3, 32, 32) and 0 to 9."""
    url, name, md5 = FILES[split]
    path, fix = root / name, _fix(root)
    if download and not path.is_file():
        fetch(url, root, name, md5)
    if not path.is_file():
        raise DataError(f"{path}: not found; {fix}")
    raw = path.read_bytes()
    digest = hashlib.md5(raw).hexdigest()
    official = digest == md5 or unofficial(path, f"MD5 is {digest[:12]}..., expected {md5[:12]}...", fix, verify)
    mat = read_mat(path, fix, raw)
    if "X" not in mat or "y" not in mat:
        found = sorted(key for key in mat if not key.startswith("__"))
        raise DataError(f"{path}: holds no 'X' and 'y' (it holds {found}); not an SVHN .mat file, {fix}")
    images, labels = np.asarray(mat["X"]), np.asarray(mat["y"])
    if images.dtype != np.uint8 or images.shape[:3] != (32, 32, 3) or images.ndim != 4:
        raise DataError(f"{path}: 'X' is {images.dtype} {images.shape}, expected uint8 (32, 32, 3, N); {fix}")
    labels = labels.reshape(-1) if labels.size == images.shape[3] else labels
    if labels.shape != (images.shape[3],) or not np.isin(labels, np.arange(1, 11)).all():
        raise DataError(
            f"{path}: 'y' is {labels.dtype} {labels.shape}, expected {images.shape[3]} digits 1 to 10; {fix}"
        )
    digits = np.where(labels == 10, 0, labels).astype(np.int64)  # as torchvision: the digit 0 is labelled 10
    pixels = np.ascontiguousarray(images.transpose(3, 2, 0, 1))  # (H, W, C, N) -> (N, C, H, W)
    return LabelledImages(torch.from_numpy(pixels), torch.from_numpy(digits), official)


def load_svhn(root: Optional[str], download: bool = False, verify: bool = True) -> Dict[str, LabelledImages]:
    """The train (73,257) and test (26,032) images as uint8 (N, 3, 32, 32) with int64 digits 0 to 9."""
    if root is None:
        raise not_shipped("SVHN", "train_32x32.mat and test_32x32.mat")
    folder = Path(root).expanduser()
    return {split: _read(folder, split, download, verify) for split in FILES}


READER = DatasetReader(load_svhn, CLASS_NAMES, IMAGE_SHAPE)
