"""``dataset=folder`` on folders the tests write: PNGs and JPEGs of mixed sizes and modes (L, RGB, RGBA, P,
16-bit I;16), in class sub-folders or flat, resized, split by ``dataset.split_seed`` alone, or refused in
one line naming the folder, the file or the setting."""

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from pyro_vae.data import image_folder
from pyro_vae.errors import ConfigError, DataError
from pyro_vae.runs.configuration.builders import dataset_reader, load_dataset
from pyro_vae.runs.configuration.settings import validate
from pyro_vae.runs.tasks.training_run import run_experiment

from ..helpers import compose_config, read_metrics, run_py_refused, snapshot, tiny_mnist_like, with_header_size

pytestmark = pytest.mark.usefixtures("single_thread")

CPU = torch.device("cpu")
MODES = ("L", "RGB", "RGBA", "P", "I;16")


def image_of(mode: str, width: int, height: int, rng: np.random.Generator) -> Image.Image:
    """A random image of ``mode`` and size; smooth (upsampled noise), so that JPEG keeps it close."""
    if mode == "I;16":
        pixels = rng.integers(0, 65536, (height, width), dtype=np.uint16)
        return Image.fromarray(pixels)  # PIL >= 10 opens and saves it as I;16
    small = Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).resize((width, height))
    return small.convert(mode)


def write_folder(root: Path, classes=("cat", "dog", "owl"), per_class: int = 10, flat: bool = False) -> list:
    """Images of every mode and of mixed sizes, PNG and (for 8-bit grey and RGB) JPEG, one sub-folder per
    class (or flat), with a text file and a hidden folder that are skipped. Returns the image paths."""
    rng = np.random.default_rng(0)
    paths = []
    for c, name in enumerate(classes):
        folder = root if flat else root / name
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            mode = MODES[(i + c) % len(MODES)]
            image = image_of(mode, 20 + 3 * i, 16 + 5 * (i % 4), rng)
            jpeg = mode in ("L", "RGB") and i % 2 == 0
            path = folder / f"{name}_{i:02d}.{'jpg' if jpeg else 'png'}"
            image.save(path, **({"quality": 95} if jpeg else {}))
            paths.append(path)
        (folder / "notes.txt").write_text("not an image")
    hidden = root / ".thumbnails"
    hidden.mkdir(exist_ok=True)
    Image.new("RGB", (9, 9)).save(hidden / "x.png")
    return paths


def folder_config(root: Path, *overrides: str):
    return compose_config(["dataset=folder", f"dataset.root={root}", "dataset.val_size=4", *overrides])


def test_pixels_are_scaled_centre_cropped_and_resized(tmp_path):
    # 8-bit grey, 4x4 columns 0, 0, 255, 255 to 2x2: PIL's bilinear filter, widened to the factor 2,
    # weighs the pixels of centres 0.5, 1.5 and 2.5 by 0.75, 0.75 and 0.25: 255 * 0.25 / 1.75 = 36.4
    Image.fromarray(np.array([[0, 0, 255, 255]] * 4, dtype=np.uint8)).save(tmp_path / "cols.png")
    assert image_folder.read_resized(tmp_path / "cols.png", 2, 1).tolist() == [[[36, 219], [36, 219]]]
    # 8x6 (width x height): the centre 6x6 is columns 1 to 6, kept as it is at image_size=6; colour as RGB
    rgb = np.random.default_rng(1).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "wide.png")
    kept = image_folder.read_resized(tmp_path / "wide.png", 6, 3)
    assert np.array_equal(kept, rgb[:, 1:7].transpose(2, 0, 1))
    # 16-bit: scaled by 65535 (32768 -> 127.502 -> 128), not truncated to its high byte; to colour, three equal bands
    Image.fromarray(np.full((30, 40), 32768, dtype=np.uint16)).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode == "I;16"
    deep = image_folder.read_resized(tmp_path / "deep.png", 28, 3)
    assert deep.shape == (3, 28, 28) and (deep == 128).all()
    # pure red to grey: PIL's L = 299/1000 R; alpha dropped
    Image.new("RGBA", (50, 31), (255, 0, 0, 10)).save(tmp_path / "red.png")
    assert (image_folder.read_resized(tmp_path / "red.png", 8, 1) == 76).all()


