"""Kingma et al.'s semi-supervised VAE (2014, "Semi-Supervised Learning with Deep Generative Models",
model M2): the label y is a latent variable, observed for the few labelled images and summed out for
the rest. For each image x of a data set,

    model:  y ~ Cat(1 / C),  z ~ N(0, I),  x | y, z ~ p(x | decoder(z, y))
    guide:  y | x ~ Cat(pi(x))  (the classifier),  z | x, y ~ N(mu(x, y), diag sigma(x, y)^2)

A labelled image (x, y) has the bound of a conditional VAE plus log p(y) (the paper's -L(x, y));
an unlabelled one sums it over the classes, weighted by the classifier (-U(x), eq. 7):

    U(x) = sum_y q(y|x) (L(x, y) + log q(y|x))

Pyro computes the sum exactly by parallel enumeration (``TraceEnum_ELBO``): the guide's y takes every
class at once along a dimension of its own. In the bound alone the classifier learns only from the
unlabelled images, so the paper adds alpha E_{labelled}[-log q(y|x)] (eq. 9) to the loss.

Their M1+M2 (``StackedSemiSupervisedVAE``) is M2 with x replaced by the posterior mean of a trained VAE, M1.
"""

import math
from typing import Optional, Sequence, Tuple

import pyro
import pyro.distributions as dist
import torch
from pyro.infer import Trace_ELBO, TraceEnum_ELBO
from torch import nn
from torch.nn import functional as F

from .networks import ImageShape, mlp
from .priors import StandardNormal, VampPrior
from .vae import VAE

# y observed: the labelled bound has no discrete latent, and Trace_ELBO is TraceEnum_ELBO without
# one (and without its warning that nothing was enumerated). y summed out: the enumerated bound.
LABELLED_ELBO = Trace_ELBO(max_plate_nesting=1)
UNLABELLED_ELBO = TraceEnum_ELBO(max_plate_nesting=1)


def mlp_classifier(image_shape: ImageShape, widths: Sequence[int], num_classes: int, activation: str) -> nn.Sequential:
    """q(y|x)'s network: flattened pixels through fully connected layers to one logit per class
    (Kingma et al.: one hidden layer of 500 softplus units)."""
    return nn.Sequential(nn.Flatten(), mlp(math.prod(image_shape), widths, num_classes, activation))


