"""SVHN from small train_32x32.mat and test_32x32.mat files in the official layout (``X`` (32, 32, 3, N)
uint8, ``y`` (N, 1) digits 1 to 10) that the tests write, torchvision's MD5s patched to match them."""

import numpy as np
import pytest
import scipy.io
import torch

from pyro_vae.data import svhn
from pyro_vae.errors import DataError
from pyro_vae.runs.configuration.builders import load_dataset
from pyro_vae.runs.tasks.training_run import run_experiment

from ..helpers import compose_config, md5, read_metrics, run_py_refused, tiny_mnist_like

pytestmark = pytest.mark.usefixtures("single_thread")


def write_svhn(root, monkeypatch, counts=(("train", 80), ("test", 40)), **replace) -> dict:
    """The two .mat files in ``root``, random pixels and digits (``replace``: split -> variables written
    instead), their MD5s patched in as torchvision's. Returns the variables of each split."""
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    content = {}
    for split, n in counts:
        content[split] = replace.get(split) or {
            "X": rng.integers(0, 256, (32, 32, 3, n), dtype=np.uint8),
            "y": rng.integers(1, 11, (n, 1)).astype(np.uint8),
        }
        url, name, _ = svhn.FILES[split]
        scipy.io.savemat(str(root / name), content[split])
        monkeypatch.setitem(svhn.FILES, split, (url, name, md5((root / name).read_bytes())))
    return content


def test_images_are_channels_first_and_label_10_is_the_digit_0(tmp_path, monkeypatch):
    content = write_svhn(tmp_path, monkeypatch)
    splits = svhn.load_svhn(str(tmp_path))
    train = splits["train"]
    assert train.images.shape == (80, 3, 32, 32) and splits["test"].images.shape == (40, 3, 32, 32)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    X, y = content["train"]["X"], content["train"]["y"][:, 0]
    assert train.images[7, 2, 5, 9] == X[5, 9, 2, 7]  # image 7, blue, row 5, column 9
    assert torch.equal(train.images, torch.from_numpy(X.transpose(3, 2, 0, 1).copy()))
    assert train.labels.tolist() == [0 if digit == 10 else int(digit) for digit in y] and 10 in y
    assert all(split.verified for split in splits.values())


def test_a_damaged_file_is_refused_by_its_md5_unless_verify_is_false(tmp_path, monkeypatch, caplog):
    write_svhn(tmp_path, monkeypatch)
    monkeypatch.setitem(svhn.FILES, "test", (*svhn.FILES["test"][:2], "0" * 32))
    with pytest.raises(DataError, match=r"test_32x32\.mat: MD5 is .*, expected 000000.*dataset\.verify=false"):
        svhn.load_svhn(str(tmp_path))
    splits = svhn.load_svhn(str(tmp_path), verify=False)  # a .mat file is parsed, never unpickled: safe to read
    assert splits["train"].verified and not splits["test"].verified
    assert "test_32x32.mat: MD5 is" in caplog.text and "read as it is" in caplog.text
    path = tmp_path / "train_32x32.mat"
    path.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(DataError, match=r"train_32x32\.mat: not a readable MATLAB file .*truncated or corrupt"):
        svhn.load_svhn(str(tmp_path), verify=False)


@pytest.mark.parametrize(
    "variables, message",
    [
        (dict(X=np.zeros((32, 32, 3, 4), np.uint8)), r"holds no 'X' and 'y' \(it holds \['X'\]\)"),
        (dict(X=np.zeros((28, 28, 3, 4), np.uint8), y=np.ones((4, 1))), r"'X' is uint8 \(28, 28, 3, 4\), expected"),
        (dict(X=np.zeros((32, 32, 3, 4)), y=np.ones((4, 1))), r"'X' is float64 \(32, 32, 3, 4\), expected uint8"),
        (dict(X=np.zeros((32, 32, 3, 4), np.uint8), y=np.zeros((4, 1))), r"'y' is float64 \(4,\), expected 4 digits"),
        (dict(X=np.zeros((32, 32, 3, 4), np.uint8), y=np.ones((3, 1))), r"'y' is float64 \(3, 1\), expected 4 digits"),
    ],
)
def test_a_file_of_the_wrong_layout_is_refused(tmp_path, monkeypatch, variables, message):
    write_svhn(tmp_path, monkeypatch, test=variables)
    with pytest.raises(DataError, match=rf"test_32x32\.mat: {message}.*download http://ufldl"):
        svhn.load_svhn(str(tmp_path))


def test_missing_files_are_named_and_download_uses_torchvisions_md5(tmp_path, monkeypatch):
    assert svhn.FILES["train"] == (
        "http://ufldl.stanford.edu/housenumbers/train_32x32.mat",
        "train_32x32.mat",
        "e26dedcc434d2e4c54c9b2d4a06d8373",  # torchvision.datasets.SVHN.split_list
    )
    with pytest.raises(DataError) as error:
        svhn.load_svhn(str(tmp_path))
    assert str(error.value) == (
        f"{tmp_path}/train_32x32.mat: not found; download http://ufldl.stanford.edu/housenumbers/train_32x32.mat, "
        f"http://ufldl.stanford.edu/housenumbers/test_32x32.mat into {tmp_path}, or set dataset.download=true on a "
        "networked machine"
    )
    write_svhn(tmp_path / "source", monkeypatch)
    calls = []

    def fake_download_url(url, root, filename, md5):
        calls.append((url, md5))
        (tmp_path / "data" / filename).write_bytes((tmp_path / "source" / filename).read_bytes())

    (tmp_path / "data").mkdir()
    monkeypatch.setattr("torchvision.datasets.utils.download_url", fake_download_url)
    assert len(svhn.load_svhn(str(tmp_path / "data"), download=True)["train"]) == 80
    assert calls == [(url, checksum) for url, _, checksum in svhn.FILES.values()]


def test_svhn_run_end_to_end_with_the_gaussian_decoder(tmp_path, monkeypatch):
    write_svhn(tmp_path / "data", monkeypatch)
    overrides = tiny_mnist_like(
        "svhn", tmp_path / "data", "likelihood=gaussian", "net.widths=[8,16]", "latent_dim=3", "dataset.val_size=16"
    )
    cfg = compose_config(overrides)
    assert (cfg.dataset.name, cfg.dataset.binarize, cfg.net.name) == ("svhn", "none", "conv")
    assert load_dataset(cfg, torch.device("cpu")).image_shape == (3, 32, 32)
    run_experiment(cfg, tmp_path / "run")
    metrics = read_metrics(tmp_path / "run")
    assert metrics["dataset"] == "svhn" and metrics["data_verified"] is True and metrics["epochs_completed"] == 1


@pytest.mark.slow  # a process
def test_run_py_without_the_files_says_where_to_get_them(tmp_path):
    line = run_py_refused("dataset=svhn", f"dataset.root={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}")
    assert line.endswith(
        f"{tmp_path}/train_32x32.mat: not found; download http://ufldl.stanford.edu/housenumbers/"
        f"train_32x32.mat, http://ufldl.stanford.edu/housenumbers/test_32x32.mat into {tmp_path}, "
        "or set dataset.download=true on a networked machine"
    )
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
