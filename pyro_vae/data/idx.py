"""Read IDX files (the format of the original MNIST release) straight into uint8 tensors, and the
data sets released as MNIST was, four gzipped IDX files: MNIST, Fashion-MNIST, KMNIST. A file is
verified by the SHA-256 of its decompressed content where that is known (MNIST, Fashion-MNIST), so a
copy gzipped again, at any level, or not gzipped at all reads as official; else by the MD5 of the
published .gz (KMNIST)."""

import gzip
import hashlib
import logging
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Optional, Tuple

import torch

from ..errors import DataError
from .splits import DatasetReader, LabelledImages

log = logging.getLogger(__name__)

_UINT8_TYPE_CODE = 0x08
SPLIT_PREFIXES = (("train", "train"), ("test", "t10k"))
DEFAULT_ROOT = Path("data")  # dataset.root of dataset=fashion_mnist and kmnist


@dataclass(frozen=True)
class IdxFile:
    """How one file of a release is verified: where known, the SHA-256 of its decompressed content, the
    only check then (a .gz compressed otherwise, or an uncompressed copy, verifies); else the MD5 of its
    .gz as published, which only that very .gz matches. ``gz_md5`` is what torchvision's downloader checks."""

    gz_md5: str
    content_sha256: Optional[str] = None


def unofficial(path: Path, found: str, fix: str, verify: bool) -> bool:
    """False, with a warning, for a file that is not the official one under ``dataset.verify=false``;
    with ``verify`` a DataError naming the file and the fix."""
    if verify:
        raise DataError(
            f"{path}: {found}; the file is corrupt or not the official release, {fix}, "
            "or set dataset.verify=false to use your own files"
        )
    log.warning("%s: %s; not the official release, read as it is (dataset.verify=false)", path, found)
    return False


def read_checked_bytes(path: Path, expected: IdxFile, fix: str, verify: bool = True) -> Tuple[bytes, bool]:
    """The (decompressed) bytes of ``path`` and whether they are the official ones. A mismatch raises
    DataError, or with ``verify=False`` is only logged."""
    if not path.is_file():
        raise DataError(f"{path}: file not found; {fix}")
    stored = path.read_bytes()
    gzipped = path.suffix == ".gz"
    found = None  # what differs from the official file; a published MD5 is checked before anything is decompressed
    if expected.content_sha256 is None and not gzipped:
        found = f"the published MD5 is of {path.name}.gz, not of this uncompressed copy"
    elif expected.content_sha256 is None and (digest := hashlib.md5(stored).hexdigest()) != expected.gz_md5:
        found = f"MD5 is {digest[:12]}..., expected {expected.gz_md5[:12]}..."
    official = found is None or unofficial(path, found, fix, verify)
    try:
        raw = gzip.decompress(stored) if gzipped else stored
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot be decompressed ({exc}); the file is truncated or corrupt, {fix}") from exc
    if expected.content_sha256 is not None and (digest := hashlib.sha256(raw).hexdigest()) != expected.content_sha256:
        found = f"SHA-256 of its content is {digest[:16]}..., expected {expected.content_sha256[:16]}..."
        official = unofficial(path, found, fix, verify)
    return raw, official


def parse_idx(raw: bytes, source: Path) -> torch.Tensor:
    """Parse an IDX byte string of unsigned bytes into a tensor of its declared shape."""
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != _UINT8_TYPE_CODE:
        raise DataError(f"{source}: not an IDX file of unsigned bytes (header {raw[:4].hex()}, expected 000008nn)")
    ndim = raw[3]
    header_end = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = header_end + (torch.Size(shape).numel() if ndim else 0)
    if len(raw) != expected:
        raise DataError(f"{source}: IDX header declares shape {shape} ({expected} bytes) but the file holds {len(raw)}")
    return torch.frombuffer(bytearray(raw[header_end:]), dtype=torch.uint8).reshape(shape)


@dataclass
class SystemCopy:
    """A copy of a release that a system package installs (``installed_by``) in ``folder``: read where
    ``dataset.root`` is left at its default and that folder holds none of the release's files."""

    folder: Path
    installed_by: str


