"""What every reader says and does about files it does not ship: where to put them, and fetching
one with torchvision's downloader, a failure of which is one line."""

from pathlib import Path
from typing import Optional

from ..errors import DataError


def not_shipped(title: str, files: str) -> DataError:
    """The refusal of ``dataset.root=null`` for a data set that pyro-vae does not ship."""
    return DataError(
        f"dataset.root=null: {title} is not shipped with pyro-vae; set dataset.root to the folder holding {files}, "
        "with dataset.download=true to fetch them there"
    )


def fetch(url: str, root: Path, filename: str, md5: Optional[str] = None) -> None:
    """Download ``url`` into ``root/filename`` (checked against ``md5`` where one is published)."""
    from torchvision.datasets.utils import download_url

    try:
        download_url(url, str(root), filename=filename, md5=md5)
    except Exception as exc:  # any network or integrity failure
        raise DataError(
            f"could not download {url} into {root} ({exc}); check the network or copy the file there"
        ) from exc
