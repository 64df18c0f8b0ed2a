"""A DCGAN (Radford et al. 2016) to compare the VAE's samples with: a generator G(z), z ~ N(0, I),
and a discriminator D(x), trained with the non-saturating loss (Goodfellow et al. 2014, section 3).

Both networks are convolutional and sized from the image shape: 32x32 images are built up from 4x4
(three stride-2 layers), 28x28 images from 7x7 (two). Batch norm follows every hidden layer of G
and every hidden layer of D but its first; D uses leaky ReLUs (slope 0.2), G ReLUs and a sigmoid, so
that its samples lie in [0, 1] as the data's pixels do. A GAN defines no density: it has no ELBO
or log p(x), only samples.
"""

import math
from typing import List, Tuple

import torch
import torch.nn.functional as F
from torch import nn

ImageShape = Tuple[int, int, int]

# The smallest feature maps of each supported image side: 4x4 (DCGAN's) for 32, 7x7 for 28.
BASE_SIDES = {32: 4, 28: 7}
LEAKY_SLOPE = 0.2
INIT_SCALE = 0.02  # DCGAN's N(0, 0.02) initial weights
SAMPLE_CHUNK = 1024  # draws generated at once by GAN.sample: memory stays bounded whatever n


def supported_shape_refusal(image_shape: ImageShape) -> "str | None":
    """Why the DCGAN networks cannot be built for ``image_shape``, or None."""
    _, height, width = image_shape
    if height != width or height not in BASE_SIDES:
        sides = " and ".join(f"{side}x{side}" for side in sorted(BASE_SIDES))
        return f"the DCGAN networks of model=gan are built for {sides} images, not {height}x{width}"
    return None


def _layer_widths(image_shape: ImageShape, width: int) -> List[int]:
    """Channels of the hidden feature maps from the smallest to the image's side: ``width`` at the largest,
    doubling at each stride-2 step toward the smallest."""
    refusal = supported_shape_refusal(image_shape)
    if refusal:
        raise ValueError(refusal)
    side = image_shape[1]
    steps = int(math.log2(side // BASE_SIDES[side]))
    return [width * 2**k for k in reversed(range(steps))]


class Generator(nn.Module):
    """G(z): latent codes (B, latent_dim) to images (B, C, H, W) in [0, 1]."""

    def __init__(self, latent_dim: int, image_shape: ImageShape, width: int) -> None:
        super().__init__()
        channels, side = image_shape[0], image_shape[1]
        widths = _layer_widths(image_shape, width)
        base = BASE_SIDES[side]
        layers: List[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, widths[0], base, 1, 0, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.ReLU(),
        ]
        for inner, outer in zip(widths, widths[1:]):
            layers += [nn.ConvTranspose2d(inner, outer, 4, 2, 1, bias=False), nn.BatchNorm2d(outer), nn.ReLU()]
        layers += [nn.ConvTranspose2d(widths[-1], channels, 4, 2, 1), nn.Sigmoid()]
        self.net = nn.Sequential(*layers)
        self.latent_dim = latent_dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z[:, :, None, None])


class Discriminator(nn.Module):
    """D(x): images (B, C, H, W) to one logit each (B,), log D / (1 - D) of "x is a training image"."""

    def __init__(self, image_shape: ImageShape, width: int) -> None:
        super().__init__()
        channels, side = image_shape[0], image_shape[1]
        widths = _layer_widths(image_shape, width)[::-1]
        layers: List[nn.Module] = [nn.Conv2d(channels, widths[0], 4, 2, 1), nn.LeakyReLU(LEAKY_SLOPE)]
        for inner, outer in zip(widths, widths[1:]):
            layers += [nn.Conv2d(inner, outer, 4, 2, 1, bias=False), nn.BatchNorm2d(outer), nn.LeakyReLU(LEAKY_SLOPE)]
        layers.append(nn.Conv2d(widths[-1], 1, BASE_SIDES[side], 1, 0))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).flatten()


def _dcgan_init_(module: nn.Module) -> None:
    """DCGAN's initialisation: convolutions N(0, 0.02), batch-norm scales N(1, 0.02), shifts and biases 0."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(module.weight, 0.0, INIT_SCALE)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.normal_(module.weight, 1.0, INIT_SCALE)
        nn.init.zeros_(module.bias)


class GAN(nn.Module):
    """The generator and discriminator of one DCGAN; :meth:`sample` draws images from G."""

    conditional = False  # draws no labels; the settings checks ask every model class

    def __init__(self, latent_dim: int, image_shape: ImageShape, generator_width: int, discriminator_width: int):
        super().__init__()
        self.latent_dim = latent_dim
        self.image_shape = tuple(image_shape)
        self.generator = Generator(latent_dim, image_shape, generator_width)
        self.discriminator = Discriminator(image_shape, discriminator_width)
        self.apply(_dcgan_init_)

    def latent_draws(self, n: int) -> torch.Tensor:
        """z ~ N(0, I), ``n`` of them, on the networks' device."""
        return torch.randn(n, self.latent_dim, device=next(self.parameters()).device)

    @torch.no_grad()
    def sample(self, n: int) -> torch.Tensor:
        """``n`` images G(z), z ~ N(0, I): (n, C, H, W) in [0, 1], ``SAMPLE_CHUNK`` at a time (batch norm
        as the module's mode has it: put it in eval mode for its running statistics)."""
        chunks = [
            self.generator(self.latent_draws(min(SAMPLE_CHUNK, n - start))) for start in range(0, n, SAMPLE_CHUNK)
        ]
        return torch.cat(chunks)


def discriminator_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """-log D(x) - log(1 - D(G(z))), averaged over each batch: D's cross-entropy, real labelled 1 and fake 0."""
    real = F.binary_cross_entropy_with_logits(real_logits, torch.ones_like(real_logits))
    fake = F.binary_cross_entropy_with_logits(fake_logits, torch.zeros_like(fake_logits))
    return real + fake


def generator_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """The non-saturating loss -log D(G(z)), averaged: its gradient stays large while D rejects the samples,
    where the minimax log(1 - D(G(z))) vanishes."""
    return F.binary_cross_entropy_with_logits(fake_logits, torch.ones_like(fake_logits))
