"""IDX parsing, checksums, the shipped MNIST, splits, pixel transforms and minibatches."""

import gzip
import hashlib
import shutil

import pytest
import torch

from pyro_vae.data import Observation, PixelTransform, mnist
from pyro_vae.data.batches import MinibatchSampler
from pyro_vae.data.idx import IdxFile, parse_idx, read_checked_bytes
from pyro_vae.errors import ConfigError, DataError
from pyro_vae.runs.configuration.builders import load_dataset
from pyro_vae.runs.configuration.schema import option

from ..helpers import idx_bytes


def test_parse_idx_reads_shape_and_values(tmp_path):
    array = torch.arange(24, dtype=torch.uint8).reshape(2, 3, 4)
    parsed = parse_idx(idx_bytes(array), tmp_path / "x")
    assert parsed.dtype == torch.uint8 and torch.equal(parsed, array)


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda raw: raw[:-5], "declares shape"),
        (lambda raw: b"\x00\x00\x0d" + raw[3:], "not an IDX file of unsigned bytes"),
    ],
)
def test_parse_idx_rejects_damaged_headers(tmp_path, damage, message):
    raw = idx_bytes(torch.zeros(3, 2, 2))
    with pytest.raises(DataError, match=message):
        parse_idx(damage(raw), tmp_path / "bad")


def test_verified_read_names_the_file_and_the_fix(tmp_path):
    path = tmp_path / "f.gz"
    path.write_bytes(gzip.compress(b"payload"))
    good = IdxFile("unused", hashlib.sha256(b"payload").hexdigest())
    assert read_checked_bytes(path, good, "fix it") == (b"payload", True)
    with pytest.raises(DataError, match=r"f\.gz: SHA-256 .* expected .*fix it, or set dataset\.verify=false"):
        read_checked_bytes(path, IdxFile("unused", "0" * 64), "fix it")
    path.write_bytes(gzip.compress(b"payload")[:-6])
    with pytest.raises(DataError, match=r"f\.gz: cannot be decompressed .*truncated"):
        read_checked_bytes(path, good, "fix it")
    with pytest.raises(DataError, match=r"missing\.gz: file not found; fix it"):
        read_checked_bytes(tmp_path / "missing.gz", good, "fix it")


@pytest.fixture(scope="module")
def shipped():
    return mnist.load_mnist()


def test_shipped_mnist_has_the_official_shapes_and_statistics(shipped):
    train, test = shipped["train"], shipped["test"]
    assert train.images.shape == (60000, 1, 28, 28) and test.images.shape == (10000, 1, 28, 28)
    assert train.images.dtype == torch.uint8
    assert torch.equal(
        torch.bincount(test.labels), torch.tensor([980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009])
    )
    assert train.images.float().div(255).mean().item() == pytest.approx(0.1307, abs=1e-4)


def copy_mnist(destination, decompress=False):
    destination.mkdir(parents=True, exist_ok=True)
    for name in mnist.FILES:
        source = mnist.SHIPPED_ROOT / f"{name}.gz"
        if decompress:
            (destination / name).write_bytes(gzip.decompress(source.read_bytes()))
        else:
            shutil.copy(source, destination / source.name)


def test_user_root_in_torchvision_layout_and_uncompressed(tmp_path, shipped):
    copy_mnist(tmp_path / "MNIST" / "raw", decompress=True)
    loaded = mnist.load_mnist(str(tmp_path))
    assert torch.equal(loaded["test"].labels, shipped["test"].labels)


def test_corrupt_user_copy_is_rejected_by_checksum(tmp_path):
    copy_mnist(tmp_path)
    target = tmp_path / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(target.read_bytes()))
    raw[100] ^= 1
    target.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(DataError, match=r"t10k-labels-idx1-ubyte\.gz: SHA-256.*dataset\.download=true"):
        mnist.load_mnist(str(tmp_path))


def test_missing_file_error_says_where_to_put_it(tmp_path):
    with pytest.raises(DataError, match=r"train-images-idx3-ubyte\.gz: file not found; put the official"):
        mnist.load_mnist(str(tmp_path))


def test_download_fetches_missing_files_through_torchvision(tmp_path, monkeypatch):
    """No network here: torchvision's download_url is replaced by a copy from the shipped files."""
    calls = []

    def fake_download_url(url, root, filename, md5):
        calls.append(url)
        shutil.copy(mnist.SHIPPED_ROOT / filename, f"{root}/{filename}")

    monkeypatch.setattr("torchvision.datasets.utils.download_url", fake_download_url)
    loaded = mnist.load_mnist(str(tmp_path), download=True)
    assert len(calls) == 4 and all(url.startswith(mnist.MIRRORS[0]) for url in calls)
    assert len(loaded["train"]) == 60000