class SemiSupervisedVAE(nn.Module):
    """M2: p(y) p(z) p(x|y, z), with the guide q(y|x) q(z|x, y).

    ``classifier``: x -> the logits of q(y|x). ``encoder``: ``(x, context)`` -> q(z|x, y)'s parameters,
    with the one-hot label as context (e.g. ``MLPEncoder(..., context_dim=num_classes)``).
    ``decoder``: z with the one-hot label appended -> the ``likelihood``'s parameters (e.g.
    ``MLPDecoder(latent_dim + num_classes, ...)``). ``alpha``: the paper's weight of the classification
    term on the mean over labelled images (Kingma et al. use 0.1 N, N the number of training images).
    ``num_labelled``, ``num_unlabelled``: the sizes of the two sets a labelled or unlabelled minibatch
    is drawn from (None: the minibatch is the whole set), by which each minibatch's bound is scaled.
    ``prior``: p(z), N(0, I) unless given; a prior of its own (``priors.FlowPrior``) composes, the
    VampPrior does not (its components are q(z|u), which here needs a label).
    """

    conditional = True  # its networks see the label (the data set must have labels)

    def __init__(
        self,
        classifier: nn.Module,
        encoder: nn.Module,
        decoder: nn.Module,
        likelihood: nn.Module,
        latent_dim: int,
        num_classes: int,
        alpha: float,
        num_labelled: Optional[int] = None,
        num_unlabelled: Optional[int] = None,
        prior: Optional[nn.Module] = None,
    ) -> None:
        super().__init__()
        if isinstance(prior, VampPrior):
            raise ValueError("the semi-supervised VAE takes no VampPrior: its q(z|u) would need a label")
        self.classifier = classifier
        self.encoder = encoder
        self.decoder = decoder
        self.likelihood = likelihood
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.alpha = alpha
        self.num_labelled = num_labelled
        self.num_unlabelled = num_unlabelled
        self.latent_prior = prior or StandardNormal(latent_dim)
        # p(y)'s logits: a buffer, so that they follow the module's device and dtype.
        self.register_buffer("label_logits", torch.zeros(num_classes), persistent=False)

    # The four distributions of the derivation.

    def prior(self, batch_size: int) -> dist.TorchDistribution:
        """p(z) = N(0, I) (or the prior given), one event of ``latent_dim`` per image."""
        return self.latent_prior(batch_size, self.encode)

    def label_prior(self, batch_size: int) -> dist.TorchDistribution:
        """p(y) = Cat(1 / C) for each image."""
        return dist.Categorical(logits=self.label_logits).expand([batch_size])

    def classify_distribution(self, x: torch.Tensor) -> dist.TorchDistribution:
        """q(y|x) = Cat(softmax(classifier(x)))."""
        return dist.Categorical(logits=self.classifier(x))

    def encode(self, x: torch.Tensor, y: torch.Tensor) -> dist.TorchDistribution:
        """q(z|x, y) of the images ``x``, one event per image."""
        return self.posterior(self.represent(x), y)

    def posterior(self, h: torch.Tensor, y: torch.Tensor) -> dist.TorchDistribution:
        """q(z|x, y) from what the networks see of the images, ``h = represent(x)``. An enumerated y carries the
        classes in a dimension of its own in front of the images', so h is broadcast against it: one per class."""
        h = h.expand(*torch.broadcast_shapes(y.shape, h.shape[:1]), *h.shape[1:])
        return self.encoder.family.distribution(*self.encoder(h, self.one_hot(y, h.dtype)))

    def decode(
        self, z: torch.Tensor, y: torch.Tensor, observed: Optional[torch.Tensor] = None
    ) -> dist.TorchDistribution:
        """p(x|y, z), one event per image; the decoder sees z with the one-hot label appended."""
        label = self.one_hot(y, z.dtype)
        return self.likelihood(self.decoder(torch.cat([z, label.expand(*z.shape[:-1], -1)], dim=-1)), observed)

    # The Pyro program. y given: the labelled bound; y None: y is summed out by TraceEnum_ELBO.

    def model(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> None:
        """p(y) p(z) p(x|y, z); y observed where given (where not, the guide's enumerated y is replayed)."""
        pyro.module("decoder", self.decoder)
        pyro.module("likelihood", self.likelihood)
        x = self.represent(x)
        with self.data_plate(x, y):
            z = pyro.sample("z", self.prior(len(x)))
            y = pyro.sample("y", self.label_prior(len(x)), obs=y)
            pyro.sample("x", self.decode(z, y, observed=x), obs=x)

    def guide(self, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> None:
        """q(y|x) q(z|x, y); q(y|x) only where y is not given, every class at once (parallel enumeration)."""
        pyro.module("classifier", self.classifier)
        pyro.module("encoder", self.encoder)
        x = self.represent(x)
        with self.data_plate(x, y):
            if y is None:
                y = pyro.sample("y", self.classify_distribution(x), infer={"enumerate": "parallel"})
            pyro.sample("z", self.posterior(x, y))

    def classification_loss(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """alpha E_{labelled}[-log q(y|x)] (the paper's eq. 9), estimated by the minibatch's mean.

        A mean, not a sum scaled as the labelled plate is, so that ``alpha`` is the paper's: with
        alpha = 0.1 N each labelled image weighs 0.1 N / num_labelled (Kingma et al.'s code rescales
        its 0.1 by n_total / n_labelled alike)."""
        return self.alpha * F.cross_entropy(self.classifier(self.represent(x)), y)

    # Predictions and generation.

    @torch.no_grad()
    def classify(self, x: torch.Tensor) -> torch.Tensor:
        """The most probable label under q(y|x), for each image (the test error's prediction)."""
        return self.classifier(self.represent(x)).argmax(-1)

    def analogies(self, z: torch.Tensor) -> torch.Tensor:
        """The mean of p(x|y, z) for each row's z (R, latent_dim) under every class: (R, C) images, the
        style z held along a row while the class varies along it (the paper's figure 1)."""
        rows = z.unsqueeze(-2).expand(*z.shape[:-1], self.num_classes, self.latent_dim)
        return self.picture(rows, torch.arange(self.num_classes, device=z.device))

    def picture(self, z: torch.Tensor, y: torch.Tensor, sampled: bool = False) -> torch.Tensor:
        """The mean of p(x|y, z) as an image (pixel probabilities, or intensities), or with ``sampled`` a draw."""
        decoded = self.decode(z, y)
        return decoded.sample() if sampled else decoded.mean

    # Plumbing.

    def represent(self, x: torch.Tensor) -> torch.Tensor:
        """What the model generates and the networks see of an image: the image itself."""
        return x

    def data_plate(self, x: torch.Tensor, y: Optional[torch.Tensor]) -> pyro.plate:
        """The plate over the images: the minibatch ``x`` as a subsample of the labelled images (y
        given) or of the unlabelled ones."""
        num_data = self.num_labelled if y is not None else self.num_unlabelled
        return pyro.plate("data", size=num_data or len(x), subsample=torch.arange(len(x), device=x.device))

    def one_hot(self, y: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        return F.one_hot(y, self.num_classes).to(dtype)


class StackedSemiSupervisedVAE(SemiSupervisedVAE):
    """Kingma et al.'s M1+M2: M2 on the representation that a trained VAE, M1, gives each image, the mean of
    its q(z1|x), in place of the pixels; p(z1|y, z) is M2's likelihood (a Gaussian). M1 is frozen: its weights
    are saved with M2's and never trained. The figures show M2's z1 through M1's decoder, as images."""

    def __init__(self, m1: VAE, *m2: object, **settings: object) -> None:
        super().__init__(*m2, **settings)
        self.m1 = m1.requires_grad_(False)

    @torch.no_grad()
    def represent(self, x: torch.Tensor) -> torch.Tensor:
        """The mean of M1's q(z1|x), shaped (N, 1, 1, M1's latent size): a one-pixel-high "image" of z1."""
        return self.m1.encode(x).mean.view(len(x), 1, 1, -1)

    def picture(self, z: torch.Tensor, y: torch.Tensor, sampled: bool = False) -> torch.Tensor:
        """M1's image of the mean z1 that M2 generates from (y, z): its mean, or with ``sampled`` a draw."""
        return self.m1.picture(super().picture(z, y).flatten(-3), sampled=sampled)


def minibatch_bound(vae: SemiSupervisedVAE, x: torch.Tensor, y: Optional[torch.Tensor] = None) -> float:
    """The bound of the images ``x`` summed over them, not scaled to a data set: with their labels ``y`` the
    sum of -L(x, y) (log p(y) included), without them the sum of -U(x), y summed out."""
    elbo, size = (LABELLED_ELBO, vae.num_labelled) if y is not None else (UNLABELLED_ELBO, vae.num_unlabelled)
    loss = elbo.loss(vae.model, vae.guide, x, *(() if y is None else (y,)))  # a float, without gradients
    return -loss * len(x) / (size or len(x))


def semi_supervised_loss(
    vae: SemiSupervisedVAE, labelled_x: torch.Tensor, labels: torch.Tensor, unlabelled_x: torch.Tensor
) -> torch.Tensor:
    """The loss of one training step, the paper's J^alpha estimated from a labelled and an unlabelled
    minibatch: -(labelled bound) - (enumerated unlabelled bound) + alpha E[-log q(y|x)]."""
    labelled = LABELLED_ELBO.differentiable_loss(vae.model, vae.guide, labelled_x, labels)
    unlabelled = UNLABELLED_ELBO.differentiable_loss(vae.model, vae.guide, unlabelled_x)
    return labelled + unlabelled + vae.classification_loss(labelled_x, labels)


# Figures of a trained M2 on a whole split, in chunks of ``chunk_size`` images (no gradients kept).


@torch.no_grad()
def predictions(vae: SemiSupervisedVAE, images: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """The most probable label under q(y|x) of every image."""
    return torch.cat([vae.classify(chunk) for chunk in images.split(chunk_size)])


def classification_error(vae: SemiSupervisedVAE, images: torch.Tensor, labels: torch.Tensor, chunk_size: int) -> float:
    """The fraction of ``images`` whose most probable label under q(y|x) is not theirs (the test error)."""
    return (predictions(vae, images, chunk_size) != labels).double().mean().item()


@torch.no_grad()
def mean_bounds(
    vae: SemiSupervisedVAE, images: torch.Tensor, labels: torch.Tensor, chunk_size: int
) -> Tuple[float, float]:
    """The mean bound per image of ``images`` with their labels (-L(x, y)) and without them (-U(x)), in nats,
    each on one draw of z per image (and label)."""
    chunks = list(zip(images.split(chunk_size), labels.split(chunk_size)))
    with_labels = sum(minibatch_bound(vae, x, y) for x, y in chunks)
    without_labels = sum(minibatch_bound(vae, x) for x, _ in chunks)
    return with_labels / len(images), without_labels / len(images)
