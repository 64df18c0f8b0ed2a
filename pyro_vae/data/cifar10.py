"""CIFAR-10 from the official python release under ``dataset.root``: its archive, the extracted folder,
or downloaded. Each batch is verified by the MD5 of its content, so the official batches verify whether they
come extracted, in the published archive, or in one gzipped at another level or not at all (a plain
``cifar-10-python.tar``)."""

import hashlib
import pickle
import tarfile
import zlib
from pathlib import Path
from typing import Dict, Optional, Tuple

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .downloads import fetch, not_shipped
from .splits import DatasetReader, LabelledImages

URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
ARCHIVE = "cifar-10-python.tar.gz"
PLAIN_ARCHIVE = "cifar-10-python.tar"  # the same archive uncompressed, read where ARCHIVE is absent
FOLDER = "cifar-10-batches-py"

# MD5s of the official release; the batches are pickles, so nothing is unpickled before its digest matches.
# ARCHIVE_MD5 is what the downloader checks; an archive on disk is verified batch by batch, by BATCH_MD5.
ARCHIVE_MD5 = "c58f30108f718f92721af3b95e74349a"
BATCH_MD5: Dict[str, str] = {
    "data_batch_1": "c99cafc152244af753f735de768cd75f",
    "data_batch_2": "d4bba439e000b95fd0a9bffe97cbabec",
    "data_batch_3": "54ebc095f3ab1f0389bbae665268c751",
    "data_batch_4": "634d18415352ddfa80567beed471001a",
    "data_batch_5": "482c414d41f54cd18b22e5b47cb7c3cb",
    "test_batch": "40351d587109b95175f43aff81a1287e",
}
SPLITS: Dict[str, Tuple[str, ...]] = {
    "train": tuple(f"data_batch_{i}" for i in range(1, 6)),
    "test": ("test_batch",),
}
CLASS_NAMES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
IMAGE_SHAPE = (3, 32, 32)
VERIFY_REFUSAL = (
    "dataset.verify=false: CIFAR-10's batches are Python pickles, which can run code, so pyro-vae unpickles only "
    "the official release once its MD5s match; set dataset.verify=true"
)


def _redownload(root: Path) -> str:
    return f"delete it and download {URL} into {root} again, or set dataset.download=true on a networked machine"


def _check_md5(raw: bytes, expected: str, source: str, root: Path) -> None:
    digest = hashlib.md5(raw).hexdigest()
    if digest != expected:
        raise DataError(
            f"{source}: MD5 is {digest[:12]}..., expected {expected[:12]}...; "
            f"the file is corrupt or not the official release, {_redownload(root)}"
        )


def _parse_batch(raw: bytes, source: str, root: Path) -> Tuple[np.ndarray, np.ndarray]:
    """Unpickle one (checksummed) batch into its (N, 3, 32, 32) pixels and (N,) labels, checking both."""
    try:
        batch = pickle.loads(raw, encoding="bytes")
    except Exception as exc:  # a damaged pickle can fail in many ways
        raise DataError(f"{source}: not a readable CIFAR-10 batch pickle ({exc}); {_redownload(root)}") from exc
    if not isinstance(batch, dict) or b"data" not in batch or b"labels" not in batch:
        found = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise DataError(
            f"{source}: expected a dict with keys b'data' and b'labels', found {found}; {_redownload(root)}"
        )
    data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"])
    row = int(np.prod(IMAGE_SHAPE))
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != row:
        raise DataError(
            f"{source}: b'data' is {data.dtype} {data.shape}, expected uint8 (N, {row}); {_redownload(root)}"
        )
    if labels.shape != (len(data),) or not np.issubdtype(labels.dtype, np.integer):
        raise DataError(
            f"{source}: b'labels' is {labels.dtype} {labels.shape}, expected {len(data)} integers; {_redownload(root)}"
        )
    if len(labels) and (labels.min() < 0 or labels.max() >= len(CLASS_NAMES)):
        raise DataError(
            f"{source}: labels range from {labels.min()} to {labels.max()}, expected 0 to {len(CLASS_NAMES) - 1}; "
            f"{_redownload(root)}"
        )
    return data.reshape(-1, *IMAGE_SHAPE), labels.astype(np.int64)


