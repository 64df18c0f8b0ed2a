"""Kingma et al.'s M2 against its bound derived by hand (Kingma et al. 2014, eqs. 6, 7 and 9):

    labelled:    log p(x, y) >= E_q(z|x,y)[log p(x|y,z) + log p(y) + log p(z) - log q(z|x,y)] = -L(x, y)
    unlabelled:  log p(x) >= sum_y q(y|x) (-L(x, y) - log q(y|x)) = -U(x)
    J^alpha = sum_labelled L + sum_unlabelled U + alpha E_labelled[-log q(y|x)]

The references share no code with the implementation beyond the networks being evaluated: the
reparameterized draws, the densities and the sum over the classes are written out here
(``hand_densities``), or, for the labelled bound, are the conditional VAE's. With the same draws the
losses and every gradient agree to float64 rounding; where one side samples y, in expectation.
"""

import math

import pyro
import pytest
import torch
from pyro import poutine
from pyro.infer import Trace_ELBO, TraceEnum_ELBO
from torch import nn

from pyro_vae.data.labelled_subset import balanced_labelled_indices, unlabelled_indices
from pyro_vae.modelling.likelihoods import BernoulliPixels, GaussianPixels
from pyro_vae.modelling.networks import MLPDecoder, MLPEncoder
from pyro_vae.modelling.priors import VampPrior
from pyro_vae.modelling.semi_supervised import (
    LABELLED_ELBO,
    UNLABELLED_ELBO,
    SemiSupervisedVAE,
    StackedSemiSupervisedVAE,
    mlp_classifier,
    semi_supervised_loss,
)
from pyro_vae.modelling.vae import VAE, ConditionalVAE

from ..helpers import assert_same_loss_and_gradients
from .hand_densities import bernoulli_log_density, normal_log_density, standard_normal_log_density

pytestmark = pytest.mark.usefixtures("single_thread")

SEED = 123
SHAPE = (1, 4, 4)
CLASSES, LATENT = 3, 2
ALPHA = 2.5
# != the batch of 6, and != each other: each bound's data scale N / B must enter where it belongs.
NUM_LABELLED, NUM_UNLABELLED = 30, 60


def build_m2(shape=SHAPE, widths=(8,), latent=LATENT, alpha=ALPHA, **sizes) -> SemiSupervisedVAE:
    return SemiSupervisedVAE(
        mlp_classifier(shape, widths, CLASSES, "softplus"),
        MLPEncoder(shape, widths, latent, "softplus", 1e-3, context_dim=CLASSES),
        MLPDecoder(latent + CLASSES, widths, shape, 1, "softplus"),
        BernoulliPixels(),
        latent,
        CLASSES,
        alpha,
        **sizes,
    )


@pytest.fixture
def m2() -> SemiSupervisedVAE:
    return build_m2(num_labelled=NUM_LABELLED, num_unlabelled=NUM_UNLABELLED).double()


@pytest.fixture
def images() -> torch.Tensor:
    return torch.bernoulli(torch.full((6, *SHAPE), 0.3, dtype=torch.float64))


@pytest.fixture
def labels() -> torch.Tensor:
    return torch.tensor([0, 2, 1, 1, 0, 2])


def hand_unlabelled_loss(m2, x) -> torch.Tensor:
    """U summed over the minibatch and scaled to the unlabelled set: -(N/B) sum_b sum_y q(y|x_b)
    [log p(x_b|y,z) + log p(z) + log p(y) - log q(z|x_b,y) - log q(y|x_b)], z = mu(x_b, y) + sigma(x_b, y) eps
    with eps of shape (classes, batch, latent), drawn from the RNG as the enumerated guide draws it."""
    batch = len(x)
    log_q_y = torch.log_softmax(m2.classifier(x), -1).T  # (classes, batch)
    label = torch.eye(CLASSES, dtype=x.dtype)[:, None, :].expand(CLASSES, batch, CLASSES)
    loc, scale = m2.encoder(x.expand(CLASSES, *x.shape), label)
    z = loc + scale * torch.randn(loc.shape, dtype=x.dtype)
    log_lik = bernoulli_log_density(x.flatten(1), m2.decoder(torch.cat([z, label], -1)).flatten(-3))
    bound = log_lik + standard_normal_log_density(z) - math.log(CLASSES) - normal_log_density(z, loc, scale) - log_q_y
    return -(NUM_UNLABELLED / batch) * (log_q_y.exp() * bound).sum()


def conditional_vae_loss(m2, x, y) -> torch.Tensor:
    """The conditional VAE's Trace_ELBO loss with M2's encoder, decoder and likelihood, scaled to the labelled set."""
    cvae = ConditionalVAE(m2.encoder, m2.decoder, m2.likelihood, LATENT, CLASSES, num_data=NUM_LABELLED).double()
    return Trace_ELBO(max_plate_nesting=1).differentiable_loss(cvae.model, cvae.guide, x, y)


