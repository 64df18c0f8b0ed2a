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

from .likelihoods import build_likelihood
from .networks import NETWORKS
from .weights import MeanFieldWeights, make_bayesian_


class VAE(nn.Module):
    """Encoder, decoder and likelihood of the paper's VAE, and the Pyro model and guide built from them.

    ``context_dim`` > 0 makes it conditional: both networks also see a one-hot label of that size.
    ``weight_guide`` makes the decoder Bayesian: q(W) over its weights, which carry priors.
    """

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: nn.Module,
        latent_dim: int,
        context_dim: int = 0,
        weight_guide: Optional[MeanFieldWeights] = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood  # the observation model: decoder outputs -> p(x|z)
        self.latent_dim = latent_dim
        self.context_dim = context_dim
        self.weight_guide = weight_guide
        # p(z)'s mean and standard deviation: buffers, so that they follow the VAE's device and dtype.
        self.register_buffer("prior_loc", torch.zeros(latent_dim), persistent=False)
        self.register_buffer("prior_scale", torch.ones(latent_dim), persistent=False)

    @property
    def conditional(self) -> bool:
        return self.context_dim > 0

    @property
    def bayesian(self) -> bool:
        return self.weight_guide is not None

    # The three distributions of the derivation.

    def prior(self, batch_size: int) -> dist.TorchDistribution:
        """p(z) = N(0, I), one event of ``latent_dim`` per image, on the VAE's device and dtype."""
        return dist.Normal(self.prior_loc, self.prior_scale).expand([batch_size, self.latent_dim]).to_event(1)

    def encode(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> dist.TorchDistribution:
        """q(z|x) = N(mu(x), diag sigma(x)^2) (q(z|x,y) when conditional), one event per image."""
        loc, scale = self.encoder(x, self._context(y))
        return dist.Normal(loc, scale).to_event(1)

    def decode(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> dist.TorchDistribution:
        """p(x|z) (p(x|z,y) when conditional), one event per image; a Bayesian decoder decodes
        with one draw of its weights from q(W)."""
        decoder = poutine.condition(self.decoder, data=self.weight_guide.draw()) if self.bayesian else self.decoder
        return self.likelihood(decoder(self._with_context(z, y)))

    # The Pyro program: log p(x, z) - log q(z|x), summed over the minibatch, is the ELBO estimate.

    def model(self, x: torch.Tensor, y=None, num_data: Optional[int] = None, kl_weight: float = 1.0) -> None:
        """p(z) p(x|z): z ~ N(0, I), then x scored under the decoded likelihood."""
        pyro.module("decoder", self.decoder)
        pyro.module("likelihood", self.likelihood)
        data, to_dataset = self._minibatch(x, num_data)
        with data, to_dataset, self._kl_weighting(kl_weight):
            z = pyro.sample("z", self.prior(len(x)))
        # Decoded outside the plate: a Bayesian decoder's weights (and their prior) once per step, not per image.
        decoded = self.decoder(self._with_context(z, y))
        with data, to_dataset:  # the likelihood sees x too: a calibrated sigma is fitted to it in training
            pyro.sample("x", self.likelihood(decoded, x), obs=x)

    def guide(self, x: torch.Tensor, y=None, num_data: Optional[int] = None, kl_weight: float = 1.0) -> None:
        """q(z|x): the encoder's Gaussian, amortized over images (and q(W) for a Bayesian decoder)."""
        pyro.module("encoder", self.encoder)
        if self.bayesian:
            pyro.module("weights", self.weight_guide)
            self.weight_guide()
        data, to_dataset = self._minibatch(x, num_data)
        with data, to_dataset, self._kl_weighting(kl_weight):
            pyro.sample("z", self.encode(x, y))

    # Plumbing shared by model and guide.

    @staticmethod
    def _minibatch(x: torch.Tensor, num_data: Optional[int]):
        """The plate over the images of the minibatch, and the scale N/B that makes its ELBO the dataset's."""
        return pyro.plate("data", len(x), dim=-1), poutine.scale(scale=(num_data or len(x)) / len(x))

    @staticmethod
    def _kl_weighting(kl_weight: float):
        """Weights the latent site's log-densities by ``kl_weight`` (beta); ``poutine.scale`` takes
        positive weights only, so beta = 0 masks them out instead."""
        return poutine.scale(scale=kl_weight) if kl_weight > 0 else poutine.mask(mask=False)

    def _context(self, y: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """The one-hot label a conditional VAE sees; nothing for an unconditional one."""
        if not self.conditional:
            return None
        if y is None:
            raise ValueError("this VAE is conditional (model=cvae): pass the labels y")
        return F.one_hot(y, self.context_dim).float()

    def _with_context(self, z: torch.Tensor, y: Optional[torch.Tensor]) -> torch.Tensor:
        context = self._context(y)
        if context is None:
            return z
        return torch.cat([z, context.expand(*z.shape[:-1], self.context_dim)], dim=-1)


def build_vae(cfg: DictConfig, image_shape: Tuple[int, int, int], num_classes: int) -> VAE:
    """The VAE described by ``cfg`` (``model``, ``net``, ``likelihood``, ``decoder``, ``latent_dim``)
    for images of ``image_shape`` in ``num_classes`` classes."""
    likelihood = build_likelihood(cfg.likelihood, image_shape)
    net = cfg.net
    encoder_type, decoder_type = NETWORKS[net.name]
    widths = list(net.widths)
    context_dim = num_classes if cfg.model.name == "cvae" else 0
    encoder = encoder_type(image_shape, widths, cfg.latent_dim, net.activation, net.min_scale, context_dim)
    decoder = decoder_type(
        cfg.latent_dim + context_dim, widths[::-1], image_shape, likelihood.params_per_pixel, net.activation
    )
    weight_guide = None
    if cfg.decoder.bayesian:
        initial = make_bayesian_(decoder, cfg.decoder.prior_scale)
        weight_guide = MeanFieldWeights(initial, cfg.decoder.init_scale, cfg.decoder.prior_scale)
    return VAE(encoder, decoder, likelihood, cfg.latent_dim, context_dim, weight_guide)
