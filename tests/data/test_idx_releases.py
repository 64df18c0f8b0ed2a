"""Fashion-MNIST and KMNIST, read by MNIST's IDX code from small gzipped IDX files that the tests write
(their digests patched in as the official ones: Fashion-MNIST's content SHA-256s, KMNIST's .gz MD5s), and
``dataset.verify=false`` on files that are not. Verification by content, Debian's Fashion-MNIST and the
folder it is read from: test_idx_content.py."""

import gzip
import logging
import shutil

import pytest
import torch
import torchvision

from pyro_vae.data import fashion_mnist, kmnist, mnist
from pyro_vae.data.idx import IdxFile
from pyro_vae.errors import DataError
from pyro_vae.runs.tasks.training_run import run_experiment

from ..helpers import compose_config, idx_bytes, md5, read_metrics, run_py, tiny_mnist_like, write_idx_release

pytestmark = pytest.mark.usefixtures("single_thread")

RELEASES = {
    "fashion_mnist": (fashion_mnist, torchvision.datasets.FashionMNIST),
    "kmnist": (kmnist, torchvision.datasets.KMNIST),
}


@pytest.mark.parametrize("name", RELEASES)
def test_checksums_mirrors_and_classes_are_torchvisions(name):
    module, published = RELEASES[name]
    release = module.RELEASE
    assert release.mirrors == tuple(published.mirrors) and release.folder == published.__name__
    assert {f"{file}.gz": spec.gz_md5 for file, spec in release.files.items()} == dict(published.resources)
    assert module.READER.class_names == tuple(published.classes)
    assert module.READER.image_shape == (1, 28, 28) and module.READER.labelled


@pytest.mark.parametrize("name", RELEASES)
def test_release_reads_images_and_labels_verified(tmp_path, monkeypatch, name):
    release = RELEASES[name][0].RELEASE
    content = write_idx_release(tmp_path, release, monkeypatch)
    splits = release.load(str(tmp_path))
    assert splits["train"].images.shape == (96, 1, 28, 28) and splits["test"].images.dtype == torch.uint8
    assert torch.equal(splits["test"].images[:, 0], content["t10k-images-idx3-ubyte"].to(torch.uint8))
    assert torch.equal(splits["train"].labels, content["train-labels-idx1-ubyte"])
    assert splits["train"].verified and splits["test"].verified


def test_torchvision_layout_is_found(tmp_path, monkeypatch):
    write_idx_release(tmp_path / "KMNIST" / "raw", kmnist.RELEASE, monkeypatch)
    assert len(kmnist.RELEASE.load(str(tmp_path))["test"]) == 32


def test_missing_files_say_which_files_to_put_where(tmp_path):
    with pytest.raises(DataError) as error:
        fashion_mnist.RELEASE.load(str(tmp_path))
    message = str(error.value)
    assert message.startswith(f"{tmp_path}/train-images-idx3-ubyte.gz: file not found; put the official Fashion-MNIST")
    assert "t10k-labels-idx1-ubyte.gz" in message and f"{tmp_path}/FashionMNIST/raw" in message
    assert "http://fashion-mnist.s3-website" in message and "dataset.download=true" in message and "\n" not in message
    with pytest.raises(DataError, match=r"dataset\.root=null: KMNIST is not shipped with pyro-vae; set dataset\.root"):
        kmnist.RELEASE.load(None)


