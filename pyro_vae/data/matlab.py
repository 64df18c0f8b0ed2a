"""Read a MATLAB v5 file of plain arrays (Omniglot's chardata.mat, SVHN's .mat files) with scipy, which
parses the arrays and unpickles nothing: a file that is not the official one is safe to read."""

import io
import zipfile
from pathlib import Path
from typing import Optional

from ..errors import DataError


def read_mat(path: Path, fix: str, raw: Optional[bytes] = None) -> dict:
    """The variables of the MATLAB file ``path`` (or of its bytes ``raw``, read already to check a digest)
    by name; a damaged file raises DataError ending with ``fix``."""
    from scipy.io import loadmat
    from scipy.io.matlab import MatReadError

    try:
        return loadmat(io.BytesIO(raw) if raw is not None else str(path))
    except (MatReadError, ValueError, TypeError, OSError, EOFError, zipfile.BadZipFile, NotImplementedError) as exc:
        raise DataError(f"{path}: not a readable MATLAB file ({exc}); the file is truncated or corrupt, {fix}") from exc
