"""Encoder and decoder networks. Both accept any number of leading batch dimensions,
so vectorized particles (IWAE, num_particles > 1) pass straight through."""

from math import prod
from typing import Callable, List, NamedTuple, Optional, Sequence, Tuple, Type

import pyro.distributions as dist
import torch
from torch import nn

from ..setting_types import Activation
from .guides import DiagonalGaussian, GuideFamily

ACTIVATIONS = {
    Activation.relu: nn.ReLU,
    Activation.tanh: nn.Tanh,
    Activation.softplus: nn.Softplus,
    Activation.elu: nn.ELU,
}

ImageShape = Tuple[int, int, int]


def mlp(in_dim: int, widths: Sequence[int], out_dim: int, activation: str) -> nn.Sequential:
    """Linear layers with ``activation`` between them and none after the last."""
    layers = []
    for width in widths:
        layers += [nn.Linear(in_dim, width), ACTIVATIONS[activation]()]
        in_dim = width
    layers.append(nn.Linear(in_dim, out_dim))
    return nn.Sequential(*layers)


class GaussianEncoder(nn.Module):
    """x (and an optional context, e.g. a one-hot label) -> the parameters of the Gaussian q(z|x).

    ``features`` maps one batch axis of images to flat features; ``head`` maps the features,
    with the context appended, to the ``family.num_params`` numbers that ``family`` (a
    ``guides.DiagonalGaussian`` or ``guides.FullCovarianceGaussian``) turns into (loc, scale) or
    (loc, scale_tril), with the scales floored.
    """

    def __init__(self, features: nn.Module, head: nn.Module, family: GuideFamily) -> None:
        super().__init__()
        self.features = features
        self.head = head
        self.family = family

    def forward(self, x: torch.Tensor, context: Optional[torch.Tensor] = None) -> Tuple[torch.Tensor, torch.Tensor]:
        h = over_leading_dims(self.features, x, 3)
        if context is not None:
            h = torch.cat([h, context.expand(*h.shape[:-1], context.shape[-1])], dim=-1)
        return self.family.split_head(self.head(h))


class MLPEncoder(GaussianEncoder):
    """Flattened pixels through fully connected layers."""

    def __init__(
        self,
        image_shape: ImageShape,
        widths: Sequence[int],
        latent_dim: int,
        activation: str,
        min_scale: float,
        context_dim: int = 0,
        guide: Type[GuideFamily] = DiagonalGaussian,
    ) -> None:
        family = guide(latent_dim, min_scale)
        head = mlp(prod(image_shape) + context_dim, widths, family.num_params, activation)
        super().__init__(nn.Flatten(), head, family)


class GaussianLayer(nn.Module):
    """A stochastic layer given the one before it: v -> N(mu(v), diag sigma(v)^2) through fully connected
    layers, sigma floored as the guide's is. Two stochastic layers use it both ways: q(z2|z1) and p(z1|z2)."""

    def __init__(self, in_dim: int, widths: Sequence[int], out_dim: int, activation: str, min_scale: float) -> None:
        super().__init__()
        self.family = DiagonalGaussian(out_dim, min_scale)
        self.body = mlp(in_dim, widths, self.family.num_params, activation)

    def forward(self, v: torch.Tensor) -> dist.TorchDistribution:
        return self.family.distribution(*self.family.split_head(self.body(v)))


class MLPDecoder(nn.Module):
    """z -> the likelihood's parameters, ``params_per_pixel`` stacked along the channel axis."""

    def __init__(
        self,
        latent_dim: int,
        widths: Sequence[int],
        image_shape: ImageShape,
        params_per_pixel: int,
        activation: str,
    ) -> None:
        super().__init__()
        channels, height, width = image_shape
        self.out_shape = (params_per_pixel * channels, height, width)
        self.body = mlp(latent_dim, widths, prod(self.out_shape), activation)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.body(z).unflatten(-1, self.out_shape)


