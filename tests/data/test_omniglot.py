"""Burda et al.'s 28x28 Omniglot from a small chardata.mat that the tests write in the layout of theirs:
(784, N) floats in [0, 1], each column an image stored column by column, and (50, N) one-hot alphabets."""

import numpy as np
import pytest
import scipy.io
import torch

from pyro_vae.data import omniglot
from pyro_vae.errors import DataError
from pyro_vae.runs.configuration.builders import load_dataset
from pyro_vae.runs.tasks.training_run import run_experiment

from ..helpers import compose_config, read_metrics, run_py_refused, tiny_mnist_like

pytestmark = pytest.mark.usefixtures("single_thread")


def write_chardata(root, monkeypatch=None, train=96, test=40, **replace) -> dict:
    """chardata.mat in ``root`` (random pixels and alphabets; ``replace`` swaps or adds variables); with
    ``monkeypatch`` its image counts patched in as the official ones. Returns the variables written."""
    rng = np.random.default_rng(0)
    content = {}
    for images, labels, n in (("data", "target", train), ("testdata", "testtarget", test)):
        content[images] = rng.random((784, n))
        content[labels] = np.eye(50)[:, rng.integers(0, 50, n)]
    content.update(replace)
    root.mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(str(root / "chardata.mat"), {k: v for k, v in content.items() if v is not None})
    if monkeypatch is not None:
        counts = {"train": ("data", "target", train), "test": ("testdata", "testtarget", test)}
        monkeypatch.setattr(omniglot, "KEYS", counts)
    return content


def test_images_are_read_column_major_as_their_code_and_stored_as_grey_levels(tmp_path, monkeypatch):
    content = write_chardata(tmp_path, monkeypatch)
    splits = omniglot.load_omniglot(str(tmp_path))
    train, test = splits["train"], splits["test"]
    assert train.images.shape == (96, 1, 28, 28) and test.images.shape == (40, 1, 28, 28)
    assert train.images.dtype == torch.uint8 and train.labels.dtype == torch.int64
    expected = content["data"].T.reshape((-1, 28, 28), order="F")  # iwae/datasets.py
    assert torch.equal(train.images[:, 0], torch.from_numpy(np.rint(expected * 255).astype(np.uint8)))
    column = content["data"][:, 5]  # pixel (row r, column c) of image 5 is entry 28 c + r of its column
    assert train.images[5, 0, 3, 0] == round(column[3] * 255) and train.images[5, 0, 0, 3] == round(column[84] * 255)
    assert test.labels.tolist() == content["testtarget"].argmax(0).tolist()
    assert all(split.verified for split in splits.values())
    assert omniglot.READER.class_names[:2] == ("alphabet 0", "alphabet 1") and len(omniglot.READER.class_names) == 50


def test_a_file_with_other_counts_is_refused_unless_verify_is_false(tmp_path, caplog):
    write_chardata(tmp_path)  # not the official 24,345 + 8,070 images
    with pytest.raises(
        DataError, match=r"chardata\.mat: train holds 96 images, the official file 24345; .*verify=false"
    ):
        omniglot.load_omniglot(str(tmp_path))
    splits = omniglot.load_omniglot(str(tmp_path), verify=False)
    assert len(splits["train"]) == 96 and not splits["train"].verified
    assert "not the official release, read as it is" in caplog.text


@pytest.mark.parametrize(
    "replace, message",
    [
        (dict(testdata=None), r"holds no 'testdata' \(it holds \['data', 'target', 'testtarget'\]\)"),
        (dict(data=np.zeros((28, 96))), r"'data' is float64 \(28, 96\), expected numbers \(784, N\)"),
        (dict(data=np.full((784, 96), 1.5)), r"'data' ranges from 1\.5 to 1\.5, expected pixels in \[0, 1\]"),
        (dict(data=np.full((784, 96), -0.1)), r"'data' ranges from -0\.1 to -0\.1, expected pixels in \[0, 1\]"),
        (dict(target=np.ones((50, 96))), r"'target' is float64 \(50, 96\), expected one-hot alphabets \(50, 96\)"),
        (dict(testtarget=np.eye(10)[:, :4]), r"'testtarget' is float64 \(10, 4\), expected one-hot .* \(50, 40\)"),
    ],
)
def test_a_file_of_the_wrong_layout_is_refused_whether_or_not_verified(tmp_path, replace, message):
    write_chardata(tmp_path, **replace)  # counts not the official ones either: the layout is refused first
    for verify in (True, False):
        with pytest.raises(DataError, match=rf"chardata\.mat: {message}.*download https://github\.com/yburda"):
            omniglot.load_omniglot(str(tmp_path), verify=verify)


def test_a_damaged_or_missing_file_is_named_with_where_to_get_it(tmp_path):
    with pytest.raises(DataError) as error:
        omniglot.load_omniglot(str(tmp_path))
    assert str(error.value) == (
        f"{tmp_path}/chardata.mat: not found; download {omniglot.URL} into {tmp_path}, or set "
        "dataset.download=true on a networked machine"
    )
    write_chardata(tmp_path)
    path = tmp_path / "chardata.mat"
    path.write_bytes(path.read_bytes()[:3000])
    with pytest.raises(DataError, match=r"chardata\.mat: not a readable MATLAB file .*truncated or corrupt"):
        omniglot.load_omniglot(str(tmp_path), verify=False)
    with pytest.raises(DataError, match=r"dataset\.root=null: Omniglot is not shipped"):
        omniglot.load_omniglot(None)


def test_download_fetches_the_missing_file_without_a_checksum(tmp_path, monkeypatch):
    write_chardata(tmp_path / "source", monkeypatch)
    calls = []

    def fake_download_url(url, root, filename, md5):
        assert md5 is None  # none is published
        calls.append(url)
        (tmp_path / "data" / filename).write_bytes((tmp_path / "source" / filename).read_bytes())

    (tmp_path / "data").mkdir()
    monkeypatch.setattr("torchvision.datasets.utils.download_url", fake_download_url)
    assert len(omniglot.load_omniglot(str(tmp_path / "data"), download=True)["test"]) == 40
    assert calls == [omniglot.URL]


def test_omniglot_run_end_to_end(tmp_path, monkeypatch):
    """In-process, so that the small file's counts can be patched in as the official ones."""
    write_chardata(tmp_path / "data", monkeypatch)
    cfg = compose_config(tiny_mnist_like("omniglot", tmp_path / "data"))
    assert cfg.dataset.binarize == "dynamic"
    data = load_dataset(cfg, torch.device("cpu"))
    assert (len(data.train), len(data.val), len(data.test)) == (64, 32, 32) and data.num_classes == 50
    run_experiment(cfg, tmp_path / "run")
    metrics = read_metrics(tmp_path / "run")
    assert metrics["dataset"] == "omniglot" and metrics["data_verified"] is True
    assert metrics["test_elbo"] < 0 and metrics["epochs_completed"] == 1


@pytest.mark.slow  # a process
def test_run_py_without_the_file_says_where_to_get_it(tmp_path):
    line = run_py_refused("dataset=omniglot", f"dataset.root={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}")
    assert line.endswith(
        f"chardata.mat: not found; download {omniglot.URL} into {tmp_path}, or set "
        "dataset.download=true on a networked machine"
    )
    assert not (tmp_path / "run" / "metrics.json").exists()
