"""MNIST from its four IDX files: shipped with the package, or from ``dataset.root``, or downloaded."""

from importlib import resources
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

from ..errors import DataError
from .idx import parse_idx, read_verified_bytes
from .splits import DatasetReader, LabelledImages

SHIPPED_ROOT = Path(str(resources.files("pyro_vae.data") / "files" / "mnist"))

MIRRORS = ("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/")

# name -> (SHA-256 of the decompressed IDX content, MD5 of the official .gz download)
FILES: Dict[str, Tuple[str, str]] = {
    "train-images-idx3-ubyte": (
        "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
        "f68b3c2dcbeaaa9fbdd348bbdeb94873",
    ),
    "train-labels-idx1-ubyte": (
        "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
        "d53e105ee54ea40749a09fcbcd1e9432",
    ),
    "t10k-images-idx3-ubyte": (
        "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
        "9fb629c4189551a2d022fa330f9573f3",
    ),
    "t10k-labels-idx1-ubyte": (
        "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
        "ec29112dd5afa0611ce80d1b7f02629c",
    ),
}
CLASS_NAMES = tuple(str(digit) for digit in range(10))


def _locate(root: Path, name: str) -> Path:
    """The file as stored under ``root``: gzipped or not, flat or in torchvision's MNIST/raw layout."""
    for folder in (root, root / "MNIST" / "raw"):
        for candidate in (folder / f"{name}.gz", folder / name):
            if candidate.is_file():
                return candidate
    return root / f"{name}.gz"


def _download(root: Path, name: str) -> None:
    from torchvision.datasets.utils import download_url

    md5 = FILES[name][1]
    errors = []
    for mirror in MIRRORS:
        try:
            download_url(f"{mirror}{name}.gz", str(root), filename=f"{name}.gz", md5=md5)
            return
        except Exception as exc:  # any network or integrity failure: try the next mirror
            errors.append(f"{mirror}: {exc}")
    raise DataError(
        f"could not download {name}.gz into {root} ({'; '.join(errors)}); check the network or copy the file there"
    )


def _read(root: Path, name: str, download: bool) -> torch.Tensor:
    path = _locate(root, name)
    if download and not path.is_file():
        _download(root, name)
        path = _locate(root, name)
    fix = (
        f"put the official {name}.gz in {root} (or set dataset.download=true on a networked machine); "
        "dataset.root=null uses the copy shipped with pyro-vae"
    )
    return parse_idx(read_verified_bytes(path, FILES[name][0], fix), path)


def load_mnist(root: Optional[str] = None, download: bool = False) -> Dict[str, LabelledImages]:
    """The train and test splits as uint8 images (N, 1, 28, 28) with int64 labels."""
    folder = Path(root).expanduser() if root else SHIPPED_ROOT
    splits = {}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        images = _read(folder, f"{prefix}-images-idx3-ubyte", download)
        labels = _read(folder, f"{prefix}-labels-idx1-ubyte", download)
        if images.dim() != 3 or labels.dim() != 1 or len(images) != len(labels):
            raise DataError(
                f"{folder}: MNIST {split} images {tuple(images.shape)} do not match labels {tuple(labels.shape)}"
            )
        splits[split] = LabelledImages(images.unsqueeze(1), labels.long())
    return splits


READER = DatasetReader(load_mnist, CLASS_NAMES, (1, 28, 28))
