"""The feature classifiers and their cache, on tiny synthetic data sets of three patterns (a horizontal
band, a vertical band, a square, each at a random place over noise) with tiny recipes: they learn, the
cache is reused and keyed by data and recipe, a damaged entry is retrained, two processes train once,
and unlabelled data is refused."""

import dataclasses
import multiprocessing
import time
from pathlib import Path

import pytest
import torch

from pyro_vae.data.splits import DataSplits, LabelledImages
from pyro_vae.errors import ConfigError
from pyro_vae.quality import classifier_training, feature_cache
from pyro_vae.quality.classifier_training import RECIPE_VERSION, Recipe
from pyro_vae.quality.feature_cache import cache_key, feature_extractor

pytestmark = pytest.mark.usefixtures("single_thread")

CPU = torch.device("cpu")
GREY = Recipe("lenet", (4, 8), 16, epochs=8, lr=1e-2, batch_size=30, binarized_fraction=0.5)
COLOUR = Recipe("resnet", (4, 8), None, epochs=8, lr=1e-2, batch_size=30, binarized_fraction=0.0)


def patterns(shape, per_class: int, generator: torch.Generator) -> LabelledImages:
    labels = torch.arange(3).repeat(per_class)
    channels, height, width = shape
    images = torch.rand((len(labels), channels, height, width), generator=generator) * 0.3
    side = height // 4
    places = torch.randint(0, height - side, (len(labels),), generator=generator)
    for image, label, place in zip(images, labels, places):
        rows = slice(place, place + side) if label != 1 else slice(None)
        columns = slice(place, place + side) if label != 0 else slice(None)
        image[:, rows, columns] += 0.7
    return LabelledImages((images.clamp(0, 1) * 255).round().to(torch.uint8), labels)


def synthetic(shape=(1, 28, 28), seed: int = 0, name: str = "synthetic") -> DataSplits:
    generator = torch.Generator().manual_seed(seed)
    train, val, test = (patterns(shape, n, generator) for n in (60, 20, 20))
    return DataSplits(name, train, val, test, ("horizontal", "vertical", "square"))


@pytest.fixture(scope="module")
def grey():
    return synthetic()


@pytest.fixture(scope="module")
def cached(grey, tmp_path_factory):
    """A cache folder holding the grey data's entry, trained once for the module, and what it said."""
    cache = tmp_path_factory.mktemp("cache")
    _, info = feature_extractor(grey, cache, CPU, recipe=GREY)
    return cache, info


