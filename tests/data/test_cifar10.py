"""CIFAR-10 loading from small archives in the official format, with their checksums patched in."""

import io
import pickle
import tarfile

import numpy as np
import pytest
import torch

from pyro_vae.data import cifar10
from pyro_vae.errors import ConfigError, DataError

from ..helpers import CIFAR10_BATCHES, CIFAR10_PER_BATCH, cifar10_batch_pickle, md5, write_cifar10_archive


def extract(root):
    with tarfile.open(root / "cifar-10-python.tar.gz") as archive:
        archive.extractall(root, filter="data")
    (root / "cifar-10-python.tar.gz").unlink()


def repack(root, level, altered=None):
    """Replace the reference archive written by write_cifar10_archive (gzip level 9, its MD5 patched in as the
    published one) with its members gzipped at ``level``, or as a plain cifar-10-python.tar where ``level``
    is None; ``altered`` maps a batch's name to the bytes stored instead. Returns the new archive and its
    members."""
    reference = root / "cifar-10-python.tar.gz"
    with tarfile.open(reference) as archive:
        members = {info.name: archive.extractfile(info).read() for info in archive}
    reference.unlink()
    members.update({f"cifar-10-batches-py/{name}": raw for name, raw in (altered or {}).items()})
    path = root / ("cifar-10-python.tar" if level is None else "cifar-10-python.tar.gz")
    options = {"mode": "w"} if level is None else {"mode": "w:gz", "compresslevel": level}
    with tarfile.open(path, **options) as archive:
        for name, raw in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            archive.addfile(info, io.BytesIO(raw))
    return path, members


def test_archive_loads_pixels_in_plane_layout_and_batches_in_order(tmp_path, monkeypatch):
    content = write_cifar10_archive(tmp_path, monkeypatch)
    splits = cifar10.load_cifar10(str(tmp_path))
    train, test = splits["train"], splits["test"]
    assert train.images.shape == (5 * CIFAR10_PER_BATCH, 3, 32, 32) and test.images.shape == (
        CIFAR10_PER_BATCH,
        3,
        32,
        32,
    )
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    data, labels = content["data_batch_2"]
    image = train.images[CIFAR10_PER_BATCH + 1]  # the second image of the second batch
    row = data[1]
    # A row is the 1024 red values, then green, then blue, each plane row-major over 32x32.
    assert image[0, 0, 0] == row[0] and image[0, 0, 31] == row[31] and image[0, 1, 0] == row[32]
    assert image[1, 0, 0] == row[1024] and image[2, 31, 31] == row[3071]
    expected_train = np.concatenate([content[name][0] for name in CIFAR10_BATCHES[:5]]).reshape(-1, 3, 32, 32)
    assert torch.equal(train.images, torch.from_numpy(expected_train))
    assert train.labels.tolist() == sum((content[name][1] for name in CIFAR10_BATCHES[:5]), [])
    assert torch.equal(test.images, torch.from_numpy(content["test_batch"][0].reshape(-1, 3, 32, 32)))
    assert test.labels.tolist() == content["test_batch"][1]


def test_extracted_folder_gives_the_same_tensors(tmp_path, monkeypatch):
    write_cifar10_archive(tmp_path, monkeypatch)
    from_archive = cifar10.load_cifar10(str(tmp_path))
    extract(tmp_path)
    from_folder = cifar10.load_cifar10(str(tmp_path))
    for split in ("train", "test"):
        assert torch.equal(from_folder[split].images, from_archive[split].images)
        assert torch.equal(from_folder[split].labels, from_archive[split].labels)


@pytest.mark.parametrize("level", [1, None], ids=["gzip-1", "uncompressed"])
def test_official_batches_verify_whatever_the_archive_compression(tmp_path, monkeypatch, level):
    content = write_cifar10_archive(tmp_path, monkeypatch)
    path, members = repack(tmp_path, level)
    for name in CIFAR10_BATCHES:
        assert md5(members[f"cifar-10-batches-py/{name}"]) == cifar10.BATCH_MD5[name]
    assert md5(path.read_bytes()) != cifar10.ARCHIVE_MD5  # so only the batches' content can have matched
    splits = cifar10.load_cifar10(str(tmp_path))
    assert splits["test"].labels.tolist() == content["test_batch"][1]
    assert torch.equal(splits["test"].images, torch.from_numpy(content["test_batch"][0].reshape(-1, 3, 32, 32)))


