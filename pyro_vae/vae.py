"""The VAE of the source paper as a Pyro model and guide.

model: z ~ N(0, I),  x | z ~ p(x | decoder(z))      (one event per image)
guide: z | x ~ N(mu(x), diag sigma(x)^2)           (amortized by the encoder)

Both run under a plate over the minibatch, scaled so that the ELBO estimate is the one of
the whole training set of ``num_data`` images.
"""
from typing import Optional, Tuple

import pyro
import pyro.distributions as dist
import torch
from omegaconf import DictConfig
from pyro import poutine
from torch import nn

from .likelihoods import build_likelihood
from .networks import NETWORKS


class VAE(nn.Module):
    def __init__(self, encoder: nn.Module, decoder: nn.Module, pixels: nn.Module, latent_dim: int) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.pixels = pixels
        self.latent_dim = latent_dim

    def prior(self, batch_size: int, like: torch.Tensor) -> dist.TorchDistribution:
        """p(z) = N(0, I) for ``batch_size`` images, on the device and dtype of ``like``."""
        loc = like.new_zeros(batch_size, self.latent_dim)
        return dist.Normal(loc, torch.ones_like(loc)).to_event(1)

    def guide_dist(self, x: torch.Tensor) -> dist.TorchDistribution:
        """q(z|x): a diagonal Gaussian, one event of ``latent_dim`` per image."""
        loc, scale = self.encoder(x)
        return dist.Normal(loc, scale).to_event(1)

    def likelihood(self, z: torch.Tensor) -> dist.TorchDistribution:
        """p(x|z): one event per image."""
        return self.pixels(self.decoder(z))

    def _data_plate(self, x: torch.Tensor, num_data: Optional[int]):
        batch_size = x.shape[0]
        return pyro.plate("data", batch_size, dim=-1), poutine.scale(scale=(num_data or batch_size) / batch_size)

    def model(self, x: torch.Tensor, num_data: Optional[int] = None) -> None:
        pyro.module("decoder", self.decoder)
        pyro.module("pixels", self.pixels)
        plate, scale = self._data_plate(x, num_data)
        with plate, scale:
            z = pyro.sample("z", self.prior(x.shape[0], x))
            pyro.sample("x", self.likelihood(z), obs=x)

    def guide(self, x: torch.Tensor, num_data: Optional[int] = None) -> None:
        pyro.module("encoder", self.encoder)
        plate, scale = self._data_plate(x, num_data)
        with plate, scale:
            pyro.sample("z", self.guide_dist(x))


def build_vae(cfg: DictConfig, image_shape: Tuple[int, int, int]) -> VAE:
    """The VAE described by ``cfg`` (``net``, ``likelihood``, ``latent_dim``) for images of ``image_shape``."""
    pixels = build_likelihood(cfg.likelihood, image_shape)
    net = cfg.net
    widths_key, encoder_type, decoder_type = NETWORKS[net.name]
    widths = list(net[widths_key])
    encoder = encoder_type(image_shape, widths, cfg.latent_dim, net.activation, net.min_scale)
    decoder = decoder_type(cfg.latent_dim, widths[::-1], image_shape, pixels.params_per_pixel, net.activation)
    return VAE(encoder, decoder, pixels, cfg.latent_dim)