def copy_of(cache: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "cache"
    copy.mkdir()
    for entry in cache.iterdir():
        (copy / entry.name).write_bytes(entry.read_bytes())
    return copy


def test_lenet_learns_grey_and_binary_patterns_and_its_features_have_feature_dim(grey, cached):
    _, info = cached
    assert info["trained_now"] and info["architecture"] == "lenet" and info["feature_dim"] == GREY.feature_dim
    assert info["test_accuracy"] > 0.8 and info["test_binary_accuracy"] > 0.8  # chance: 1/3
    assert info["val_accuracy"] > 0.8 and info["train_seconds"] > 0
    classifier, _ = feature_extractor(grey, cached[0], CPU, recipe=GREY)
    images = grey.test.images.float() / 255
    features = classifier.features(images, batch_size=7)
    assert features.shape == (len(images), GREY.feature_dim) and features.dtype == torch.float32
    assert torch.allclose(features, classifier.features(grey.test.images), atol=1e-6)  # uint8 taken as k / 255
    assert not classifier.training and not features.requires_grad


def test_the_resnet_learns_colour_patterns_and_its_features_are_its_last_width(tmp_path):
    data = synthetic((3, 32, 32))
    classifier, info = feature_extractor(data, tmp_path, CPU, recipe=COLOUR)
    assert info["architecture"] == "resnet" and info["feature_dim"] == COLOUR.widths[-1]
    assert info["test_accuracy"] > 0.8 and "test_binary_accuracy" not in info  # colour trains on no binary view
    assert classifier.features(data.test.images).shape == (len(data.test), COLOUR.widths[-1])


def test_grey_data_gets_lenet_and_colour_data_the_resnet():
    assert classifier_training.default_recipe((1, 28, 28)).architecture == "lenet"
    assert classifier_training.default_recipe((3, 32, 32)).architecture == "resnet"


def test_a_second_call_loads_the_cached_classifier_without_training(grey, cached, monkeypatch):
    cache, first = cached
    monkeypatch.setattr(feature_cache, "train_classifier", lambda *args: pytest.fail("trained again"))
    classifier, info = feature_extractor(grey, cache, CPU, recipe=GREY)
    assert not info["trained_now"] and info["cache_path"] == first["cache_path"]
    assert info["test_accuracy"] == first["test_accuracy"] and info["val_accuracy"] == first["val_accuracy"]


def test_another_test_split_reuses_the_classifier_and_scores_it_there(grey, cached, monkeypatch):
    monkeypatch.setattr(feature_cache, "train_classifier", lambda *args: pytest.fail("trained again"))
    fewer = dataclasses.replace(grey, test=grey.test.head(6))
    classifier, info = feature_extractor(fewer, cached[0], CPU, recipe=GREY)
    predicted = classifier.predict(fewer.test.images)
    assert info["test_accuracy"] == pytest.approx((predicted == fewer.test.labels).float().mean().item())


def test_the_key_follows_the_training_data_and_the_recipe_not_the_test_split(grey):
    key = cache_key(grey, GREY, seed=0)
    pixel = grey.train.images.clone()
    pixel[0, 0, 0, 0] ^= 1
    label = grey.val.labels.clone()
    label[0] = (label[0] + 1) % 3
    changed = [
        dataclasses.replace(grey, train=dataclasses.replace(grey.train, images=pixel)),
        dataclasses.replace(grey, val=dataclasses.replace(grey.val, labels=label)),
    ]
    assert all(cache_key(data, GREY, 0) != key for data in changed)
    recipes = [dataclasses.replace(GREY, lr=2e-2), dataclasses.replace(GREY, version=RECIPE_VERSION + 1)]
    assert all(cache_key(grey, recipe, 0) != key for recipe in recipes)
    assert cache_key(grey, GREY, seed=1) != key
    assert cache_key(dataclasses.replace(grey, test=grey.test.head(3)), GREY, 0) == key


def test_the_same_seed_trains_the_same_weights(grey, cached, tmp_path):
    again, _ = feature_extractor(grey, tmp_path, CPU, recipe=GREY)
    stored = torch.load(cached[1]["cache_path"], weights_only=True)["state_dict"]
    assert all(torch.equal(value, stored[name]) for name, value in again.state_dict().items())


def test_training_leaves_the_callers_random_state_as_it_was(grey):
    state = torch.get_rng_state()
    trained = classifier_training.train_classifier(grey, dataclasses.replace(GREY, epochs=1), 0, CPU)
    assert torch.equal(torch.get_rng_state(), state)
    assert trained.best_epoch == 1 and not trained.classifier.training and trained.classifier.head.weight.device == CPU


def test_fewer_training_images_than_a_batch_keep_the_untrained_weights(grey):
    """No full batch, no step: every epoch would keep the untrained weights, so epoch 1 is chosen."""
    recipe = dataclasses.replace(GREY, batch_size=len(grey.train) + 1)
    trained = classifier_training.train_classifier(grey, recipe, 0, CPU)
    torch.manual_seed(0)
    untrained = recipe.build(grey.image_shape, grey.num_classes).state_dict()
    assert trained.best_epoch == 1 and set(trained.val) == {"accuracy", "binary_accuracy"}
    assert all(torch.equal(value, untrained[name]) for name, value in trained.classifier.state_dict().items())


def _damage(path: Path, how: str) -> None:
    entry = torch.load(path, weights_only=True)
    if how == "truncated":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif how == "garbage":
        path.write_bytes(b"\x00garbage" * 100)
    elif how == "fields":
        torch.save({"key": entry["key"]}, path)
    elif how == "key":
        torch.save({**entry, "key": "0" * 64}, path)
    elif how == "weights":
        torch.save({**entry, "state_dict": {**entry["state_dict"], "head.weight": torch.zeros(2, 2)}}, path)


@pytest.mark.parametrize("how", ["truncated", "garbage", "fields", "key", "weights"])
def test_a_damaged_entry_is_retrained_with_a_warning_and_replaced(grey, cached, tmp_path, how, caplog):
    cache = copy_of(cached[0], tmp_path)
    path = cache / Path(cached[1]["cache_path"]).name
    _damage(path, how)
    _, info = feature_extractor(grey, cache, CPU, recipe=GREY)
    assert info["trained_now"] and "damaged feature-classifier cache entry" in caplog.text
    assert not feature_extractor(grey, cache, CPU, recipe=GREY)[1]["trained_now"]


def _ask_in_child(cache: str, counter: str) -> bool:
    """In a spawned process: the feature extractor of the grey data, counting the trainings in ``counter``."""
    torch.set_num_threads(1)
    train = feature_cache.train_classifier

    def counted(*args):
        with open(counter, "a") as file:
            file.write("trained\n")
        time.sleep(1)  # hold the lock a while, so that the other process surely asks meanwhile
        return train(*args)

    feature_cache.train_classifier = counted
    return feature_extractor(synthetic(), Path(cache), CPU, recipe=GREY)[1]["trained_now"]


@pytest.mark.slow
def test_two_processes_asking_at_once_train_once(tmp_path):
    counter = tmp_path / "trainings"
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        trained = pool.starmap(_ask_in_child, [(str(tmp_path / "cache"), str(counter))] * 2)
    assert sorted(trained) == [False, True] and counter.read_text() == "trained\n"
    assert [p.suffix for p in sorted((tmp_path / "cache").iterdir())] == [".pt", ".lock"]


def test_data_without_labels_is_refused_in_one_line(grey, tmp_path):
    flat = dataclasses.replace(grey, name="folder", class_names=("images",))
    with pytest.raises(ConfigError, match=r"^dataset=folder: has no class labels.*one sub-folder per class$") as error:
        feature_extractor(flat, tmp_path / "cache", CPU, recipe=GREY)
    assert "\n" not in str(error.value) and not (tmp_path / "cache").exists()


def test_an_unwritable_cache_folder_is_one_line_naming_the_setting(grey, tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match=r"^quality\.cache_dir=.*file: cannot be written"):
        feature_extractor(grey, tmp_path / "file", CPU, recipe=GREY)
