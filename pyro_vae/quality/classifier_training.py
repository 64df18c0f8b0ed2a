"""The recipe that trains a data set's feature classifier, and the training itself.

The features score VAE samples of two kinds: decoder means (grey Bernoulli probabilities) and binary
draws from them. A classifier trained on grey images alone sees binary images as out of
distribution (their features drift, whatever their class), so for grey data half of every training
batch is binarized afresh (a Bernoulli draw of each pixel's grey level, as ``dataset.binarize=dynamic``
draws it): both kinds are then in distribution, and the figures of the two kinds compare. Colour data
has no binary view (its likelihoods model grey levels), so it trains on the images as they are.

Adam with a cosine decay of the learning rate over ``epochs``, stepped every batch, in Lightning's
Trainer; after each epoch the accuracy on the validation split (the mean over its grey and binary
views) is measured, and the weights of the best epoch are kept: the validation split, never the test
split, chooses. All draws come from ``seed``.
"""

import copy
import logging
import time
from dataclasses import asdict, dataclass
from typing import Any, Dict, Optional, Sequence, Tuple

import lightning.pytorch as pl
import torch

from ..data.batches import MinibatchSampler, ShuffledIndices
from ..data.splits import DataSplits, LabelledImages
from ..data.transform import Binarization, Observation, PixelTransform
from ..lightning_defaults import epoch_bars
from .classifier import FeatureClassifier, as_pixels, lenet, resnet

log = logging.getLogger(__name__)

# Raise it whenever training changes in a way the fields below do not show: every cached classifier
# is then retrained.
RECIPE_VERSION = 1


@dataclass(frozen=True)
class Recipe:
    """How a feature classifier is built and trained: its ``architecture`` (lenet or resnet), its
    ``widths`` (lenet: its two convolutions; resnet: its stages), ``feature_dim`` (lenet's feature
    layer; None for resnet, whose features are ``widths[-1]``), the Adam steps, and the fraction of each
    batch binarized (0 for colour data)."""

    architecture: str
    widths: Tuple[int, ...]
    feature_dim: Optional[int]
    epochs: int
    lr: float
    batch_size: int
    binarized_fraction: float
    version: int = RECIPE_VERSION

    def build(self, image_shape: Sequence[int], num_classes: int) -> FeatureClassifier:
        channels = image_shape[0]
        if self.architecture == "lenet":
            return lenet(channels, num_classes, self.widths, self.feature_dim)
        return resnet(channels, num_classes, self.widths)

    def as_dict(self) -> Dict[str, Any]:
        """The recipe as plain values (JSON, and a ``weights_only`` checkpoint), widths as a list."""
        return {**asdict(self), "widths": list(self.widths)}


# LeNet's epochs and lr were chosen on MNIST's validation split (grey / binary accuracy, 5 epochs, seed 0):
# lr 1e-3 98.87% / 98.56%, lr 3e-3 99.18% / 98.94%; batch norm after each convolution, 4 epochs at 3e-3,
# 99.02% / 98.74%. An epoch of 50,000 images takes 30-100 s on one (shared) CPU thread. The ResNet's
# recipe is untested on CIFAR-10, whose files are not here: about 80 s an epoch on one thread.
LENET = Recipe("lenet", (32, 64), 128, epochs=5, lr=3e-3, batch_size=128, binarized_fraction=0.5)
RESNET = Recipe("resnet", (16, 32, 64), None, epochs=8, lr=3e-3, batch_size=128, binarized_fraction=0.0)


def default_recipe(image_shape: Sequence[int]) -> Recipe:
    """LeNet for grey images (one channel), the ResNet for colour ones."""
    return LENET if image_shape[0] == 1 else RESNET


@dataclass(frozen=True)
class Trained:
    """A trained classifier (in eval mode, on the training device) and what its training measured."""

    classifier: FeatureClassifier
    val: Dict[str, float]
    best_epoch: int
    train_seconds: float


def accuracies(
    classifier: FeatureClassifier, split: LabelledImages, name: str, recipe: Recipe, seed: int
) -> Dict[str, float]:
    """``accuracy`` on the grey images of the split ``name`` (val or test), and ``binary_accuracy`` on one
    binary draw of them (seeded by ``seed``) where the recipe trains on binary images too."""
    figures = {"accuracy": _accuracy(classifier, as_pixels(split.images), split.labels)}
    if recipe.binarized_fraction > 0:
        draw = PixelTransform(Binarization.static, seed, Observation.binary).fixed(split.images, name)
        figures["binary_accuracy"] = _accuracy(classifier, draw, split.labels)
    return figures


