"""IDX files verified by the SHA-256 of their decompressed content (MNIST, Fashion-MNIST), whatever their
compression; KMNIST's fallback to the published .gz MD5; Debian's Fashion-MNIST, read for real where the
package is installed and found without ``dataset.root``."""

import gzip
import hashlib
import logging
import shutil
from pathlib import Path

import pytest
import torch

from pyro_vae.data import fashion_mnist, kmnist, mnist
from pyro_vae.data.idx import DEFAULT_ROOT
from pyro_vae.errors import DataError
from pyro_vae.runs.tasks.training_run import run_experiment

from ..helpers import compose_config, idx_bytes, md5, read_metrics, tiny_mnist_like, write_idx_release

pytestmark = pytest.mark.usefixtures("single_thread")

DEBIAN = fashion_mnist.DEBIAN_FOLDER
DEBIAN_INSTALLED = all((DEBIAN / f"{name}.gz").is_file() for name in fashion_mnist.RELEASE.files)
NEEDS_DEBIAN = pytest.mark.skipif(
    not DEBIAN_INSTALLED,
    reason=f"Debian's package dataset-fashion-mnist is not installed ({DEBIAN} lacks its files; "
    "apt-get install dataset-fashion-mnist); the stand-in tests of this module cover the check",
)
REFERENCE_LEVEL = 9  # write_idx_release's gzip level: the .gz whose MD5 is patched in as the published one