def test_splits_hold_out_validation_and_take_heads(tiny_cfg):
    data = load_dataset(tiny_cfg, torch.device("cpu"))
    assert (len(data.train), len(data.val), len(data.test)) == (512, 256, 128)
    full = mnist.load_mnist()
    assert torch.equal(data.val.images, full["train"].images[-256:])
    assert torch.equal(data.train.images, full["train"].images[:512])
    assert data.image_shape == (1, 28, 28)


def test_split_sizes_out_of_range_are_refused(tiny_cfg):
    tiny_cfg.dataset.train_size = 10**6
    with pytest.raises(ConfigError, match=r"dataset\.train_size=1000000: must be null or an integer from 1 to"):
        load_dataset(tiny_cfg, torch.device("cpu"))


def test_binarization_modes():
    images = torch.tensor([[0, 64, 128, 255]] * 4000, dtype=torch.uint8)
    dynamic = PixelTransform("dynamic", seed=0, observes=Observation.binary)
    first, second = dynamic.training_batch(images), dynamic.training_batch(images)
    assert set(first.unique().tolist()) <= {0.0, 1.0} and not torch.equal(first, second)
    assert torch.allclose(first.mean(0), images[0].float() / 255, atol=0.03)
    assert torch.equal(dynamic.fixed(images, "test"), dynamic.fixed(images, "test"))
    assert not torch.equal(dynamic.fixed(images, "test"), dynamic.fixed(images, "val"))
    static = PixelTransform("static", seed=0, observes=Observation.binary)
    source = static.training_source(images)
    assert torch.equal(static.training_batch(source), source) and set(source.unique().tolist()) <= {0.0, 1.0}
    # A Bernoulli draw of each pixel, not a threshold: grey level g is 1 with frequency g / 255, within 5
    # binomial standard errors over the 4000 images (0 and 255 exactly), so a pixel above 1/2 (128) is
    # sometimes 0 and one below it (64) sometimes 1.
    p = images[0].double() / 255
    assert ((source.double().mean(0) - p).abs() <= 5 * (p * (1 - p) / len(images)).sqrt()).all()
    assert (source[:, 2] == 0).any() and (source[:, 1] == 1).any()


def test_dequantization_spreads_each_grey_level_over_its_bin():
    images = torch.tensor([[0, 64, 255]] * 4000, dtype=torch.uint8)
    view = PixelTransform("none", seed=0, observes=Observation.dequantized).training_batch(images)
    low, high = images.float() / 256, (images.float() + 1) / 256
    assert torch.all((view >= low) & (view < high))
    assert torch.allclose(view.mean(0), (images[0].float() + 0.5) / 256, atol=2e-3)


@pytest.mark.parametrize(
    "binarize, likelihood, message",
    [
        ("otsu", "bernoulli", "dataset.binarize=otsu: choose one of dynamic, static, none"),
        ("none", "bernoulli", "dataset.binarize=none: likelihood=bernoulli needs binary pixels"),
        (
            "dynamic",
            "gaussian",
            "dataset.binarize=dynamic: likelihood=gaussian models grey levels; set dataset.binarize=none",
        ),
        (
            "static",
            "discretized_logistic",
            "dataset.binarize=static: likelihood=discretized_logistic models grey levels; set dataset.binarize=none",
        ),
    ],
)
def test_pixel_modes_that_make_no_sense_are_refused(binarize, likelihood, message):
    observes = option("likelihood", likelihood).component().observes
    with pytest.raises(ConfigError, match=message):
        PixelTransform(binarize, seed=0, observes=observes, likelihood=likelihood)


def test_minibatch_sampler_covers_a_permutation_in_full_batches():
    source = torch.arange(10).reshape(10, 1)
    sampler = MinibatchSampler(source, labels=100 + torch.arange(10), batch_size=3, transform=lambda b: b)
    batches = list(sampler.epoch(1, seed=0))
    assert len(sampler) == 3 and all(len(x) == 3 and len(y) == 3 for x, y in batches)
    seen = torch.cat([x for x, _ in batches]).flatten()
    assert len(seen.unique()) == 9
    assert all(torch.equal(y, 100 + x.flatten()) for x, y in batches)  # labels travel with their images