def hand_classification_loss(m2, x, y) -> torch.Tensor:
    """alpha times the mean over the minibatch of -log softmax(logits)[y]."""
    logits = m2.classifier(x)
    log_q = logits - logits.logsumexp(-1, keepdim=True)
    return ALPHA * -log_q[torch.arange(len(y)), y].mean()


def test_enumerated_bound_equals_the_hand_sum_over_classes(m2, images):
    pyro.set_rng_seed(SEED)
    ours = UNLABELLED_ELBO.differentiable_loss(m2.model, m2.guide, images)
    pyro.set_rng_seed(SEED)
    assert_same_loss_and_gradients(m2, ours, hand_unlabelled_loss(m2, images))


@pytest.mark.parametrize(
    "objective",
    [LABELLED_ELBO, TraceEnum_ELBO(max_plate_nesting=1, strict_enumeration_warning=False)],
    ids=["Trace_ELBO", "TraceEnum_ELBO"],
)
def test_labelled_bound_is_the_conditional_vaes_plus_log_p_y(m2, images, labels, objective):
    """-L(x, y) = the conditional VAE's bound on log p(x|y) + log p(y), log p(y) = -log C per image."""
    pyro.set_rng_seed(SEED)
    ours = objective.differentiable_loss(m2.model, m2.guide, images, labels)
    pyro.set_rng_seed(SEED)
    reference = conditional_vae_loss(m2, images, labels)
    networks = nn.ModuleList([m2.encoder, m2.decoder])  # the classifier has no part in it
    assert_same_loss_and_gradients(networks, ours - NUM_LABELLED * math.log(CLASSES), reference)


def test_enumeration_agrees_with_sampling_y_in_expectation(m2, images):
    """Trace_ELBO drawing y ~ q(y|x) (the guide's enumeration switched off) estimates the same bound:
    40 chunks of 250 vectorized particles each side, the means within 4 standard errors. Enumeration
    leaves only z's noise, so its chunks vary less."""
    sampled_guide = poutine.infer_config(m2.guide, lambda site: {"enumerate": None})
    chunks, particles = 40, 250
    kwargs = dict(num_particles=particles, vectorize_particles=True, max_plate_nesting=1)
    pyro.set_rng_seed(SEED)
    enumerated = torch.tensor([TraceEnum_ELBO(**kwargs).loss(m2.model, m2.guide, images) for _ in range(chunks)])
    sampled = torch.tensor([Trace_ELBO(**kwargs).loss(m2.model, sampled_guide, images) for _ in range(chunks)])
    standard_error = ((enumerated.var() + sampled.var()) / chunks).sqrt()
    assert (enumerated.mean() - sampled.mean()).abs() <= 4 * standard_error
    assert enumerated.var() < sampled.var()


def test_classification_term_is_alpha_times_the_mean_cross_entropy(m2, images, labels):
    """The paper's alpha weighs the mean over labelled images, whatever their number (num_labelled)."""
    ours = m2.classification_loss(images, labels)
    assert_same_loss_and_gradients(m2.classifier, ours, hand_classification_loss(m2, images, labels))


def test_a_steps_loss_is_the_three_terms_each_scaled_to_its_set(m2, images, labels):
    """The labelled minibatch's draws come first, then the unlabelled one's, as the step makes them."""
    unlabelled = images.flip(0)
    pyro.set_rng_seed(SEED)
    ours = semi_supervised_loss(m2, images, labels, unlabelled)
    pyro.set_rng_seed(SEED)
    hand = (
        conditional_vae_loss(m2, images, labels)
        + NUM_LABELLED * math.log(CLASSES)
        + hand_unlabelled_loss(m2, unlabelled)
        + hand_classification_loss(m2, images, labels)
    )
    assert_same_loss_and_gradients(m2, ours, hand)


def test_classify_and_analogies(m2, images):
    assert torch.equal(m2.classify(images), m2.classifier(images).argmax(-1))
    z = torch.randn(4, LATENT, dtype=torch.float64)
    grid = m2.analogies(z)
    assert grid.shape[:2] == (4, CLASSES)
    for row in range(4):
        for label in range(CLASSES):
            one_hot = torch.eye(CLASSES, dtype=z.dtype)[label]
            expected = m2.decoder(torch.cat([z[row], one_hot])[None])[0]
            assert torch.allclose(grid[row, label], torch.sigmoid(expected))