# Every convolution halves the spatial size (rounding down); ``conv_sizes`` is the only place
# that turns these into shapes, and ConvDecoder inverts them exactly with output_padding.
KERNEL, STRIDE, PADDING = 4, 2, 1


def conv_sizes(image_shape: ImageShape, num_layers: int) -> List[Tuple[int, int]]:
    """(height, width) of the image, then after each of ``num_layers`` stride-2 convolutions.

    Raises ValueError when a layer would shrink the map to nothing.
    """
    _, height, width = image_shape
    sizes = [(height, width)]
    for _ in range(num_layers):
        h, w = ((n + 2 * PADDING - KERNEL) // STRIDE + 1 for n in sizes[-1])
        if min(h, w) < 1:
            raise ValueError(
                f"{num_layers} stride-{STRIDE} convolutions shrink a {height}x{width} image to nothing; use at "
                f"most {len(sizes) - 1} layers"
            )
        sizes.append((h, w))
    return sizes


def over_leading_dims(body: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, event_dims: int) -> torch.Tensor:
    """Apply ``body``, which wants exactly one batch axis, to ``x`` with any number of leading
    dimensions (e.g. Pyro's (particles, batch, ...)): merge them, run, split them back."""
    lead = x.shape[: x.dim() - event_dims]
    y = body(x.reshape(prod(lead), *x.shape[len(lead) :]))
    return y.reshape(*lead, *y.shape[1:])


class ConvEncoder(GaussianEncoder):
    """One stride-2 convolution per ``channels`` entry, then a linear layer; suits images
    better than flattening them first."""

    def __init__(
        self,
        image_shape: ImageShape,
        channels: Sequence[int],
        latent_dim: int,
        activation: str,
        min_scale: float,
        context_dim: int = 0,
        guide: Type[GuideFamily] = DiagonalGaussian,
    ) -> None:
        family = guide(latent_dim, min_scale)
        height, width = conv_sizes(image_shape, len(channels))[-1]
        widths = [image_shape[0], *channels]
        layers = []
        for c_in, c_out in zip(widths, widths[1:]):
            layers += [nn.Conv2d(c_in, c_out, KERNEL, STRIDE, PADDING), ACTIVATIONS[activation]()]
        head = nn.Linear(widths[-1] * height * width + context_dim, family.num_params)
        super().__init__(nn.Sequential(*layers, nn.Flatten()), head, family)


class ConvDecoder(nn.Module):
    """z -> the likelihood's parameters like MLPDecoder, mirroring ConvEncoder: a linear layer to
    the smallest feature map, then stride-2 transposed convolutions back to exactly H x W.

    ``channels`` is in decoder order (the encoder's reversed), as MLPDecoder's ``widths``.
    """

    def __init__(
        self, latent_dim: int, channels: Sequence[int], image_shape: ImageShape, params_per_pixel: int, activation: str
    ) -> None:
        super().__init__()
        sizes = conv_sizes(image_shape, len(channels))[::-1]
        widths = [*channels, params_per_pixel * image_shape[0]]
        layers = [nn.Linear(latent_dim, widths[0] * prod(sizes[0])), nn.Unflatten(1, (widths[0], *sizes[0]))]
        for c_in, c_out, small, big in zip(widths, widths[1:], sizes, sizes[1:]):
            # A stride-2 convolution rounds odd sizes down; output_padding restores the lost row/column.
            output_padding = tuple(b - ((s - 1) * STRIDE - 2 * PADDING + KERNEL) for s, b in zip(small, big))
            layers += [
                ACTIVATIONS[activation](),
                nn.ConvTranspose2d(c_in, c_out, KERNEL, STRIDE, PADDING, output_padding),
            ]
        self.body = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return over_leading_dims(self.body, z, 1)


class Networks(NamedTuple):
    """An encoder class and the decoder class that mirrors it; both take the same layer widths."""

    encoder: Type[nn.Module]
    decoder: Type[nn.Module]


MLP = Networks(MLPEncoder, MLPDecoder)
CONV = Networks(ConvEncoder, ConvDecoder)