@pytest.mark.parametrize("level", [9, None], ids=["gzip-9", "uncompressed"])
def test_altered_batch_is_refused_before_unpickling_naming_member_and_digests(tmp_path, monkeypatch, level):
    pixels, labels = write_cifar10_archive(tmp_path, monkeypatch)["data_batch_3"]
    pixels = pixels.copy()
    pixels[0, 0] ^= 0x01  # one pixel of a well-formed batch
    path, members = repack(
        tmp_path, level, altered={"data_batch_3": cifar10_batch_pickle(pixels, labels, "data_batch_3")}
    )
    loads = pickle.loads
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled an unverified batch"))
    found, expected = md5(members["cifar-10-batches-py/data_batch_3"]), cifar10.BATCH_MD5["data_batch_3"]
    with pytest.raises(DataError) as refused:
        cifar10.load_cifar10(str(tmp_path))
    message = str(refused.value)
    assert message.startswith(
        f"{path}:cifar-10-batches-py/data_batch_3: MD5 is {found[:12]}..., expected {expected[:12]}...; "
        f"the file is corrupt or not the official release, delete it and download {cifar10.URL} into {tmp_path}"
    )
    assert message.endswith("or set dataset.download=true on a networked machine") and "\n" not in message
    monkeypatch.setattr(pickle, "loads", loads)  # its digest taken as official, the altered batch reads
    monkeypatch.setitem(cifar10.BATCH_MD5, "data_batch_3", found)
    first = cifar10.load_cifar10(str(tmp_path))["train"].images[2 * CIFAR10_PER_BATCH].flatten()[0]
    assert first == pixels[0, 0]


def test_corrupt_extracted_batch_is_named(tmp_path, monkeypatch):
    write_cifar10_archive(tmp_path, monkeypatch)
    extract(tmp_path)
    target = tmp_path / "cifar-10-batches-py" / "data_batch_3"
    raw = bytearray(target.read_bytes())
    raw[200] ^= 1
    target.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"cifar-10-batches-py/data_batch_3: MD5 is .*delete it"):
        cifar10.load_cifar10(str(tmp_path))


def test_truncated_archive_is_refused(tmp_path, monkeypatch):
    write_cifar10_archive(tmp_path, monkeypatch)
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(path.read_bytes()[:-200])
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled a truncated archive's batch"))
    with pytest.raises(DataError) as refused:
        cifar10.load_cifar10(str(tmp_path))
    message = str(refused.value)
    assert message.startswith(f"{path}: not a readable tar.gz (") and "the file is truncated or corrupt" in message
    assert "\n" not in message


def test_undecompressable_archive_is_refused_in_one_line(tmp_path, monkeypatch):
    write_cifar10_archive(tmp_path, monkeypatch)
    path = tmp_path / "cifar-10-python.tar.gz"
    path.write_bytes(b"\x1f\x8b" + b"not deflate data" * 64)
    with pytest.raises(DataError) as refused:
        cifar10.load_cifar10(str(tmp_path))
    message = str(refused.value)
    assert message.startswith(f"{path}: not a readable tar.gz (") and "truncated or corrupt" in message
    assert "\n" not in message


def test_missing_data_says_where_to_put_it(tmp_path):
    with pytest.raises(DataError) as error:
        cifar10.load_cifar10(str(tmp_path))
    message = str(error.value)
    assert message.startswith(f"{tmp_path}/cifar-10-python.tar.gz: not found; download {cifar10.URL} into {tmp_path}")
    assert "cifar-10-batches-py/" in message and "dataset.download=true" in message and "\n" not in message
    with pytest.raises(DataError, match=r"dataset\.root=null: .*set dataset\.root"):
        cifar10.load_cifar10(None)