def sha256(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def write_content(path: Path, raw: bytes, level) -> None:
    """``raw`` in ``path``: gzipped at ``level``, or as it is where ``level`` is None."""
    if level is None:
        path.with_suffix("").write_bytes(raw)
    else:
        path.write_bytes(gzip.compress(raw, compresslevel=level, mtime=0))


def official_copy(name: str, root: Path, monkeypatch, level) -> dict:
    """The four files of release ``name`` in ``root``, of official content, compressed at ``level`` (None:
    uncompressed) where the reference .gz is not: MNIST's real content (the copy shipped with pyro-vae);
    for Fashion-MNIST a stand-in whose content SHA-256s (and level-9 .gz MD5s) are patched in as the official
    ones. Returns the content by file name."""
    root.mkdir(parents=True, exist_ok=True)
    if name == "mnist":
        content = {gz.name[:-3]: gzip.decompress(gz.read_bytes()) for gz in mnist.SHIPPED_ROOT.glob("*.gz")}
    else:
        tensors = write_idx_release(root / "reference", fashion_mnist.RELEASE, monkeypatch)
        content = {file: idx_bytes(tensor) for file, tensor in tensors.items()}
    for file, raw in content.items():
        write_content(root / f"{file}.gz", raw, level)
    return content


@pytest.mark.parametrize("level", [1, 5, None], ids=["gzip-1", "gzip-5", "uncompressed"])
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_official_content_verifies_whatever_its_compression(tmp_path, monkeypatch, name, level):
    release = {"mnist": mnist.RELEASE, "fashion_mnist": fashion_mnist.RELEASE}[name]
    content = official_copy(name, tmp_path / "data", monkeypatch, level)
    for file, spec in release.files.items():
        assert spec.content_sha256 == sha256(content[file])
        stored = tmp_path / "data" / (f"{file}.gz" if level else file)
        assert md5(stored.read_bytes()) != spec.gz_md5  # so only the content can have matched
    splits = release.load(str(tmp_path / "data"))
    assert splits["train"].verified and splits["test"].verified
    assert splits["test"].images[:, 0].flatten().numpy().tobytes() == content["t10k-images-idx3-ubyte"][16:]


@pytest.mark.parametrize("name", ["mnist", "fashion_mnist"])
def test_one_altered_content_byte_is_refused_naming_the_file_and_both_digests(tmp_path, monkeypatch, name, caplog):
    release = {"mnist": mnist.RELEASE, "fashion_mnist": fashion_mnist.RELEASE}[name]
    content = official_copy(name, tmp_path, monkeypatch, 1)
    altered = bytearray(content["t10k-images-idx3-ubyte"])
    altered[-1] ^= 0x01  # the last pixel of the last test image
    target = tmp_path / "t10k-images-idx3-ubyte.gz"
    write_content(target, bytes(altered), 1)
    found, expected = sha256(bytes(altered)), release.files["t10k-images-idx3-ubyte"].content_sha256
    with pytest.raises(DataError) as refused:
        release.load(str(tmp_path))
    message = str(refused.value)
    assert message.startswith(
        f"{target}: SHA-256 of its content is {found[:16]}..., expected {expected[:16]}...; the file is corrupt "
        "or not the official release, put the official"
    )
    assert message.endswith("or set dataset.verify=false to use your own files") and "\n" not in message
    with caplog.at_level(logging.WARNING):
        splits = release.load(str(tmp_path), verify=False)
    assert splits["train"].verified and not splits["test"].verified
    assert splits["test"].images[-1, 0, -1, -1] == altered[-1]
    (warning,) = [record.getMessage() for record in caplog.records]
    assert warning.startswith(f"{target}: SHA-256 of its content is {found[:16]}...")


def test_kmnist_knows_no_content_digest_and_falls_back_to_the_published_gz_md5(tmp_path, monkeypatch):
    assert all(spec.content_sha256 is None for spec in kmnist.RELEASE.files.values())
    tensors = write_idx_release(tmp_path, kmnist.RELEASE, monkeypatch)  # level 9, its MD5s patched in
    assert kmnist.RELEASE.load(str(tmp_path))["test"].verified
    target = tmp_path / "t10k-labels-idx1-ubyte.gz"
    write_content(target, idx_bytes(tensors["t10k-labels-idx1-ubyte"]), 1)  # the same content, gzipped otherwise
    found, expected = md5(target.read_bytes()), kmnist.RELEASE.files["t10k-labels-idx1-ubyte"].gz_md5
    with pytest.raises(DataError) as refused:
        kmnist.RELEASE.load(str(tmp_path))
    assert str(refused.value).startswith(f"{target}: MD5 is {found[:12]}..., expected {expected[:12]}...; ")


@NEEDS_DEBIAN
def test_debian_fashion_mnist_is_read_verified():
    splits = fashion_mnist.RELEASE.load(str(DEBIAN))  # verify=True: by content, Debian's .gz bytes differ
    train, test = splits["train"], splits["test"]
    assert train.verified and test.verified
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    assert torch.bincount(train.labels).tolist() == [6000] * 10 and torch.bincount(test.labels).tolist() == [1000] * 10


@pytest.fixture
def debian_stand_in(tmp_path, monkeypatch):
    """A folder of written Fashion-MNIST files (their digests patched in) as Debian's folder, and an empty
    current directory, so that the default root ``data`` holds nothing. Returns the tensors by name."""
    content = write_idx_release(tmp_path / "debian", fashion_mnist.RELEASE, monkeypatch)
    monkeypatch.setattr(fashion_mnist.RELEASE.system_copy, "folder", tmp_path / "debian")
    (tmp_path / "cwd").mkdir()
    monkeypatch.chdir(tmp_path / "cwd")
    return content


def test_debian_folder_is_read_when_the_default_root_holds_none_of_the_files(tmp_path, debian_stand_in, caplog):
    with caplog.at_level(logging.INFO, logger="pyro_vae.data.idx"):
        splits = fashion_mnist.READER.load(str(DEFAULT_ROOT), False, True)
    assert splits["train"].verified and splits["test"].verified
    assert torch.equal(splits["train"].labels, debian_stand_in["train-labels-idx1-ubyte"])
    assert [record.getMessage() for record in caplog.records] == [
        f"Fashion-MNIST: data holds none of its files; reading {tmp_path / 'debian'} "
        "(Debian's package dataset-fashion-mnist)"
    ]


def test_a_default_root_holding_any_of_the_files_is_read_not_the_debian_folder(tmp_path, debian_stand_in):
    shutil.copytree(tmp_path / "debian", tmp_path / "cwd" / "data" / "FashionMNIST" / "raw")
    (tmp_path / "cwd" / "data" / "FashionMNIST" / "raw" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as refused:  # data/ holds three of the four: read, and the fourth is missing
        fashion_mnist.RELEASE.load("data")
    message = str(refused.value)
    assert message.startswith("data/t10k-labels-idx1-ubyte.gz: file not found; put the official Fashion-MNIST")
    assert f"Debian's package dataset-fashion-mnist puts them in {tmp_path / 'debian'}" in message


def test_a_root_of_your_own_is_read_as_it_is_never_the_debian_folder(tmp_path, debian_stand_in):
    (tmp_path / "mine").mkdir()
    with pytest.raises(DataError, match=rf"^{tmp_path / 'mine'}/train-images-idx3-ubyte\.gz: file not found"):
        fashion_mnist.RELEASE.load(str(tmp_path / "mine"))
    with pytest.raises(DataError, match=r"dataset\.root=null: Fashion-MNIST is not shipped"):
        fashion_mnist.RELEASE.load(None)


def test_fashion_mnist_run_without_dataset_root_reads_the_debian_folder(tmp_path, debian_stand_in):
    overrides = [o for o in tiny_mnist_like("fashion_mnist", DEFAULT_ROOT) if not o.startswith("dataset.root=")]
    cfg = compose_config(overrides)
    assert cfg.dataset.root == str(DEFAULT_ROOT)  # the reader's default, which the fallback follows
    run_experiment(cfg, tmp_path / "run")
    metrics = read_metrics(tmp_path / "run")
    assert metrics["dataset"] == "fashion_mnist" and metrics["data_verified"] is True
