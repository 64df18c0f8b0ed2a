"""Write files so that a crash never leaves a half-written output behind.

Every output of a run goes through :func:`atomic_path`: the content is written to a
temporary file in the same folder, flushed to the disk (fsync), and renamed over the target
only once complete; the folder is then fsynced too, so that after a power cut the name points
at the whole new file or at the whole old one.
"""

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, Union

from .errors import OutputError

PathLike = Union[str, os.PathLike]


@contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; rename it onto ``path`` if the block succeeds.

    A failure of the file system (a full disk, a read-only folder) becomes a one-line
    :class:`OutputError`; the temporary file is removed and the old file left as it was.
    """
    target = Path(path)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix, dir=target.parent)
        os.close(fd)
    except OSError as exc:
        raise _output_error(target, exc) from exc
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes owner-only files; give the usual permissions
        _fsync(tmp, os.O_RDONLY)
        os.replace(tmp, target)
        if hasattr(os, "O_DIRECTORY"):  # POSIX: make the rename itself durable
            _fsync(target.parent, os.O_RDONLY | os.O_DIRECTORY)
    except OSError as exc:
        raise _output_error(target, exc) from exc
    finally:
        tmp.unlink(missing_ok=True)


def _output_error(target: Path, exc: OSError) -> OutputError:
    return OutputError(
        f"{target}: could not be written ({exc.strerror or exc}); the previous version, if any, is intact; "
        "free disk space or choose another hydra.run.dir, then resume=true"
    )


def _fsync(path: Path, flags: int) -> None:
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_text(path: PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def write_json(path: PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True) + "\n")


def save_torch(obj: Any, path: PathLike) -> None:
    import torch  # here, not above: the callbacks write their JSON while run.py reads its command line

    with atomic_path(path) as tmp:
        try:
            torch.save(obj, tmp)
        except RuntimeError as exc:  # torch's zip writer reports a failed write (a full disk) this way
            free = shutil.disk_usage(tmp.parent).free
            raise OSError(f"torch.save failed, with {free / 2**20:.1f} MiB free on that file system") from exc
