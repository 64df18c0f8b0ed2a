"""The VAE of the source paper as a Pyro model and guide, and its variants as classes of their own.

``VAE``, the paper's pair, for each image x of a data set of N images:

    model:  z ~ N(0, I),  x | z ~ p(x | decoder(z))          (one event per image)
    guide:  z | x ~ N(mu(x), diag sigma(x)^2)                (amortized by the encoder)

Both run inside one plate over the images; a minibatch of B images stands for all N of them
(Pyro's subsampled plate scales its log-densities by N / B), so the ELBO estimate is the data set's.
``ConditionalVAE`` conditions both on the label; ``BayesianDecoder`` puts priors on the
decoder's weights, and composes with either (``BayesianDecoderVAE``,
``BayesianDecoderConditionalVAE``).
"""

from typing import Optional

import pyro
import pyro.distributions as dist
import torch
from pyro import poutine
from torch import nn
from torch.nn import functional as F

from .guides import DiagonalGaussian
from .priors import StandardNormal
from .weights import MeanFieldWeights


class VAE(nn.Module):
    """The paper's VAE: prior p(z) = N(0, I), decoder likelihood p(x|z), amortized Gaussian guide q(z|x).

    Generative process, for each image:  z ~ N(0, I);  x ~ likelihood(decoder(z)).
    Guide:  q(z|x) = N(mu(x), diag sigma(x)^2), mu and sigma from the encoder.

    ``num_data``: the number of images of the data set a minibatch is drawn from (None: the
    minibatch is the whole data set); the data plate scales by ``num_data / len(x)``.
    """

    conditional = False
    bayesian = False

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: nn.Module,
        latent_dim: int,
        num_data: Optional[int] = None,
        prior: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood  # the observation model: decoder outputs -> p(x|z)
        self.latent_dim = latent_dim
        self.layer_dims = (latent_dim,)  # the sizes of the stochastic layers that make up z
        self.num_data = num_data
        self.latent_prior = prior or StandardNormal(latent_dim)  # p(z): the paper's N(0, I) unless given (priors.py)

    @property
    def variational_family(self):
        """How the encoder's outputs become q(z|x): its family (guides.py); a diagonal Gaussian if it names none."""
        return getattr(self.encoder, "family", DiagonalGaussian)

    @property
    def closed_form_kl(self) -> bool:
        """Whether KL(q(z|x) || p(z)) has a closed form: for Gaussian guides under N(0, I) only."""
        return self.variational_family.closed_form_kl and self.latent_prior.closed_form_kl

    # The three distributions of the derivation.

    def prior(self, batch_size: int) -> dist.TorchDistribution:
        """p(z) = N(0, I) (or the VAE's learned prior), one event of ``latent_dim`` per image."""
        return self.latent_prior(batch_size, self.encode)

    def encode(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> dist.TorchDistribution:
        """q(z|x) = N(mu(x), diag sigma(x)^2) (or the encoder's family, e.g. a full covariance), one
        event per image (``y``: read by a conditional VAE only)."""
        return self.variational_family.distribution(*self.encoder(x, self.context(y)))

    def decode(
        self, z: torch.Tensor, y: Optional[torch.Tensor] = None, observed: Optional[torch.Tensor] = None
    ) -> dist.TorchDistribution:
        """p(x|z), one event per image. ``observed``: the images the model scores with it, which a
        calibrated Gaussian fits its sigma to in training (``likelihoods.GaussianPixels``)."""
        return self.likelihood(self.decoder(self.decoder_input(z, y)), observed)

    def picture(self, z: torch.Tensor, y: Optional[torch.Tensor] = None, sampled: bool = False) -> torch.Tensor:
        """The mean of p(x|z) as an image, pixel probabilities (Bernoulli) or intensities (Gaussian); or with
        ``sampled`` a draw x ~ p(x|z)."""
        decoded = self.decode(z, y)
        return decoded.sample() if sampled else decoded.mean

    # The Pyro program: log p(x, z) - log q(z|x), summed over the minibatch, is the ELBO estimate.

    def model(self, x: torch.Tensor) -> None:
        """p(z) p(x|z): z ~ N(0, I), then x scored under the decoded likelihood."""
        pyro.module("decoder", self.decoder)
        pyro.module("likelihood", self.likelihood)
        with self.data_plate(x):
            z = pyro.sample("z", self.prior(len(x)))
            pyro.sample("x", self.decode(z, observed=x), obs=x)

    def guide(self, x: torch.Tensor) -> None:
        """q(z|x): the encoder's Gaussian, amortized over images."""
        pyro.module("encoder", self.encoder)
        with self.data_plate(x):
            pyro.sample("z", self.encode(x))

    # Plumbing shared by the variants.

    def data_plate(self, x: torch.Tensor) -> pyro.plate:
        """The plate over the images: the minibatch ``x`` as a subsample of the ``num_data`` images."""
        return pyro.plate("data", size=self.num_data or len(x), subsample=torch.arange(len(x), device=x.device))

    def context(self, y: Optional[torch.Tensor]) -> Optional[torch.Tensor]:
        """What the networks see besides x or z: nothing for the unconditional VAE."""
        return None

    def decoder_input(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        return z


class ConditionalVAE(VAE):
    """The conditional VAE (as in the paper's code): both networks also see the one-hot label y.

    Generative process, for each image with label y:  z ~ N(0, I);  x ~ likelihood(decoder(z, y)).
    Guide:  q(z|x, y) = N(mu(x, y), diag sigma(x, y)^2). Its bounds are bounds on log p(x|y).
    """

    conditional = True

    def __init__(
        self,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: nn.Module,
        latent_dim: int,
        num_classes: int,
        num_data: Optional[int] = None,
        prior: Optional[nn.Module] = None,
    ) -> None:
        super().__init__(encoder, decoder, likelihood, latent_dim, num_data, prior)
        self.num_classes = num_classes

    def model(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """p(z) p(x|z, y)."""
        pyro.module("decoder", self.decoder)
        pyro.module("likelihood", self.likelihood)
        with self.data_plate(x):
            z = pyro.sample("z", self.prior(len(x)))
            pyro.sample("x", self.decode(z, y, observed=x), obs=x)

    def guide(self, x: torch.Tensor, y: torch.Tensor) -> None:
        """q(z|x, y)."""
        pyro.module("encoder", self.encoder)
        with self.data_plate(x):
            pyro.sample("z", self.encode(x, y))

    def context(self, y: Optional[torch.Tensor]) -> torch.Tensor:
        """The one-hot label."""
        if y is None:
            raise ValueError("this VAE is conditional (ConditionalVAE): pass the labels y")
        return F.one_hot(y, self.num_classes).float()

    def decoder_input(self, z: torch.Tensor, y: Optional[torch.Tensor] = None) -> torch.Tensor:
        """z with the one-hot label appended (broadcast over any particle dimensions of z)."""
        context = self.context(y)
        return torch.cat([z, context.expand(*z.shape[:-1], self.num_classes)], dim=-1)


class BayesianDecoder:
    """A variant whose decoder weights W are random (mixed into ``VAE`` or ``ConditionalVAE``).

    Generative process:  W ~ N(0, s^2 I) once for the data set (``pyro.nn.PyroSample`` sites of the
    decoder); then for each image z ~ N(0, I);  x ~ likelihood(decoder_W(z)).
    Guide:  q(W) q(z|x), q(W) mean-field Gaussian (``pyro_vae.modelling.weights.MeanFieldWeights``).
    The weights are drawn once per step, outside the data plate, so their log p(W) - log q(W) is
    counted once for the data set rather than once per image.
    """

    bayesian = True

    def __init__(self, *args, weight_guide: MeanFieldWeights, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.weight_guide = weight_guide

    def model(self, x: torch.Tensor, *label: torch.Tensor) -> None:
        pyro.module("likelihood", self.likelihood)
        data = self.data_plate(x)
        with data:
            z = pyro.sample("z", self.prior(len(x)))
        decoded = self.decoder(self.decoder_input(z, *label))  # W ~ p(W): the decoder's weight sites
        with data:
            pyro.sample("x", self.likelihood(decoded, x), obs=x)

    def guide(self, x: torch.Tensor, *label: torch.Tensor) -> None:
        pyro.module("encoder", self.encoder)
        pyro.module("weights", self.weight_guide)
        self.weight_guide()  # W ~ q(W)
        with self.data_plate(x):
            pyro.sample("z", self.encode(x, *label))

    def decode(
        self, z: torch.Tensor, y: Optional[torch.Tensor] = None, observed: Optional[torch.Tensor] = None
    ) -> dist.TorchDistribution:
        """p(x|z) with one draw of the weights from q(W), for use outside inference."""
        decoder = poutine.condition(self.decoder, data=self.weight_guide.draw())
        return self.likelihood(decoder(self.decoder_input(z, y)), observed)


class BayesianDecoderVAE(BayesianDecoder, VAE):
    __doc__ = f"The paper's VAE with a Bayesian decoder. {BayesianDecoder.__doc__}"


class BayesianDecoderConditionalVAE(BayesianDecoder, ConditionalVAE):
    __doc__ = f"The conditional VAE with a Bayesian decoder. {BayesianDecoder.__doc__}"


# Each variant with a Bayesian decoder, by the variant it adds weight priors to.
BAYESIAN_DECODER_VARIANTS = {VAE: BayesianDecoderVAE, ConditionalVAE: BayesianDecoderConditionalVAE}