def test_classes_are_the_sub_folders_and_every_mode_reads(tmp_path):
    paths = write_folder(tmp_path)
    cfg = folder_config(tmp_path)
    validate(cfg)
    reader = dataset_reader(cfg)
    assert reader.class_names == ("cat", "dog", "owl") and reader.labelled and reader.image_shape == (1, 28, 28)
    data = load_dataset(cfg, CPU)
    assert (len(data.train), len(data.val), len(data.test)) == (23, 4, 3)  # 30 files: 3 test, 4 validation
    labels = torch.cat([data.train.labels, data.val.labels, data.test.labels])
    assert torch.bincount(labels).tolist() == [10, 10, 10] and data.verified
    assert data.train.images.dtype == torch.uint8 and data.image_shape == (1, 28, 28)
    colour = load_dataset(folder_config(tmp_path, "dataset.channels=3", "dataset.image_size=16"), CPU)
    assert colour.image_shape == (3, 16, 16)
    names, files, labelled = image_folder.list_images(str(tmp_path))
    assert [path for path, _ in files] == sorted(paths) and labelled  # no .txt, nothing hidden


def test_a_flat_folder_is_one_class_without_labels(tmp_path):
    write_folder(tmp_path, classes=("a",), per_class=12, flat=True)
    cfg = folder_config(tmp_path)
    reader = dataset_reader(cfg)
    assert reader.class_names == ("images",) and not reader.labelled
    data = load_dataset(cfg, CPU)
    assert data.class_names == ("images",) and set(data.train.labels.tolist()) == {0}
    with pytest.raises(ConfigError, match=r"^model=cvae conditions on the label, and dataset=folder has no labels"):
        validate(folder_config(tmp_path, "model=cvae"))
    validate(cfg)


def test_the_split_is_drawn_by_split_seed_not_by_seed(tmp_path):
    write_folder(tmp_path)

    def splits(*overrides):
        data = load_dataset(folder_config(tmp_path, *overrides), CPU)
        return data.train.images, data.val.images, data.test.images

    first = splits("seed=0")
    assert all(torch.equal(a, b) for a, b in zip(first, splits("seed=7")))
    other = splits("dataset.split_seed=1")
    assert not torch.equal(first[2], other[2]) and not torch.equal(first[1], other[1])
    data = load_dataset(folder_config(tmp_path, "dataset.test_fraction=0.5", "dataset.test_size=5"), CPU)
    assert len(data.test) == 5 and len(data.train) == 11  # 15 held out, their first 5 kept; 15 - 4 trained on


def test_only_the_images_the_split_sizes_keep_are_decoded(tmp_path, monkeypatch):
    write_folder(tmp_path)
    decoded = []
    read = image_folder.read_resized
    monkeypatch.setattr(image_folder, "read_resized", lambda path, *a: decoded.append(path) or read(path, *a))
    data = load_dataset(folder_config(tmp_path, "dataset.train_size=5", "dataset.test_size=2"), CPU)
    assert (len(data.train), len(data.val), len(data.test)) == (5, 4, 2) and len(decoded) == 11


def test_a_missing_empty_or_mixed_folder_is_refused_in_one_line(tmp_path):
    def refusal(root, *overrides):
        with pytest.raises(ConfigError) as error:
            validate(folder_config(root, *overrides))
        return str(error.value)

    assert refusal(tmp_path / "nope") == (
        f"dataset.root={tmp_path / 'nope'}: not found; set dataset.root to a folder of PNG or JPEG images"
    )
    (tmp_path / "empty" / "sub").mkdir(parents=True)
    (tmp_path / "empty" / "readme.md").write_text("#")
    assert refusal(tmp_path / "empty").startswith(f"dataset.root={tmp_path / 'empty'}: holds no image files (.png,")
    with pytest.raises(ConfigError, match=r"^dataset\.root=null: dataset=folder reads a folder of your own images"):
        validate(compose_config(["dataset=folder"]))
    mixed = tmp_path / "mixed"
    write_folder(mixed, classes=("a",), per_class=3)
    Image.new("L", (8, 8)).save(mixed / "stray.png")
    assert refusal(mixed).startswith(f"dataset.root={mixed}: holds image files (stray.png, ...) beside class")
    (mixed / "stray.png").unlink()
    validate(folder_config(mixed, "dataset.val_size=1"))  # 3 files: 1 test, 1 validation, 1 trained on
    assert refusal(mixed, "dataset.val_size=2") == "dataset.val_size=2: must be null or an integer from 1 to 1"
    (mixed / "a" / "a_01.png").unlink()
    assert refusal(mixed, "dataset.val_size=1") == (
        f"dataset.root={mixed}: holds 2 image files; dataset=folder needs at least 3, one each for the train, "
        "validation and test splits"
    )
    assert refusal(mixed, "dataset.download=true").startswith("dataset.download=true: dataset=folder reads your own")
    for setting, line in (
        ("dataset.channels=2", "dataset.channels=2: must be 1 (grey) or 3 (colour)"),
        ("dataset.test_fraction=1", "dataset.test_fraction=1.0: must be a number in (0, 1), the fraction of the"),
    ):
        assert refusal(mixed, setting).startswith(line)