def test_the_vampprior_is_refused():
    with pytest.raises(ValueError, match="no VampPrior"):
        build_m2(prior=VampPrior(LATENT, SHAPE, 4))


def synthetic_patterns(per_class: int, seed: int):
    """8x8 binary images of three classes: one random prototype each (the same for every seed), a tenth of
    the pixels flipped at random; and their labels."""
    prototypes = torch.rand(CLASSES, 1, 8, 8, generator=torch.Generator().manual_seed(0)) < 0.5
    labels = torch.arange(CLASSES).repeat_interleave(per_class)
    flips = torch.rand(len(labels), 1, 8, 8, generator=torch.Generator().manual_seed(seed)) < 0.1
    return (prototypes[labels] ^ flips).float(), labels


def test_a_few_labels_train_a_classifier_far_better_than_chance():
    """Two labels per class and 144 unlabelled images, 300 steps: the held-out error falls well below
    chance (2/3)."""
    images, labels = synthetic_patterns(50, seed=1)
    test_images, test_labels = synthetic_patterns(100, seed=2)
    labelled = balanced_labelled_indices(labels, 6, seed=0)
    unlabelled = unlabelled_indices(len(labels), labelled)
    m2 = build_m2((1, 8, 8), (32,), alpha=0.1 * len(labels), num_labelled=6, num_unlabelled=len(unlabelled))
    optimizer = torch.optim.Adam(m2.parameters(), lr=1e-2)
    pyro.set_rng_seed(SEED)
    for _ in range(300):
        batch = unlabelled[torch.randint(len(unlabelled), (32,))]
        optimizer.zero_grad()
        semi_supervised_loss(m2, images[labelled], labels[labelled], images[batch]).backward()
        optimizer.step()
    error = (m2.classify(test_images) != test_labels).float().mean().item()
    assert error < 0.1, error


# M1+M2: M2 on the posterior means of a frozen VAE (M1) of the images, which M2 models with a Gaussian.
M1_LATENT = 5


def build_m1m2() -> tuple:
    """A stacked M1+M2 and, sharing its M2 networks, a plain M2 on M1's features."""
    m1 = VAE(
        MLPEncoder(SHAPE, (8,), M1_LATENT, "softplus", 1e-3),
        MLPDecoder(M1_LATENT, (8,), SHAPE, 1, "softplus"),
        BernoulliPixels(),
        M1_LATENT,
    )
    features = (1, 1, M1_LATENT)
    parts = (
        mlp_classifier(features, (8,), CLASSES, "softplus"),
        MLPEncoder(features, (8,), LATENT, "softplus", 1e-3, context_dim=CLASSES),
        MLPDecoder(LATENT + CLASSES, (8,), features, 2, "softplus"),
        GaussianPixels(features, "predicted", 0.0, 1e-3),
        LATENT,
        CLASSES,
        ALPHA,
    )
    sizes = {"num_labelled": NUM_LABELLED, "num_unlabelled": NUM_UNLABELLED}
    return StackedSemiSupervisedVAE(m1, *parts, **sizes).double(), SemiSupervisedVAE(*parts, **sizes).double()


def m1_means(m1, x) -> torch.Tensor:
    """By hand: the first half of the M1 encoder's last layer, its location, reshaped to a 1 x 1 x latent image."""
    return m1.encoder.head(m1.encoder.features(x.flatten(1)))[:, :M1_LATENT].view(len(x), 1, 1, M1_LATENT)


def test_m1_m2_is_m2_on_the_posterior_means_of_a_frozen_m1(images, labels):
    """Loss and gradients of M1+M2 are M2's on M1's means; M1's weights get no gradient; the prediction and
    the pictures go through M1 (its decoder's Bernoulli means)."""
    stacked, plain = build_m1m2()
    unlabelled = torch.bernoulli(torch.full((6, *SHAPE), 0.6, dtype=torch.float64))
    pyro.set_rng_seed(SEED)
    ours = semi_supervised_loss(stacked, images, labels, unlabelled)
    pyro.set_rng_seed(SEED)
    hand = semi_supervised_loss(plain, m1_means(stacked.m1, images), labels, m1_means(stacked.m1, unlabelled))
    assert_same_loss_and_gradients(plain, ours, hand)
    assert not any(parameter.requires_grad for parameter in stacked.m1.parameters())
    assert torch.equal(stacked.classify(images), plain.classify(m1_means(stacked.m1, images)))
    z = torch.randn(4, LATENT, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 0])
    z1 = plain.decoder(torch.cat([z, torch.eye(CLASSES, dtype=z.dtype)[y]], -1))[:, 0].flatten(1)  # the Gaussian's loc
    assert torch.allclose(stacked.picture(z, y), torch.sigmoid(stacked.m1.decoder(z1)))