@dataclass(frozen=True)
class IdxRelease:
    """A data set of 28x28 grey images released as MNIST was: train and t10k images and labels, four IDX
    files, gzipped, from ``mirrors``. Under ``dataset.root`` they may be gzipped or not, flat or in
    torchvision's ``FOLDER/raw/`` layout; ``shipped`` is the copy pyro-vae ships (``dataset.root=null``),
    ``system_copy`` one a system package installs, read after the default root (``data``)."""

    title: str
    folder: str
    mirrors: Tuple[str, ...]
    files: Dict[str, IdxFile]
    class_names: Tuple[str, ...]
    shipped: Optional[Path] = None
    system_copy: Optional[SystemCopy] = None

    def _holds_any(self, root: Path) -> bool:
        return any(self._locate(root, name).is_file() for name in self.files)

    def _holds_all(self, root: Path) -> bool:
        return all(self._locate(root, name).is_file() for name in self.files)

    def _folder(self, root: Optional[str]) -> Path:
        """The folder to read: ``root`` (null: the shipped copy), or the system copy where ``root`` is the
        default and holds none of the files while the system copy holds them all."""
        if root is None:
            return self.shipped
        folder = Path(root).expanduser()
        copy = self.system_copy
        if copy is None or Path(root) != DEFAULT_ROOT or self._holds_any(folder) or not self._holds_all(copy.folder):
            return folder
        log.info("%s: %s holds none of its files; reading %s (%s)", self.title, folder, copy.folder, copy.installed_by)
        return copy.folder

    def _locate(self, root: Path, name: str) -> Path:
        for folder in (root, root / self.folder / "raw"):
            for candidate in (folder / f"{name}.gz", folder / name):
                if candidate.is_file():
                    return candidate
        return root / f"{name}.gz"

    def _download(self, root: Path, name: str) -> None:
        from torchvision.datasets.utils import download_url

        errors = []
        for mirror in self.mirrors:
            try:
                download_url(f"{mirror}{name}.gz", str(root), filename=f"{name}.gz", md5=self.files[name].gz_md5)
                return
            except Exception as exc:  # any network or integrity failure: try the next mirror
                errors.append(f"{mirror}: {exc}")
        raise DataError(
            f"could not download {name}.gz into {root} ({'; '.join(errors)}); check the network or copy the file there"
        )

    def _fix(self, root: Path) -> str:
        names = ", ".join(f"{name}.gz" for name in self.files)
        fix = (
            f"put the official {self.title} files ({names}, from {self.mirrors[0]}) in {root} or "
            f"{root / self.folder / 'raw'}, or set dataset.download=true on a networked machine"
        )
        if self.system_copy:
            fix += (
                f"; {self.system_copy.installed_by} puts them in {self.system_copy.folder}, read when dataset.root "
                f"is left at {DEFAULT_ROOT}"
            )
        return fix + ("; dataset.root=null uses the copy shipped with pyro-vae" if self.shipped else "")

    def _read(self, root: Path, name: str, download: bool, verify: bool, fix: str) -> Tuple[torch.Tensor, bool]:
        path = self._locate(root, name)
        if download and not path.is_file():
            self._download(root, name)
            path = self._locate(root, name)
        raw, official = read_checked_bytes(path, self.files[name], fix, verify)
        return parse_idx(raw, path), official

    def load(
        self, root: Optional[str] = None, download: bool = False, verify: bool = True
    ) -> Dict[str, LabelledImages]:
        """The train and test splits as uint8 images (N, 1, 28, 28) with int64 labels; with ``verify=False``
        files that are not the official ones are read (as long as they are IDX files), each marked unverified."""
        if root is None and self.shipped is None:
            raise DataError(
                f"dataset.root=null: {self.title} is not shipped with pyro-vae; set dataset.root to a folder for "
                "its four IDX files, with dataset.download=true to fetch them there"
            )
        folder = self._folder(root)
        fix = self._fix(Path(root).expanduser() if root else folder)  # where to put files: the root asked for
        splits = {}
        for split, prefix in SPLIT_PREFIXES:
            images, images_official = self._read(folder, f"{prefix}-images-idx3-ubyte", download, verify, fix)
            labels, labels_official = self._read(folder, f"{prefix}-labels-idx1-ubyte", download, verify, fix)
            if images.shape[1:] != (28, 28) or labels.dim() != 1 or len(images) != len(labels):
                raise DataError(
                    f"{folder}: {self.title} {split} images {tuple(images.shape)} do not match labels "
                    f"{tuple(labels.shape)}, expected (N, 28, 28) and (N,)"
                )
            if len(labels) and labels.max() >= len(self.class_names):
                raise DataError(
                    f"{folder}: {self.title} {split} labels reach {labels.max()}, expected 0 to "
                    f"{len(self.class_names) - 1}"
                )
            splits[split] = LabelledImages(images.unsqueeze(1), labels.long(), images_official and labels_official)
        return splits

    def reader(self) -> DatasetReader:
        return DatasetReader(self.load, self.class_names, (1, 28, 28))
