"""Read IDX files (the format of the original MNIST release) straight into uint8 tensors."""

import gzip
import hashlib
import zlib
from pathlib import Path

import torch

from ..errors import DataError

_UINT8_TYPE_CODE = 0x08


def read_verified_bytes(path: Path, sha256: str, fix: str) -> bytes:
    """Return the (decompressed) bytes of ``path``, raising DataError unless their SHA-256 matches."""
    if not path.is_file():
        raise DataError(f"{path}: file not found; {fix}")
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as exc:
        raise DataError(f"{path}: cannot be decompressed ({exc}); the file is truncated or corrupt, {fix}") from exc
    digest = hashlib.sha256(raw).hexdigest()
    if digest != sha256:
        raise DataError(
            f"{path}: SHA-256 of its content is {digest[:16]}..., expected {sha256[:16]}...; "
            f"the file is corrupt or not the official release, {fix}"
        )
    return raw


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
