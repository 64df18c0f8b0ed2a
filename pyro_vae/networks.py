"""Encoder and decoder networks. Both accept any number of leading batch dimensions,
so vectorized particles (IWAE, num_particles > 1) pass straight through."""
from math import prod
from typing import Sequence, Tuple

import torch
from torch import nn
from torch.nn import functional as F

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "softplus": nn.Softplus, "elu": nn.ELU}

ImageShape = Tuple[int, int, int]


def mlp(in_dim: int, hidden_dims: Sequence[int], out_dim: int, activation: str) -> nn.Sequential:
    """Linear layers with ``activation`` between them and none after the last."""
    layers = []
    for width in hidden_dims:
        layers += [nn.Linear(in_dim, width), ACTIVATIONS[activation]()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class MLPEncoder(nn.Module):
    """x -> (loc, scale) of the diagonal Gaussian q(z|x); the scale is softplus plus a floor."""

    def __init__(self, image_shape: ImageShape, hidden_dims: Sequence[int], latent_dim: int, activation: str, min_scale: float) -> None:
        super().__init__()
        self.image_dims = len(image_shape)
        self.body = mlp(prod(image_shape), hidden_dims, 2 * latent_dim, activation)
        self.min_scale = min_scale

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        loc, raw_scale = self.body(x.flatten(-self.image_dims)).chunk(2, dim=-1)
        return loc, F.softplus(raw_scale) + self.min_scale


class MLPDecoder(nn.Module):
    """z -> the likelihood's parameters, ``params_per_pixel`` stacked along the channel axis."""

    def __init__(self, latent_dim: int, hidden_dims: Sequence[int], image_shape: ImageShape, params_per_pixel: int, activation: str) -> None:
        super().__init__()
        channels, height, width = image_shape
        self.out_shape = (params_per_pixel * channels, height, width)
        self.body = mlp(latent_dim, hidden_dims, prod(self.out_shape), activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z).unflatten(-1, self.out_shape)