def test_download_fetches_the_official_archive_through_torchvision(tmp_path, monkeypatch):
    """No network here: torchvision's download_url is replaced by writing the small archive."""
    source = tmp_path / "source"
    source.mkdir()
    content = write_cifar10_archive(source, monkeypatch)
    calls = []

    def fake_download_url(url, root, filename, md5):
        calls.append((url, root, filename, md5))
        (tmp_path / "data" / filename).parent.mkdir()
        (tmp_path / "data" / filename).write_bytes((source / filename).read_bytes())

    monkeypatch.setattr("torchvision.datasets.utils.download_url", fake_download_url)
    splits = cifar10.load_cifar10(str(tmp_path / "data"), download=True)
    assert calls == [
        (
            "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz",
            str(tmp_path / "data"),
            "cifar-10-python.tar.gz",
            cifar10.ARCHIVE_MD5,
        )
    ]
    assert splits["test"].labels.tolist() == content["test_batch"][1]
    cifar10.load_cifar10(str(tmp_path / "data"), download=True)
    assert len(calls) == 1  # present data is not fetched again


def test_download_failure_is_a_data_error(tmp_path, monkeypatch):
    def failing_download_url(url, root, filename, md5):
        raise OSError("network unreachable")

    monkeypatch.setattr("torchvision.datasets.utils.download_url", failing_download_url)
    with pytest.raises(DataError, match=r"could not download .*cifar-10-python\.tar\.gz .*network unreachable"):
        cifar10.load_cifar10(str(tmp_path), download=True)


@pytest.mark.parametrize(
    "bad, message",
    [
        (
            cifar10_batch_pickle(np.zeros((4, 3000), np.uint8), [0] * 4, "x"),
            r"b'data' is uint8 \(4, 3000\), expected uint8",
        ),
        (
            cifar10_batch_pickle(np.zeros((4, 3072), np.uint8), [0] * 3, "x"),
            r"b'labels' is int64 \(3,\), expected 4 integers",
        ),
        (
            cifar10_batch_pickle(np.zeros((4, 3072), np.uint8), [0, 1, 2, 10], "x"),
            r"labels range from 0 to 10, expected 0 to 9",
        ),
        (pickle.dumps({b"images": np.zeros((4, 3072), np.uint8)}, protocol=2), r"expected a dict with keys b'data'"),
        (b"not a pickle", r"not a readable CIFAR-10 batch pickle"),
    ],
)
def test_malformed_batch_is_named(tmp_path, monkeypatch, bad, message):
    write_cifar10_archive(tmp_path, monkeypatch, replace={"data_batch_4": bad})
    with pytest.raises(DataError, match=rf"cifar-10-python\.tar\.gz:cifar-10-batches-py/data_batch_4: {message}"):
        cifar10.load_cifar10(str(tmp_path))
    extract(tmp_path)
    with pytest.raises(DataError, match=rf"cifar-10-batches-py/data_batch_4: {message}"):
        cifar10.load_cifar10(str(tmp_path))


def test_archive_without_a_batch_is_refused(tmp_path, monkeypatch):
    write_cifar10_archive(tmp_path, monkeypatch)
    monkeypatch.setattr(cifar10, "BATCH_MD5", {**cifar10.BATCH_MD5, "data_batch_6": "0" * 32})
    with pytest.raises(DataError, match=r"tar\.gz: holds no file cifar-10-batches-py/data_batch_6"):
        cifar10.load_cifar10(str(tmp_path))


def test_verify_false_is_refused_before_any_file_is_read(tmp_path, monkeypatch):
    write_cifar10_archive(tmp_path, monkeypatch)
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled with dataset.verify=false"))
    with pytest.raises(ConfigError, match=r"dataset\.verify=false: CIFAR-10's batches are Python pickles"):
        cifar10.load_cifar10(str(tmp_path), verify=False)
