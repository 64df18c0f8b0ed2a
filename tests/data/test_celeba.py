"""CelebA from a tiny folder in torchvision's layout that the tests write: generated 178x218 JPEGs in
celeba/img_align_celeba/ and a list_eval_partition.txt, its MD5 patched in as the official one."""

import shutil
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pyro_vae.data import celeba
from pyro_vae.errors import ConfigError, DataError
from pyro_vae.runs.configuration.builders import dataset_reader, load_dataset
from pyro_vae.runs.configuration.settings import validate
from pyro_vae.runs.tasks.training_run import run_experiment

from ..helpers import compose_config, md5, read_metrics, run_py_refused, snapshot, tiny_mnist_like

pytestmark = pytest.mark.usefixtures("single_thread")

COUNTS = {"0": 24, "1": 10, "2": 8}  # partition code -> images


def write_celeba(root, monkeypatch, counts=COUNTS, size=celeba.ALIGNED) -> list:
    """``root``/celeba/ with ``counts`` faces of each partition, interleaved as the names run, the partition
    file's MD5 patched in. Returns the partition's (name, code) lines."""
    folder = root / "celeba" / "img_align_celeba"
    folder.mkdir(parents=True)
    codes = [code for code, n in counts.items() for _ in range(n)]
    lines = [(f"{i + 1:06d}.jpg", code) for i, code in enumerate(codes)]
    rng = np.random.default_rng(0)
    for name, _ in lines:
        pixels = rng.integers(0, 256, (size[1] // 8, size[0] // 8, 3), dtype=np.uint8)  # smooth: JPEG keeps it
        Image.fromarray(pixels).resize(size, Image.Resampling.BILINEAR).save(folder / name, quality=95)
    partition = root / "celeba" / "list_eval_partition.txt"
    partition.write_text("".join(f"{name} {code}\n" for name, code in lines))
    monkeypatch.setattr(celeba, "PARTITION_MD5", md5(partition.read_bytes()))
    return lines


def face(path, image_size):
    """What the reader should make of one image: its centre 148x148, resized, channels first."""
    with Image.open(path) as image:
        crop = image.convert("RGB").crop((15, 35, 163, 183))
        return np.asarray(crop.resize((image_size, image_size), Image.Resampling.BILINEAR)).transpose(2, 0, 1)


def test_faces_are_centre_cropped_resized_and_split_by_the_partition_file(tmp_path, monkeypatch):
    lines = write_celeba(tmp_path, monkeypatch)
    splits = celeba.load_celeba(str(tmp_path), image_size=16)
    assert {split: len(images) for split, images in splits.items()} == {"train": 24, "val": 10, "test": 8}
    val = splits["val"]
    assert val.images.shape == (10, 3, 16, 16) and val.images.dtype == torch.uint8
    first_val = next(name for name, code in lines if code == "1")
    expected = face(tmp_path / "celeba" / "img_align_celeba" / first_val, 16)
    assert np.array_equal(val.images[0].numpy(), expected)
    assert val.labels.tolist() == [0] * 10 and all(split.verified for split in splits.values())
    for path in (tmp_path / "celeba").iterdir():  # the two flat in dataset.root read the same
        path.rename(tmp_path / path.name)
    assert torch.equal(celeba.load_celeba(str(tmp_path), image_size=16)["val"].images, val.images)


def test_only_the_images_the_split_sizes_take_are_decoded(tmp_path, monkeypatch):
    write_celeba(tmp_path, monkeypatch)
    decoded = []
    read_face = celeba.read_face
    monkeypatch.setattr(celeba, "read_face", lambda face, *a: decoded.append(face[0].name) or read_face(face, *a))
    cfg = compose_config(
        tiny_mnist_like(
            "celeba",
            tmp_path,
            "dataset.train_size=5",
            "dataset.val_size=3",
            "dataset.test_size=2",
            "dataset.image_size=8",
        )
    )
    data = load_dataset(cfg, torch.device("cpu"))
    assert (len(data.train), len(data.val), len(data.test)) == (5, 3, 2) and data.image_shape == (3, 8, 8)
    assert decoded == [f"{i:06d}.jpg" for i in (1, 2, 3, 4, 5, 25, 26, 27, 35, 36)]  # the first of each partition
    assert dataset_reader(cfg).image_shape == (3, 8, 8)


def test_split_sizes_beyond_the_partition_are_refused_before_decoding(tmp_path, monkeypatch):
    write_celeba(tmp_path, monkeypatch)
    monkeypatch.setattr(celeba, "read_face", lambda *a: pytest.fail("decoded an image"))
    with pytest.raises(ConfigError, match=r"^dataset\.test_size=9: must be null or an integer from 1 to 8$"):
        celeba.load_celeba(str(tmp_path), image_size=8, sizes={"train": 4, "val": 2, "test": 9})


def test_a_configuration_too_large_for_the_device_is_refused_before_reading(tmp_path):
    cfg = compose_config(["dataset=celeba", f"dataset.root={tmp_path}", "dataset.image_size=96"])
    with pytest.raises(ConfigError) as error:
        validate(cfg)
    assert str(error.value) == (
        "dataset.image_size=96: 202,599 CelebA images take 5.2 GiB as uint8, more than the 4 GiB a run keeps on its "
        "device; set dataset.train_size=115515 or less, or a smaller dataset.image_size"
    )
    validate(
        compose_config(
            ["dataset=celeba", f"dataset.root={tmp_path}", "dataset.image_size=96", "dataset.train_size=115515"]
        )
    )
    validate(compose_config(["dataset=celeba", f"dataset.root={tmp_path}"]))  # all of it at 64x64: 2.3 GiB
    for size in (4, 149):
        with pytest.raises(ConfigError) as error:
            validate(compose_config(["dataset=celeba", f"dataset.image_size={size}"]))
        assert str(error.value) == (
            f"dataset.image_size={size}: must be an integer from 8 to 148 for dataset=celeba (pixels a side; each "
            "aligned face is centre-cropped to 148x148, and a larger side only upsamples it)"
        )
    validate(compose_config(["dataset=celeba", "dataset.image_size=8", "dataset.train_size=10"]))
    with pytest.raises(ConfigError, match=r"^model=cvae conditions on the label, and dataset=celeba has no labels"):
        validate(compose_config(["dataset=celeba", "model=cvae"]))


def test_download_without_gdown_is_refused_saying_where_to_put_the_files(tmp_path, monkeypatch):
    monkeypatch.setattr(celeba, "_has_gdown", lambda: False)
    with pytest.raises(ConfigError) as error:
        validate(compose_config(["dataset=celeba", f"dataset.root={tmp_path}", "dataset.download=true"]))
    assert str(error.value) == (
        "dataset.download=true: CelebA is on Google Drive, which torchvision downloads from only with the gdown "
        f"package, not installed; fetch img_align_celeba.zip and list_eval_partition.txt from {celeba.URL} (Google "
        f"Drive) and put both in {tmp_path}/celeba (the zip is read as it is, or extracted there as "
        f"{tmp_path}/celeba/img_align_celeba/), and set dataset.download=false"
    )


def test_download_with_gdown_uses_torchvisions_celeba(tmp_path, monkeypatch):
    source = tmp_path / "source"
    write_celeba(source, monkeypatch, counts={"0": 2, "1": 1, "2": 1})
    calls = []

    def fake_celeba(root, split, target_type, download):
        calls.append((split, target_type, download))
        (tmp_path / "data" / "celeba").symlink_to(source / "celeba")

    monkeypatch.setattr(celeba, "_has_gdown", lambda: True)
    monkeypatch.setattr("torchvision.datasets.CelebA", fake_celeba)
    (tmp_path / "data").mkdir()
    assert len(celeba.load_celeba(str(tmp_path / "data"), download=True, image_size=8)["train"]) == 2
    assert calls == [("all", [], True)]


def test_missing_damaged_or_odd_files_are_refused_in_one_line(tmp_path, monkeypatch, caplog):
    with pytest.raises(DataError) as error:
        celeba.load_celeba(str(tmp_path))
    assert str(error.value) == (
        f"{tmp_path}/celeba/list_eval_partition.txt: not found; fetch img_align_celeba.zip and "
        f"list_eval_partition.txt from {celeba.URL} (Google Drive) and put both in {tmp_path}/celeba (the zip is read "
        f"as it is, or extracted there as {tmp_path}/celeba/img_align_celeba/)"
    )
    write_celeba(tmp_path, monkeypatch, counts={"0": 3, "1": 2, "2": 2})
    images, partition = tmp_path / "celeba" / "img_align_celeba", tmp_path / "celeba" / "list_eval_partition.txt"
    (images / "000002.jpg").write_bytes((images / "000002.jpg").read_bytes()[:300])
    with pytest.raises(DataError, match=r"000002\.jpg: not a readable image .*truncated or corrupt, fetch"):
        celeba.load_celeba(str(tmp_path), image_size=8)
    (images / "000002.jpg").unlink()
    with pytest.raises(DataError, match=r"000002\.jpg: not found; the folder img_align_celeba/ is incomplete, fetch"):
        celeba.load_celeba(str(tmp_path), image_size=8)
    Image.new("RGB", (100, 218)).save(images / "000002.jpg")
    with pytest.raises(DataError, match=r"000002\.jpg: is 100x218, smaller than the 148x148 centre crop"):
        celeba.load_celeba(str(tmp_path), image_size=8)
    Image.new("RGB", (200, 200)).save(images / "000002.jpg")
    with pytest.raises(DataError, match=r"000002\.jpg: is 200x200, not 178x218; .*dataset\.verify=false"):
        celeba.load_celeba(str(tmp_path), image_size=8)
    splits = celeba.load_celeba(str(tmp_path), verify=False, image_size=8)
    assert not splits["train"].verified and splits["val"].verified and "read as it is" in caplog.text
    partition.write_text(partition.read_text() + "000009.png 3\n")
    with pytest.raises(DataError, match=r"list_eval_partition\.txt: MD5 is .*dataset\.verify=false"):
        celeba.load_celeba(str(tmp_path), image_size=8)
    with pytest.raises(
        DataError, match=r"partition\.txt: line 8 holds '000009\.png 3', expected 'NAME\.jpg 0', 1 or 2"
    ):
        celeba.load_celeba(str(tmp_path), verify=False, image_size=8)


def zip_folder(root) -> Path:
    """``root``/celeba/img_align_celeba/ replaced by the official zip of it, its members named as the release's."""
    folder = root / "celeba" / "img_align_celeba"
    archive = root / "celeba" / "img_align_celeba.zip"
    with zipfile.ZipFile(archive, "w") as zipped:  # stored, as the release's JPEGs are
        for path in sorted(folder.iterdir()):
            zipped.write(path, f"img_align_celeba/{path.name}")
    shutil.rmtree(folder)
    return archive


def test_without_the_folder_the_faces_are_read_from_the_zip_in_place(tmp_path, monkeypatch):
    write_celeba(tmp_path, monkeypatch, counts={"0": 4, "1": 2, "2": 2})
    extracted = celeba.load_celeba(str(tmp_path), image_size=16)
    archive = zip_folder(tmp_path)
    before = snapshot(tmp_path)
    zipped = celeba.load_celeba(str(tmp_path), image_size=16)
    assert snapshot(tmp_path) == before  # nothing extracted to disk
    for split, images in extracted.items():
        assert torch.equal(zipped[split].images, images.images) and zipped[split].verified

    members = {info.filename: zipfile.ZipFile(archive).read(info) for info in zipfile.ZipFile(archive).infolist()}
    del members["img_align_celeba/000003.jpg"]
    rewrite(archive, members)
    with pytest.raises(DataError) as error:
        celeba.load_celeba(str(tmp_path), image_size=8)
    assert str(error.value).startswith(
        f"{archive}:img_align_celeba/000003.jpg: not in the zip; img_align_celeba.zip is incomplete, fetch"
    )
    members["img_align_celeba/000003.jpg"] = members["img_align_celeba/000001.jpg"][:300]
    rewrite(archive, members)
    with pytest.raises(DataError, match=r"zip:img_align_celeba/000003\.jpg: not a readable image .*truncated"):
        celeba.load_celeba(str(tmp_path), image_size=8)
    raw = bytearray(archive.read_bytes())
    raw[raw.find(members["img_align_celeba/000001.jpg"]) + 100] ^= 0xFF  # a byte of a stored member flipped
    archive.write_bytes(raw)
    with pytest.raises(DataError, match=r"zip:img_align_celeba/000001\.jpg: damaged in the zip \(Bad CRC-32"):
        celeba.load_celeba(str(tmp_path), image_size=8)
    archive.write_bytes(archive.read_bytes()[:-40])  # the central directory cut off
    with pytest.raises(DataError, match=r"img_align_celeba\.zip: not a readable zip \(.*\); the download is"):
        celeba.load_celeba(str(tmp_path), image_size=8)


def rewrite(archive, members) -> None:
    with zipfile.ZipFile(archive, "w") as zipped:
        for name, raw in members.items():
            zipped.writestr(name, raw)


def test_celeba_run_end_to_end_with_the_gaussian_decoder(tmp_path, monkeypatch):
    write_celeba(tmp_path / "data", monkeypatch)
    overrides = tiny_mnist_like(
        "celeba",
        tmp_path / "data",
        "likelihood=gaussian",
        "dataset.image_size=16",
        "net.widths=[8,16]",
        "latent_dim=3",
        "dataset.train_size=24",
        "dataset.val_size=10",
        "dataset.test_size=8",
        "batch_size=8",
    )
    run_experiment(compose_config(overrides), tmp_path / "run")
    metrics = read_metrics(tmp_path / "run")
    assert metrics["dataset"] == "celeba" and metrics["data_verified"] is True and metrics["epochs_completed"] == 1


def test_reading_a_small_generated_set_takes_about_a_millisecond_a_face(tmp_path, monkeypatch):
    """docs/data.md quotes this measurement: the time to read all of CelebA is about 202,599 times it."""
    write_celeba(tmp_path, monkeypatch, counts={"0": 60, "1": 10, "2": 10})
    start = time.perf_counter()
    celeba.load_celeba(str(tmp_path))
    per_face = (time.perf_counter() - start) / 80
    assert per_face < 0.02, per_face  # generous: a shared CPU


@pytest.mark.slow  # a process
def test_run_py_too_large_is_refused_before_writing_anything(tmp_path):
    (tmp_path / "run").mkdir()
    line = run_py_refused(
        "dataset=celeba", "dataset.image_size=128", f"dataset.root={tmp_path}", f"hydra.run.dir={tmp_path / 'run'}"
    )
    assert line.endswith(
        "more than the 4 GiB a run keeps on its device; set dataset.train_size=47552 or less, or a "
        "smaller dataset.image_size"
    )
    assert snapshot(tmp_path / "run") == {}