def test_damaged_file_is_refused_by_its_md5(tmp_path, monkeypatch):
    write_idx_release(tmp_path, kmnist.RELEASE, monkeypatch)
    target = tmp_path / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(target.read_bytes())
    raw[len(raw) // 2] ^= 1
    target.write_bytes(bytes(raw))
    with pytest.raises(
        DataError, match=r"t10k-images-idx3-ubyte\.gz: MD5 is .*not the official release, .*verify=false"
    ):
        kmnist.RELEASE.load(str(tmp_path))


def test_uncompressed_copy_cannot_be_checked_against_the_published_md5(tmp_path, monkeypatch):
    """KMNIST only: no content digest is known for it (Fashion-MNIST's uncompressed copy verifies by content)."""
    write_idx_release(tmp_path, kmnist.RELEASE, monkeypatch)
    target = tmp_path / "train-labels-idx1-ubyte"
    target.write_bytes(gzip.decompress((tmp_path / "train-labels-idx1-ubyte.gz").read_bytes()))
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(
        DataError, match=r"train-labels-idx1-ubyte: the published MD5 is of train-labels-idx1-ubyte\.gz"
    ):
        kmnist.RELEASE.load(str(tmp_path))
    assert not kmnist.RELEASE.load(str(tmp_path), verify=False)["train"].verified


def test_labels_beyond_the_classes_are_refused(tmp_path, monkeypatch):
    content = write_idx_release(tmp_path, fashion_mnist.RELEASE, monkeypatch)
    content["t10k-labels-idx1-ubyte"][3] = 10
    gz = gzip.compress(idx_bytes(content["t10k-labels-idx1-ubyte"]))
    (tmp_path / "t10k-labels-idx1-ubyte.gz").write_bytes(gz)
    monkeypatch.setitem(fashion_mnist.RELEASE.files, "t10k-labels-idx1-ubyte", IdxFile(md5(gz)))
    with pytest.raises(DataError, match=r"Fashion-MNIST test labels reach 10, expected 0 to 9"):
        fashion_mnist.RELEASE.load(str(tmp_path))


def test_download_goes_through_torchvision_with_the_published_md5(tmp_path, monkeypatch):
    source = tmp_path / "source"
    write_idx_release(source, kmnist.RELEASE, monkeypatch)
    calls = []

    def fake_download_url(url, root, filename, md5):
        calls.append((url, md5))
        shutil.copy(source / filename, f"{root}/{filename}")

    monkeypatch.setattr("torchvision.datasets.utils.download_url", fake_download_url)
    (tmp_path / "data").mkdir()
    assert len(kmnist.RELEASE.load(str(tmp_path / "data"), download=True)["train"]) == 96
    assert [url for url, _ in calls] == [
        f"http://codh.rois.ac.jp/kmnist/dataset/kmnist/{name}.gz" for name in kmnist.RELEASE.files
    ]
    assert [md5 for _, md5 in calls] == [spec.gz_md5 for spec in kmnist.RELEASE.files.values()]


def test_verify_false_reads_a_modified_mnist_with_a_warning(tmp_path, caplog):
    for gz in mnist.SHIPPED_ROOT.glob("*.gz"):
        shutil.copy(gz, tmp_path / gz.name)
    target = tmp_path / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress(target.read_bytes()))
    raw[-1] ^= 0xFF  # one pixel of the last test image
    target.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=r"t10k-images-idx3-ubyte\.gz: SHA-256 .* or set dataset\.verify=false"):
        mnist.load_mnist(str(tmp_path))
    with caplog.at_level(logging.WARNING):
        splits = mnist.load_mnist(str(tmp_path), verify=False)
    assert splits["train"].verified and not splits["test"].verified
    assert splits["test"].images[-1, 0, -1, -1] == raw[-1]
    (warning,) = [record.getMessage() for record in caplog.records]
    assert warning.startswith(f"{target}: SHA-256 of its content is ") and "dataset.verify=false" in warning


def test_verify_false_still_refuses_what_is_not_idx(tmp_path):
    write_idx_release(tmp_path, kmnist.RELEASE)
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(b"\x00\x00\x0d\x03" + bytes(12)))
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: not an IDX file of unsigned bytes"):
        kmnist.RELEASE.load(str(tmp_path), verify=False)


def test_kmnist_run_on_verified_files(tmp_path, monkeypatch):
    """The whole pipeline in-process, so that the small files' MD5s can be patched in."""
    write_idx_release(tmp_path / "data", kmnist.RELEASE, monkeypatch)
    run_experiment(compose_config(tiny_mnist_like("kmnist", tmp_path / "data")), tmp_path / "run")
    metrics = read_metrics(tmp_path / "run")
    assert metrics["dataset"] == "kmnist" and metrics["data_verified"] is True and metrics["epochs_completed"] == 1


@pytest.mark.slow  # a process
def test_fashion_mnist_run_through_run_py_on_unofficial_files_with_verify_false(tmp_path):
    write_idx_release(tmp_path / "data", fashion_mnist.RELEASE)  # their content is not the official one
    result = run_py(
        *tiny_mnist_like("fashion_mnist", tmp_path / "data", "dataset.verify=false"),
        f"hydra.run.dir={tmp_path / 'run'}",
    )
    metrics = read_metrics(tmp_path / "run")
    assert metrics["dataset"] == "fashion_mnist" and metrics["data_verified"] is False
    warning = "train-images-idx3-ubyte.gz: SHA-256 of its content is "
    assert (
        warning in result.stderr and "not the official release, read as it is (dataset.verify=false)" in result.stderr
    )
    assert warning in (tmp_path / "run" / "run.log").read_text()


def test_images_that_are_not_28x28_are_refused(tmp_path, monkeypatch):
    write_idx_release(tmp_path, fashion_mnist.RELEASE, monkeypatch)
    gz = gzip.compress(idx_bytes(torch.zeros(32, 32, 32)))
    (tmp_path / "t10k-images-idx3-ubyte.gz").write_bytes(gz)
    monkeypatch.setitem(fashion_mnist.RELEASE.files, "t10k-images-idx3-ubyte", IdxFile(md5(gz)))
    with pytest.raises(
        DataError, match=r"Fashion-MNIST test images \(32, 32, 32\) do not match .*expected \(N, 28, 28\)"
    ):
        fashion_mnist.RELEASE.load(str(tmp_path))
