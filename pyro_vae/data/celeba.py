"""CelebA (Liu et al., 2015), the aligned and cropped faces: 202,599 colour JPEGs of 178x218 in
``img_align_celeba/`` and the official train / validation / test partition in ``list_eval_partition.txt``,
laid out as torchvision's ``CelebA`` downloads them; without the folder, the faces are read from the
official ``img_align_celeba.zip`` in place, one member at a time (never extracted to disk). Each face is
centre-cropped to 148x148 and resized to ``dataset.image_size`` (64 by default), as VAE papers on CelebA do.
Only the first ``dataset.train_size``, ``val_size`` and ``test_size`` images of each partition are decoded,
and a configuration whose splits would not fit in ``MAX_BYTES`` is refused before anything is read. The faces
carry no class: every label is 0."""

import hashlib
import importlib.util
import io
import logging
import zipfile
import zlib
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import IO, Any, Callable, Dict, Iterator, List, Optional, Tuple

import numpy as np
import torch

from ..errors import ConfigError, DataError
from .idx import unofficial
from .splits import DatasetReader, LabelledImages, check_size, image_size_refusal

log = logging.getLogger(__name__)

URL = "https://mmlab.ie.cuhk.edu.hk/projects/CelebA.html"
FOLDER = "celeba"  # torchvision's CelebA.base_folder
IMAGES = "img_align_celeba"
ZIP = f"{IMAGES}.zip"  # the official archive: every face as the member img_align_celeba/NAME.jpg
PARTITION = "list_eval_partition.txt"
# torchvision.datasets.CelebA.file_list: the MD5 of the partition file (no digest of the images is published)
PARTITION_MD5 = "d32c9cbf5e040fd4025c592c306e6668"
PARTITIONS = {"train": "0", "val": "1", "test": "2"}
OFFICIAL = {"train": 162770, "val": 19867, "test": 19962}  # images in each partition of the release
SIZE_SETTINGS = {"train": "dataset.train_size", "val": "dataset.val_size", "test": "dataset.test_size"}
ALIGNED = (178, 218)  # width, height of an aligned face
CROP = 148
MIN_IMAGE_SIZE = 8  # dataset.image_size from 8 to CROP: a face smaller than 8x8 is no longer one
IMAGE_SIZES = (MIN_IMAGE_SIZE, CROP)  # beyond CROP, resizing would only upsample the faces
MAX_BYTES = 4 * 2**30  # uint8 pixels of the three splits together, kept on the training device
CLASS_NAMES = ("unlabelled",)


def _has_gdown() -> bool:
    return importlib.util.find_spec("gdown") is not None


def _fix(root: Path) -> str:
    return (
        f"fetch {ZIP} and {PARTITION} from {URL} (Google Drive) and put both in {root / FOLDER} (the zip is read "
        f"as it is, or extracted there as {root / FOLDER / IMAGES}/)"
    )


def _download_refusal(root: Path) -> str:
    return (
        "dataset.download=true: CelebA is on Google Drive, which torchvision downloads from only with the gdown "
        f"package, not installed; {_fix(root)}, and set dataset.download=false"
    )


def settings_refusal(dataset: Any) -> Optional[str]:
    """The line refusing ``dataset.*`` settings that CelebA cannot read: a ``dataset.image_size`` beyond
    ``IMAGE_SIZES``, a download without gdown, splits too large for ``MAX_BYTES``."""
    size = dataset.image_size
    why = f"pixels a side; each aligned face is centre-cropped to {CROP}x{CROP}, and a larger side only upsamples it"
    if refusal := image_size_refusal(dataset, *IMAGE_SIZES, why):
        return refusal
    if dataset.download and not _has_gdown():
        return _download_refusal(Path(dataset.root or "data").expanduser())
    counts = {"train": dataset.train_size, "val": dataset.val_size, "test": dataset.test_size}
    images = sum(OFFICIAL[split] if n is None else n for split, n in counts.items() if isinstance(n, (int, type(None))))
    nbytes = images * 3 * size * size
    if nbytes > MAX_BYTES:
        fits = MAX_BYTES // (3 * size * size) - (counts["val"] or 0) - (counts["test"] or OFFICIAL["test"])
        return (
            f"dataset.image_size={size}: {images:,} CelebA images take {nbytes / 2**30:.1f} GiB as uint8, more than "
            f"the {MAX_BYTES // 2**30} GiB a run keeps on its device; set dataset.train_size={max(fits, 1)} or less, "
            "or a smaller dataset.image_size"
        )
    return None


def _locate(root: Path) -> Path:
    """torchvision's layout, ``ROOT/celeba/``, or the files flat in ``root``."""
    return root if (root / PARTITION).is_file() and not (root / FOLDER / PARTITION).is_file() else root / FOLDER