def test_a_folder_too_large_for_the_device_is_refused_from_its_file_count(tmp_path, monkeypatch):
    write_folder(tmp_path)
    monkeypatch.setattr(image_folder, "read_resized", lambda *a: pytest.fail("decoded an image"))
    monkeypatch.setattr(image_folder, "MAX_BYTES", 2**30)  # 30 colour images of 148x148 = 1.9 MiB: scale the bound
    cfg = folder_config(tmp_path, "dataset.image_size=148", "dataset.channels=3")
    validate(cfg)
    monkeypatch.setattr(image_folder, "MAX_BYTES", 30 * 3 * 148 * 148 - 1)
    with pytest.raises(ConfigError) as error:
        validate(cfg)
    assert str(error.value) == (
        f"dataset.image_size=148: 30 images of {tmp_path} take 0.0 GiB as uint8 (3 channels), more than the 0 GiB "
        "a run keeps on its device; set dataset.train_size=22 or less, or a smaller dataset.image_size"
    )
    validate(folder_config(tmp_path, "dataset.image_size=148", "dataset.channels=3", "dataset.train_size=22"))


def test_an_image_size_outside_the_folders_own_range_is_refused_before_listing(tmp_path):
    for size in (7, 257):
        with pytest.raises(ConfigError) as error:
            validate(folder_config(tmp_path / "absent", f"dataset.image_size={size}"))
        assert str(error.value) == (
            f"dataset.image_size={size}: must be an integer from 8 to 256 for dataset=folder (pixels a side; "
            "net=conv's three stride-2 layers take 8 to 1x1, and 256 is the largest VAE papers use)"
        )
    write_folder(tmp_path, per_class=2)
    for size in (8, 149, 256):  # 149: beyond CelebA's bound, within the folder's
        cfg = folder_config(tmp_path, "dataset.val_size=1", f"dataset.image_size={size}")
        validate(cfg)
        assert dataset_reader(cfg).image_shape == (1, size, size)


def test_an_unreadable_image_file_is_refused_by_name(tmp_path):
    write_folder(tmp_path, per_class=4)
    bad = tmp_path / "dog" / "dog_01.png"
    bad.write_bytes(bad.read_bytes()[:60])  # truncated
    cfg = folder_config(tmp_path, "dataset.val_size=2")
    validate(cfg)  # nothing is decoded before the run
    with pytest.raises(DataError, match=rf"^{bad}: not a readable image \(OSError\); the file is corrupt"):
        load_dataset(cfg, CPU)
    bad.write_text("not a PNG")
    with pytest.raises(DataError, match=rf"^{bad}: not a readable image \(UnidentifiedImageError\)"):
        load_dataset(cfg, CPU)
    Image.new("L", (8, 8)).save(bad)
    with_header_size(bad, 40000, 40000)  # 1.6 billion pixels claimed: not even opened
    with pytest.raises(DataError, match=rf"^{bad}: not decoded, its header claims too large an image"):
        load_dataset(cfg, CPU)
    Image.fromarray(np.full((8, 8), 2.0, dtype=np.float32)).save(bad.with_suffix(".tif"))
    bad.unlink()
    with pytest.raises(DataError, match=r"dog_01\.tif: float pixels from 2 to 2, outside \[0, 1\]"):
        load_dataset(cfg, CPU)


def test_folder_run_end_to_end(tmp_path):
    write_folder(tmp_path / "data", per_class=8)
    overrides = tiny_mnist_like(
        "folder",
        tmp_path / "data",
        "model=cvae",
        "dataset.image_size=12",
        "net.widths=[16]",
        "latent_dim=2",
        "dataset.train_size=null",
        "dataset.val_size=4",
        "dataset.test_size=null",
        "batch_size=8",
    )
    run_experiment(compose_config(overrides), tmp_path / "run")
    metrics = read_metrics(tmp_path / "run")
    assert metrics["dataset"] == "folder" and metrics["data_verified"] is True and metrics["epochs_completed"] == 1


@pytest.mark.slow  # a process
def test_run_py_refuses_a_missing_folder_before_writing_anything(tmp_path):
    (tmp_path / "run").mkdir()
    line = run_py_refused("dataset=folder", f"dataset.root={tmp_path / 'nope'}", f"hydra.run.dir={tmp_path / 'run'}")
    assert line.endswith(
        f"dataset.root={tmp_path / 'nope'}: not found; set dataset.root to a folder of PNG or JPEG images"
    )
    assert snapshot(tmp_path / "run") == {}
