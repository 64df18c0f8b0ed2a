"""The 28x28 Omniglot of Burda, Grosse and Salakhutdinov (2016): 24,345 training and 8,070 test characters
of 50 alphabets, one MATLAB file, ``chardata.mat``, from the IWAE repository. Its pixels are floats in
[0, 1]; they are kept as grey levels (round(255 x)) and binarized by ``dataset.binarize``, dynamically by
default as Burda et al. did. No checksum is published, so the file is verified by its keys, shapes, value
range and the official number of images."""

from dataclasses import replace
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from ..errors import DataError
from .downloads import fetch, not_shipped
from .idx import unofficial
from .matlab import read_mat
from .splits import DatasetReader, LabelledImages

URL = "https://github.com/yburda/iwae/raw/master/datasets/OMNIGLOT/chardata.mat"
FILE = "chardata.mat"
# split -> (key of the images, key of the one-hot labels, images in the official file)
KEYS: Dict[str, Tuple[str, str, int]] = {"train": ("data", "target", 24345), "test": ("testdata", "testtarget", 8070)}
PIXELS = 784
CLASS_NAMES = tuple(f"alphabet {i}" for i in range(50))  # the file names no alphabet, only its index


def _fix(root: Path) -> str:
    return f"download {URL} into {root}, or set dataset.download=true on a networked machine"


def _split(mat: dict, split: str, path: Path, fix: str) -> LabelledImages:
    """One split: (784, N) floats in [0, 1], each column an image stored column by column (Fortran order,
    as the IWAE code reshapes it), and (50, N) one-hot alphabets."""
    image_key, label_key, _ = KEYS[split]
    for key in (image_key, label_key):
        if key not in mat:
            found = sorted(k for k in mat if not k.startswith("__"))
            raise DataError(f"{path}: holds no {key!r} (it holds {found}); not Burda et al.'s chardata.mat, {fix}")
    data, target = np.asarray(mat[image_key]), np.asarray(mat[label_key])
    if data.ndim != 2 or data.shape[0] != PIXELS or not np.issubdtype(data.dtype, np.number):
        raise DataError(f"{path}: {image_key!r} is {data.dtype} {data.shape}, expected numbers (784, N); {fix}")
    if len(data.T) and not (np.isfinite(data).all() and data.min() >= 0 and data.max() <= 1):
        raise DataError(
            f"{path}: {image_key!r} ranges from {data.min()} to {data.max()}, expected pixels in [0, 1]; {fix}"
        )
    classes = len(CLASS_NAMES)
    if target.shape != (classes, data.shape[1]) or not np.isin(target, (0, 1)).all() or (target.sum(0) != 1).any():
        raise DataError(
            f"{path}: {label_key!r} is {target.dtype} {target.shape}, expected one-hot alphabets "
            f"({classes}, {data.shape[1]}); {fix}"
        )
    grey = np.rint(data.T * 255).astype(np.uint8).reshape(-1, 28, 28, order="F")
    images = torch.from_numpy(np.ascontiguousarray(grey)).unsqueeze(1)
    return LabelledImages(images, torch.from_numpy(target.argmax(0).astype(np.int64)))


def load_omniglot(root: Optional[str], download: bool = False, verify: bool = True) -> Dict[str, LabelledImages]:
    """The train (24,345) and test (8,070) images as uint8 grey levels (N, 1, 28, 28), labelled by alphabet."""
    if root is None:
        raise not_shipped("Omniglot", FILE)
    folder = Path(root).expanduser()
    path = folder / FILE
    if download and not path.is_file():
        fetch(URL, folder, FILE)  # no checksum is published
    if not path.is_file():
        raise DataError(f"{path}: not found; {_fix(folder)}")
    mat = read_mat(path, _fix(folder))
    splits = {split: _split(mat, split, path, _fix(folder)) for split in KEYS}  # the layout first, then the counts
    for split, images in splits.items():
        official = KEYS[split][2]
        if len(images) != official:
            found = f"{split} holds {len(images)} images, the official file {official}"
            splits[split] = replace(images, verified=unofficial(path, found, _fix(folder), verify))
    return splits


READER = DatasetReader(load_omniglot, CLASS_NAMES, (1, 28, 28))
