"""MNIST from its four IDX files: shipped with the package, or from ``dataset.root``, or downloaded."""

from importlib import resources
from pathlib import Path
from typing import Dict, Optional, Tuple

from .idx import IdxFile, IdxRelease
from .splits import LabelledImages

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

RELEASE = IdxRelease(
    "MNIST",
    "MNIST",
    MIRRORS,
    {name: IdxFile(gz_md5, sha256) for name, (sha256, gz_md5) in FILES.items()},
    CLASS_NAMES,
    shipped=SHIPPED_ROOT,
)


def load_mnist(root: Optional[str] = None, download: bool = False, verify: bool = True) -> Dict[str, LabelledImages]:
    """The train and test splits as uint8 images (N, 1, 28, 28) with int64 labels."""
    return RELEASE.load(root, download, verify)


READER = RELEASE.reader()