def _accuracy(classifier: FeatureClassifier, images: torch.Tensor, labels: torch.Tensor) -> float:
    return (classifier.predict(images) == labels.to(images.device)).float().mean().item()


class ClassifierTraining(pl.LightningModule):
    """The classifier's steps (cross-entropy, Adam, the cosine rate stepped every batch) and, after each
    epoch, its accuracies on ``data.val``; keeps the weights of the best epoch."""

    def __init__(
        self, classifier: FeatureClassifier, sampler: MinibatchSampler, data: DataSplits, recipe: Recipe, seed: int
    ) -> None:
        super().__init__()
        self.classifier, self.sampler, self.data, self.recipe, self.seed = classifier, sampler, data, recipe, seed
        self.best: Optional[Dict[str, torch.Tensor]] = None
        self.best_val: Optional[Dict[str, float]] = None
        self.best_epoch = 0

    def train_dataloader(self) -> ShuffledIndices:
        return ShuffledIndices(self.sampler)

    def configure_optimizers(self) -> Dict[str, Any]:
        optimizer = torch.optim.Adam(self.classifier.parameters(), lr=self.recipe.lr)
        schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.recipe.epochs * len(self.sampler))
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "step"}}

    def training_step(self, index: torch.Tensor, step: int) -> torch.Tensor:
        images, labels = self.sampler.batch(index)
        return torch.nn.functional.cross_entropy(self.classifier(images), labels)

    def on_train_epoch_end(self) -> None:
        epoch = self.current_epoch + 1
        val = accuracies(self.classifier, self.data.val, "val", self.recipe, self.seed)
        log.info("feature classifier epoch %d/%d: validation %s", epoch, self.recipe.epochs, _percent(val))
        if self.best_val is None or _score(val) > _score(self.best_val):
            self.best, self.best_val, self.best_epoch = copy.deepcopy(self.classifier.state_dict()), val, epoch


def train_classifier(data: DataSplits, recipe: Recipe, seed: int, device: torch.device) -> Trained:
    """Train ``recipe``'s classifier on ``data.train``, keeping the epoch best on ``data.val``; the
    caller's random state is left as it was."""
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        classifier = recipe.build(data.image_shape, data.num_classes).to(device)
        sampler = MinibatchSampler(
            data.train.images.to(device), data.train.labels.to(device), recipe.batch_size, _view(recipe)
        )
        module = ClassifierTraining(classifier, sampler, data, recipe, seed)
        log.info("feature classifier: %d epochs of %d batches, trained once and cached", recipe.epochs, len(sampler))
        if len(sampler):
            _trainer(device, recipe.epochs).fit(module)
        else:  # fewer training images than a batch: no step, and every epoch would keep the untrained weights
            module.on_train_epoch_end()
    classifier.load_state_dict(module.best)
    classifier.to(device).eval()  # Lightning's teardown leaves the module on the CPU
    return Trained(classifier, module.best_val, module.best_epoch, time.perf_counter() - start)


def _trainer(device: torch.device, epochs: int) -> pl.Trainer:
    """One device, no files of Lightning's own (no logger, no checkpoints), a bar only on a terminal."""
    bar = epoch_bars("classifier epoch")
    return pl.Trainer(
        accelerator=device.type,
        devices=[device.index or 0] if device.type == "cuda" else 1,
        max_epochs=epochs,
        callbacks=bar,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=bool(bar),
        enable_model_summary=False,
        num_sanity_val_steps=0,
        limit_val_batches=0,
    )


def _view(recipe: Recipe):
    """The training view of a uint8 batch: grey levels, the first ``binarized_fraction`` of it binarized."""

    def view(batch: torch.Tensor) -> torch.Tensor:
        pixels = as_pixels(batch)
        binary = round(len(pixels) * recipe.binarized_fraction)
        pixels[:binary] = (torch.rand_like(pixels[:binary]) < pixels[:binary]).float()
        return pixels

    return view


def _score(figures: Dict[str, float]) -> float:
    """What chooses the epoch: the mean accuracy over the views, grey and binary alike."""
    return sum(figures.values()) / len(figures)


def _percent(figures: Dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.2%}" for name, value in figures.items())