def read_partition(path: Path, fix: str, verify: bool) -> Tuple[Dict[str, List[str]], bool]:
    """The image names of each split, in the file's order, from lines ``NAME.jpg 0|1|2``, and whether
    the file is the official one."""
    if not path.is_file():
        raise DataError(f"{path}: not found; {fix}")
    raw = path.read_bytes()
    digest = hashlib.md5(raw).hexdigest()
    official = digest == PARTITION_MD5 or unofficial(
        path, f"MD5 is {digest[:12]}..., expected {PARTITION_MD5[:12]}...", fix, verify
    )
    splits: Dict[str, List[str]] = {split: [] for split in PARTITIONS}
    by_code = {code: names for code, names in zip(PARTITIONS.values(), splits.values())}
    for number, line in enumerate(raw.decode("latin-1").splitlines(), 1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 2 or fields[1] not in by_code or "/" in fields[0] or not fields[0].endswith(".jpg"):
            raise DataError(f"{path}: line {number} holds {line[:40]!r}, expected 'NAME.jpg 0', 1 or 2; {fix}")
        by_code[fields[1]].append(fields[0])
    return splits, official


# A face's path, shown in messages, and its bytes where they come from the zip (None: read the path).
FaceFile = Tuple[Path, Optional[IO[bytes]]]


@contextmanager
def face_files(base: Path, fix: str) -> Iterator[Callable[[str], FaceFile]]:
    """The file of each face by name: in ``img_align_celeba/``, or, where that folder is absent and the
    official zip is there, the zip's member read into memory (``ZIP:img_align_celeba/NAME``)."""
    folder, archive_path = base / IMAGES, base / ZIP
    if folder.is_dir() or not archive_path.is_file():
        yield lambda name: (folder / name, None)
        return
    try:
        archive = zipfile.ZipFile(archive_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(
            f"{archive_path}: not a readable zip ({exc}); the download is truncated or corrupt, {fix}"
        ) from exc
    with archive:

        def member(name: str) -> FaceFile:
            shown = Path(f"{archive_path}:{IMAGES}/{name}")
            try:
                return shown, io.BytesIO(archive.read(f"{IMAGES}/{name}"))
            except KeyError:
                raise DataError(f"{shown}: not in the zip; {ZIP} is incomplete, {fix}") from None
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:  # a bad CRC, a truncated member
                raise DataError(f"{shown}: damaged in the zip ({exc}); {fix}") from exc

        yield member


def read_face(face: FaceFile, image_size: int, fix: str) -> Tuple[np.ndarray, Tuple[int, int]]:
    """One face as uint8 (3, S, S): the centre 148x148 of the image, resized (bilinear, as torchvision's
    Resize); and the image's own width and height."""
    from PIL import Image

    path, data = face
    if data is None and not path.is_file():
        raise DataError(f"{path}: not found; the folder {path.parent.name}/ is incomplete, {fix}")
    try:
        with Image.open(path if data is None else data) as image:
            width, height = image.size
            if min(width, height) < CROP:
                raise DataError(f"{path}: is {width}x{height}, smaller than the {CROP}x{CROP} centre crop; {fix}")
            left, top = (width - CROP) // 2, (height - CROP) // 2
            face = image.convert("RGB").crop((left, top, left + CROP, top + CROP))
            face = face.resize((image_size, image_size), Image.Resampling.BILINEAR)
    except OSError as exc:  # PIL's UnidentifiedImageError and a truncated JPEG
        raise DataError(f"{path}: not a readable image ({exc}); the file is truncated or corrupt, {fix}") from exc
    return np.asarray(face).transpose(2, 0, 1), (width, height)


def load_celeba(
    root: Optional[str],
    download: bool = False,
    verify: bool = True,
    image_size: int = 64,
    sizes: Optional[Dict[str, Optional[int]]] = None,
) -> Dict[str, LabelledImages]:
    """The first ``sizes[split]`` faces (all where None) of the train, val and test partitions as uint8
    (N, 3, S, S), every label 0."""
    if root is None:
        raise DataError(
            f"dataset.root=null: CelebA is not shipped with pyro-vae; set dataset.root to the folder holding "
            f"{FOLDER}/{IMAGES}/ and {FOLDER}/{PARTITION}"
        )
    folder = Path(root).expanduser()
    if download and not (_locate(folder) / PARTITION).is_file():
        if not _has_gdown():
            raise ConfigError(_download_refusal(folder))
        _download(folder)
    base = _locate(folder)
    fix = _fix(folder)
    partition, official = read_partition(base / PARTITION, fix, verify)
    for split, names in partition.items():  # every size is checked before any image is decoded
        check_size(SIZE_SETTINGS[split], (sizes or {}).get(split), len(names))
    splits = {}
    with face_files(base, fix) as face_file:
        for split, names in partition.items():
            pixels = np.empty((len(names[: (sizes or {}).get(split)]), 3, image_size, image_size), np.uint8)
            aligned = True  # every image read so far has the aligned size: an odd one is refused, or logged once
            for i, name in enumerate(names[: len(pixels)]):
                face = face_file(name)
                pixels[i], found = read_face(face, image_size, fix)
                if found != ALIGNED and aligned:
                    aligned = unofficial(face[0], f"is {found[0]}x{found[1]}, not 178x218", fix, verify)
            labels = torch.zeros(len(pixels), dtype=torch.int64)
            splits[split] = LabelledImages(torch.from_numpy(pixels), labels, official and aligned)
    return splits


def _download(root: Path) -> None:
    from torchvision.datasets import CelebA

    try:  # every file of torchvision's CelebA.file_list, MD5-checked, and the zip extracted into ROOT/celeba/
        CelebA(str(root), split="all", target_type=[], download=True)
    except Exception as exc:  # any network, quota or integrity failure
        raise DataError(f"could not download CelebA into {root / FOLDER} ({exc}); {_fix(root)}") from exc


def _configure(dataset: Any) -> DatasetReader:
    """The reader at ``dataset.image_size``, decoding only the images the split sizes take."""
    sizes = {"train": dataset.train_size, "val": dataset.val_size, "test": dataset.test_size}
    size = dataset.image_size
    return replace(READER, load=partial(load_celeba, image_size=size, sizes=sizes), image_shape=(3, size, size))


READER = DatasetReader(
    load_celeba,
    CLASS_NAMES,
    (3, 64, 64),
    labelled=False,
    configure=_configure,
    refusal=settings_refusal,
)
