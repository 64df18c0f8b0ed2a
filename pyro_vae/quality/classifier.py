"""The classifiers whose penultimate layer is the feature space of the sample-quality metrics.

A pretrained Inception network cannot be downloaded here, and its features would not suit 28x28
digits anyway, so each data set gets a small classifier of its own (``classifier_training``):
``lenet`` for grey images (two 3x3 convolutions and pooling, then a fully connected layer of
``feature_dim`` units, 128 by default: the features), ``resnet`` for colour images (a stem and one
residual block per stage of ``widths``, then global average pooling: ``widths[-1]`` features, 64 by
default). Both take any image side from 8 pixels up and float images in [0, 1], (N, C, H, W), as
the project's views give them; uint8 images are scaled by 1/255 first.
"""

from typing import Sequence

import torch
from torch import nn

from ..data.transform import LEVELS

ARCHITECTURES = ("lenet", "resnet")
LENET_GRID = 7  # the side of the last feature map LeNet flattens: 28 / 2 / 2, pooled to it at any other size


def as_pixels(images: torch.Tensor) -> torch.Tensor:
    """Float images in [0, 1]: uint8 ones divided by 255, float ones as they are."""
    return images.float().div_(LEVELS - 1) if images.dtype == torch.uint8 else images.float()


class FeatureClassifier(nn.Module):
    """A ``body`` mapping images to ``feature_dim`` features and a linear ``head`` to class logits."""

    def __init__(self, architecture: str, body: nn.Module, feature_dim: int, num_classes: int) -> None:
        super().__init__()
        self.architecture = architecture
        self.feature_dim = feature_dim
        self.body = body
        self.head = nn.Linear(feature_dim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, num_classes) of float images in [0, 1]."""
        return self.head(self.body(x))

    @torch.no_grad()
    def features(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """The penultimate layer, (N, feature_dim) float32 on the classifier's device, computed in
        eval mode ``batch_size`` images at a time, so that 10,000 images never sit in one batch."""
        return self._batched(self.body, images, batch_size)

    @torch.no_grad()
    def predict(self, images: torch.Tensor, batch_size: int = 1000) -> torch.Tensor:
        """The predicted class (N,) int64 of each image (a conditional VAE's samples are scored by it)."""
        return self._batched(self, images, batch_size).argmax(dim=1)

    def _batched(self, network: nn.Module, images: torch.Tensor, batch_size: int) -> torch.Tensor:
        was_training = self.training
        self.eval()
        device = self.head.weight.device
        try:
            return torch.cat(
                [network(as_pixels(images[i : i + batch_size].to(device))) for i in range(0, len(images), batch_size)]
            )
        finally:
            self.train(was_training)


def lenet(channels: int, num_classes: int, widths: Sequence[int], feature_dim: int) -> FeatureClassifier:
    """Conv 3x3 (``widths[0]``), ReLU, max-pool 2, conv 3x3 (``widths[1]``), ReLU, max-pool 2, a 7x7 grid,
    then a ``feature_dim``-unit ReLU layer: the features."""
    first, second = widths
    body = nn.Sequential(
        nn.Conv2d(channels, first, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.Conv2d(first, second, 3, padding=1),
        nn.ReLU(),
        nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(LENET_GRID),  # the identity at 28x28
        nn.Flatten(),
        nn.Linear(second * LENET_GRID**2, feature_dim),
        nn.ReLU(),
    )
    return FeatureClassifier("lenet", body, feature_dim, num_classes)


class ResidualBlock(nn.Module):
    """Two 3x3 convolutions with batch norm, added to the input (projected by a 1x1 convolution where
    the width or the stride changes), as in He et al.'s CIFAR ResNets."""

    def __init__(self, inputs: int, outputs: int, stride: int) -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(inputs, outputs, 3, stride=stride, padding=1, bias=False),
            nn.BatchNorm2d(outputs),
            nn.ReLU(),
            nn.Conv2d(outputs, outputs, 3, padding=1, bias=False),
            nn.BatchNorm2d(outputs),
        )
        self.shortcut = (
            nn.Identity()
            if inputs == outputs and stride == 1
            else nn.Sequential(nn.Conv2d(inputs, outputs, 1, stride=stride, bias=False), nn.BatchNorm2d(outputs))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.residual(x) + self.shortcut(x))


def resnet(channels: int, num_classes: int, widths: Sequence[int]) -> FeatureClassifier:
    """A 3x3 stem of ``widths[0]`` channels, one residual block per width (each after the first halving
    the side), and global average pooling: ``widths[-1]`` features."""
    layers = [nn.Conv2d(channels, widths[0], 3, padding=1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU()]
    for stage, width in enumerate(widths):
        layers.append(ResidualBlock(widths[max(stage - 1, 0)], width, stride=1 if stage == 0 else 2))
    body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
    return FeatureClassifier("resnet", body, widths[-1], num_classes)
