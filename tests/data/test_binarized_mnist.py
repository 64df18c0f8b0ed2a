"""The binarized MNIST of Larochelle and Murray from small .amat files that the tests write: its own
validation split, no labels, pixels kept as they are, and the refusals of files that are not its format."""

import pytest
import torch

from pyro_vae.data import binarized_mnist
from pyro_vae.errors import DataError
from pyro_vae.runs.configuration.builders import load_dataset, pixel_transform
from pyro_vae.runs.tasks.training_run import run_experiment

from ..helpers import compose_config, read_metrics, run_py_refused, tiny_mnist_like, write_amat_files

pytestmark = pytest.mark.usefixtures("single_thread")


def test_amat_files_read_as_images_of_0_and_255_without_labels(tmp_path, monkeypatch):
    content = write_amat_files(tmp_path, monkeypatch)
    splits = binarized_mnist.load_binarized_mnist(str(tmp_path))
    assert {split: len(images) for split, images in splits.items()} == {"train": 64, "val": 32, "test": 32}
    val = splits["val"]
    assert val.images.shape == (32, 1, 28, 28) and val.images.dtype == torch.uint8
    assert torch.equal(val.images.flatten(1), torch.from_numpy(content["val"]) * 255)  # row-major 28x28
    assert val.labels.tolist() == [0] * 32 and all(split.verified for split in splits.values())


def test_its_validation_file_validates_and_binarization_keeps_the_pixels(tmp_path, monkeypatch):
    write_amat_files(tmp_path, monkeypatch)
    cfg = compose_config(tiny_mnist_like("binarized_mnist", tmp_path, "dataset.val_size=16", "dataset.train_size=null"))
    data = load_dataset(cfg, torch.device("cpu"))
    files = binarized_mnist.load_binarized_mnist(str(tmp_path))
    assert torch.equal(data.val.images, files["val"].images[:16])  # the first val_size of the validation file
    assert torch.equal(data.train.images, files["train"].images)  # none of the training file held out
    assert data.class_names == ("unlabelled",)
    transform = pixel_transform(cfg)
    assert torch.equal(transform.fixed(data.test.images, "test"), data.test.images.float() / 255)
    assert torch.equal(transform.training_source(data.train.images), data.train.images.float() / 255)


@pytest.mark.parametrize(
    "line, message",
    [
        ("0 1 0.5 " + "0 " * 781, r"line 3 holds '0\.5'; expected 784 values 0 or 1 separated by spaces"),
        ("0 " * 783 + "2", r"line 3 holds '2'; expected 784 values 0 or 1"),
        ("1 10 " + "0 " * 782, r"line 3 holds '10'; expected 784 values 0 or 1"),
        ("0 " * 783, r"line 3 holds 783 values, expected 784 \(28x28 pixels\)"),
        ("", r"line 3 holds 0 values, expected 784"),
    ],
)
def test_a_file_not_of_784_binary_values_a_line_is_refused(tmp_path, monkeypatch, line, message):
    write_amat_files(tmp_path, monkeypatch)
    path = tmp_path / "binarized_mnist_test.amat"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:2] + [line] + lines[3:]) + "\n")
    for verify in (True, False):  # the format is checked whether or not the release is
        with pytest.raises(DataError, match=rf"binarized_mnist_test\.amat: {message}.*download .* from http://"):
            binarized_mnist.load_binarized_mnist(str(tmp_path), verify=verify)


def test_a_truncated_file_is_refused_unless_verify_is_false(tmp_path, monkeypatch, caplog):
    write_amat_files(tmp_path, monkeypatch)
    path = tmp_path / "binarized_mnist_train.amat"
    path.write_text("\n".join(path.read_text().splitlines()[:50]))
    with pytest.raises(DataError, match=r"train\.amat: holds 50 images, the official file 64; .*dataset\.verify=false"):
        binarized_mnist.load_binarized_mnist(str(tmp_path))
    splits = binarized_mnist.load_binarized_mnist(str(tmp_path), verify=False)
    assert len(splits["train"]) == 50 and not splits["train"].verified and splits["test"].verified
    assert "holds 50 images, the official file 64; not the official release, read as it is" in caplog.text
    path.write_text("")
    with pytest.raises(DataError, match=r"train\.amat: holds no images"):
        binarized_mnist.load_binarized_mnist(str(tmp_path), verify=False)


def test_missing_files_say_which_files_to_put_where(tmp_path):
    with pytest.raises(DataError) as error:
        binarized_mnist.load_binarized_mnist(str(tmp_path))
    assert str(error.value) == (
        f"{tmp_path}/binarized_mnist_train.amat: not found; download binarized_mnist_train.amat, "
        "binarized_mnist_valid.amat, binarized_mnist_test.amat from "
        f"http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/ into {tmp_path}, or set "
        "dataset.download=true on a networked machine"
    )
    with pytest.raises(DataError, match=r"dataset\.root=null: binarized MNIST is not shipped"):
        binarized_mnist.load_binarized_mnist(None)


def test_download_fetches_each_missing_file_without_a_checksum(tmp_path, monkeypatch):
    source = tmp_path / "source"
    write_amat_files(source, monkeypatch)
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "binarized_mnist_valid.amat").write_bytes((source / "binarized_mnist_valid.amat").read_bytes())
    calls = []

    def fake_download_url(url, root, filename, md5):
        assert md5 is None  # none is published
        calls.append(url)
        (tmp_path / "data" / filename).write_bytes((source / filename).read_bytes())

    monkeypatch.setattr("torchvision.datasets.utils.download_url", fake_download_url)
    assert len(binarized_mnist.load_binarized_mnist(str(tmp_path / "data"), download=True)["train"]) == 64
    assert calls == [f"{binarized_mnist.URL}binarized_mnist_{split}.amat" for split in ("train", "test")]


def test_binarized_mnist_run_end_to_end(tmp_path, monkeypatch):
    """The whole pipeline in-process, so that the small files' line counts can be patched in as the official."""
    write_amat_files(tmp_path / "data", monkeypatch)
    run_experiment(compose_config(tiny_mnist_like("binarized_mnist", tmp_path / "data")), tmp_path / "run")
    metrics = read_metrics(tmp_path / "run")
    assert metrics["dataset"] == "binarized_mnist" and metrics["data_verified"] is True
    assert metrics["test_elbo"] < 0 and metrics["epochs_completed"] == 1


@pytest.mark.slow  # a process
def test_run_py_without_the_files_says_where_to_put_them(tmp_path):
    line = run_py_refused("dataset=binarized_mnist", f"dataset.root={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}")
    assert line.endswith(
        f"binarized_mnist_train.amat: not found; download binarized_mnist_train.amat, "
        "binarized_mnist_valid.amat, binarized_mnist_test.amat from "
        f"http://www.cs.toronto.edu/~larocheh/public/datasets/binarized_mnist/ into {tmp_path}, or set "
        "dataset.download=true on a networked machine"
    )
    assert not (tmp_path / "run" / "metrics.json").exists()
