"""The VAE of the source paper as a Pyro model and guide.

model: z ~ N(0, I),  x | z ~ p(x | decoder(z))      (one event per image)
guide: z | x ~ N(mu(x), diag sigma(x)^2)           (amortized by the encoder)

Both run under a plate over the minibatch, scaled so that the ELBO estimate is the one of the
whole training set of ``num_data`` images. Two variants share the code: a conditional VAE
(``model=cvae``: encoder and decoder also see the one-hot label y) and a Bayesian decoder
(``decoder.bayesian=true``: Normal priors on the decoder's weights, a mean-field guide for them).
"""

from typing import Optional, Tuple

import pyro
import pyro.distributions as dist
import torch
from omegaconf import DictConfig
from pyro import poutine
from torch import nn
from torch.nn import functional as F

from .bayesian import MeanFieldWeights, make_bayesian_
from .likelihoods import build_likelihood
from .networks import NETWORKS


class VAE(nn.Module):
    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        pixels: nn.Module,
        latent_dim: int,
        num_classes: int = 0,
        weight_guide: Optional[MeanFieldWeights] = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.pixels = pixels
        self.latent_dim = latent_dim
        self.num_classes = num_classes  # > 0: conditional on the label
        self.weight_guide = weight_guide  # not None: Bayesian decoder

    @property
    def conditional(self) -> bool:
        return self.num_classes > 0

    @property
    def bayesian(self) -> bool:
        return self.weight_guide is not None

    def _context(self, y: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """The one-hot label a conditional VAE sees; nothing for an unconditional one."""
        if not self.conditional:
            return None
        if y is None:
            raise ValueError("this VAE is conditional (model=cvae): pass the labels y")
        return F.one_hot(y, self.num_classes).float()

    def _decoder_input(self, z: torch.Tensor, y: Optional[torch.Tensor]) -> torch.Tensor:
        context = self._context(y)
        if context is None:
            return z
        return torch.cat([z, context.expand(*z.shape[:-1], self.num_classes)], dim=-1)

    def prior(self, batch_size: int, like: torch.Tensor) -> dist.TorchDistribution:
        """p(z) = N(0, I) for ``batch_size`` images, on the device and dtype of ``like``."""
        loc = like.new_zeros(batch_size, self.latent_dim)
        return dist.Normal(loc, torch.ones_like(loc)).to_event(1)

    def guide_dist(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> dist.TorchDistribution:
        """q(z|x) (q(z|x,y) when conditional): a diagonal Gaussian, one event of ``latent_dim`` per image."""
        loc, scale = self.encoder(x, self._context(y))
        return dist.Normal(loc, scale).to_event(1)

    def likelihood(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> dist.TorchDistribution:
        """p(x|z) (p(x|z,y) when conditional), one event per image; a Bayesian decoder
        decodes with one draw of its weights from their guide q(W)."""
        decoder = poutine.condition(self.decoder, data=self.weight_guide.draw()) if self.bayesian else self.decoder
        return self.pixels(decoder(self._decoder_input(z, y)))

    @staticmethod
    def _kl_weighting(kl_weight: float):
        """Pyro's handler that weights the latent site's log-densities by ``kl_weight`` (beta);
        ``poutine.scale`` takes positive weights only, so beta = 0 masks them out instead."""
        return poutine.scale(scale=kl_weight) if kl_weight > 0 else poutine.mask(mask=False)

    def _data_plate(self, x: torch.Tensor, num_data: Optional[int]):
        batch_size = x.shape[0]
        return pyro.plate("data", batch_size, dim=-1), poutine.scale(scale=(num_data or batch_size) / batch_size)

    def model(
        self, x: torch.Tensor, y: Optional[torch.Tensor] = None, num_data: Optional[int] = None, kl_weight: float = 1.0
    ) -> None:
        pyro.module("decoder", self.decoder)
        pyro.module("pixels", self.pixels)
        plate, scale = self._data_plate(x, num_data)
        with plate, scale, self._kl_weighting(kl_weight):
            z = pyro.sample("z", self.prior(x.shape[0], x))
        # Decoded outside the plate, so that a Bayesian decoder's weights are drawn, and their
        # prior counted, once per step rather than once per image.
        out = self.decoder(self._decoder_input(z, y))
        with plate, scale:  # the likelihood sees x too: a calibrated sigma is fitted to it in training
            pyro.sample("x", self.pixels(out, x), obs=x)

    def guide(
        self, x: torch.Tensor, y: Optional[torch.Tensor] = None, num_data: Optional[int] = None, kl_weight: float = 1.0
    ) -> None:
        pyro.module("encoder", self.encoder)
        if self.bayesian:
            pyro.module("weights", self.weight_guide)
            self.weight_guide()
        plate, scale = self._data_plate(x, num_data)
        with plate, scale, self._kl_weighting(kl_weight):
            pyro.sample("z", self.guide_dist(x, y))


def build_vae(cfg: DictConfig, image_shape: Tuple[int, int, int], num_classes: int) -> VAE:
    """The VAE described by ``cfg`` (``model``, ``net``, ``likelihood``, ``decoder``, ``latent_dim``)
    for images of ``image_shape`` in ``num_classes`` classes."""
    pixels = build_likelihood(cfg.likelihood, image_shape)
    net = cfg.net
    widths_key, encoder_type, decoder_type = NETWORKS[net.name]
    widths = list(net[widths_key])
    context_dim = num_classes if cfg.model.name == "cvae" else 0
    encoder = encoder_type(image_shape, widths, cfg.latent_dim, net.activation, net.min_scale, context_dim)
    decoder = decoder_type(
        cfg.latent_dim + context_dim, widths[::-1], image_shape, pixels.params_per_pixel, net.activation
    )
    weight_guide = None
    if cfg.decoder.bayesian:
        initial = make_bayesian_(decoder, cfg.decoder.prior_scale)
        weight_guide = MeanFieldWeights(initial, cfg.decoder.init_scale, cfg.decoder.prior_scale)
    return VAE(encoder, decoder, pixels, cfg.latent_dim, context_dim, weight_guide)