def _read_folder(root: Path) -> Dict[str, Tuple[str, bytes]]:
    """Each batch of the extracted folder (where it came from, its bytes), checked against its MD5."""
    batches = {}
    for name, md5 in BATCH_MD5.items():
        path = root / FOLDER / name
        if not path.is_file():
            raise DataError(f"{path}: not found; the extracted folder is incomplete, {_redownload(root)}")
        raw = path.read_bytes()
        _check_md5(raw, md5, str(path), root)
        batches[name] = (str(path), raw)
    return batches


def _read_archive(path: Path, root: Path) -> Dict[str, Tuple[str, bytes]]:
    """Each batch (where it came from, its bytes) read in one pass over the archive (gzipped at any level, or a
    plain tar) and checked against its MD5 before anything is unpickled."""
    kind, mode = ("tar.gz", "r:gz") if path.name.endswith(".gz") else ("tar", "r:")
    members = {f"{FOLDER}/{name}": name for name in BATCH_MD5}
    found: Dict[str, bytes] = {}
    try:
        with tarfile.open(path, mode=mode) as archive:
            for info in archive:
                if info.name in members and info.isfile():
                    content = archive.extractfile(info)  # a regular file: never None
                    found[members[info.name]] = content.read() if content is not None else b""
    except (tarfile.TarError, EOFError, OSError, zlib.error) as exc:
        raise DataError(
            f"{path}: not a readable {kind} ({' '.join(str(exc).split())}); the file is truncated or corrupt, "
            f"{_redownload(root)}"
        ) from exc
    batches = {}
    for name, md5 in BATCH_MD5.items():
        source = f"{path}:{FOLDER}/{name}"
        if name not in found:
            raise DataError(f"{path}: holds no file {FOLDER}/{name}; not the official archive, {_redownload(root)}")
        _check_md5(found[name], md5, source, root)
        batches[name] = (source, found[name])
    return batches


def load_cifar10(root: Optional[str], download: bool = False, verify: bool = True) -> Dict[str, LabelledImages]:
    """The train (50000) and test (10000) splits as uint8 images (N, 3, 32, 32) with int64 labels; ``verify``
    must stay true (settings.validate refuses false first: nothing unverified is ever unpickled)."""
    if not verify:
        raise ConfigError(VERIFY_REFUSAL)
    if root is None:
        raise not_shipped("CIFAR-10", f"{ARCHIVE} (or its extracted {FOLDER}/)")
    folder = Path(root).expanduser()
    if (folder / FOLDER).is_dir():
        batches = _read_folder(folder)
    else:
        archive = next((folder / name for name in (ARCHIVE, PLAIN_ARCHIVE) if (folder / name).is_file()), None)
        if archive is None:
            if not download:
                raise DataError(
                    f"{folder / ARCHIVE}: not found; download {URL} into {folder} (or its extracted {FOLDER}/), "
                    "or set dataset.download=true on a networked machine"
                )
            fetch(URL, folder, ARCHIVE, ARCHIVE_MD5)
            archive = folder / ARCHIVE
        batches = _read_archive(archive, folder)
    splits = {}
    for split, names in SPLITS.items():
        parts = [_parse_batch(batches[name][1], batches[name][0], folder) for name in names]
        images = torch.from_numpy(np.concatenate([images for images, _ in parts]))
        labels = torch.from_numpy(np.concatenate([labels for _, labels in parts]))
        splits[split] = LabelledImages(images, labels)
    return splits


READER = DatasetReader(load_cifar10, CLASS_NAMES, IMAGE_SHAPE, verify_refusal=VERIFY_REFUSAL)
