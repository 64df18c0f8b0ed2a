"""The DCGAN's networks and its losses: shapes for both supported image sides, and the non-saturating
loss against its hand formula in softplus form."""

import pytest
import torch
import torch.nn.functional as F

from pyro_vae.modelling.gan import GAN, discriminator_loss, generator_loss, supported_shape_refusal

pytestmark = pytest.mark.usefixtures("single_thread")


@pytest.mark.parametrize("image_shape", [(1, 28, 28), (3, 32, 32)])
def test_generator_and_discriminator_shapes(image_shape):
    gan = GAN(5, image_shape, generator_width=4, discriminator_width=4)
    images = gan.sample(6)
    assert images.shape == (6, *image_shape)
    assert images.min() >= 0 and images.max() <= 1  # the data's pixel range
    assert gan.discriminator(images).shape == (6,)
    assert gan.generator(torch.randn(3, 5)).shape == (3, *image_shape)


def test_sample_draws_in_bounded_chunks(monkeypatch):
    gan = GAN(3, (1, 28, 28), 4, 4).eval()
    monkeypatch.setattr("pyro_vae.modelling.gan.SAMPLE_CHUNK", 4)
    sizes = []
    monkeypatch.setattr(gan, "latent_draws", lambda n: sizes.append(n) or torch.randn(n, 3))
    assert gan.sample(10).shape == (10, 1, 28, 28)
    assert sizes == [4, 4, 2]


@pytest.mark.parametrize("image_shape", [(1, 64, 64), (3, 32, 28), (1, 16, 16)])
def test_other_image_shapes_are_refused(image_shape):
    assert "built for 28x28 and 32x32 images" in supported_shape_refusal(image_shape)
    with pytest.raises(ValueError, match="28x28 and 32x32"):
        GAN(2, image_shape, 4, 4)


def test_losses_and_gradients_match_the_softplus_formulas():
    """-log sigmoid(a) = softplus(-a) and -log(1 - sigmoid(a)) = softplus(a): D's loss is
    softplus(-D(x)) + softplus(D(G(z))), G's non-saturating loss softplus(-D(G(z))), batch means."""
    torch.manual_seed(0)
    gan = GAN(4, (1, 28, 28), 4, 4)
    x = torch.rand(8, 1, 28, 28)
    z = torch.randn(8, 4)
    parameters = list(gan.parameters())

    def losses_and_gradients(d_loss_of, g_loss_of):
        fake = gan.generator(z)
        real_logits, fake_logits = gan.discriminator(x), gan.discriminator(fake)
        d_loss, g_loss = d_loss_of(real_logits, fake_logits), g_loss_of(fake_logits)
        d_grads = torch.autograd.grad(d_loss, parameters, retain_graph=True, allow_unused=True)
        g_grads = torch.autograd.grad(g_loss, parameters, allow_unused=True)
        return d_loss, g_loss, d_grads, g_grads

    ours = losses_and_gradients(discriminator_loss, generator_loss)
    hand = losses_and_gradients(
        lambda real, fake: F.softplus(-real).mean() + F.softplus(fake).mean(), lambda fake: F.softplus(-fake).mean()
    )
    for loss_ours, loss_hand in zip(ours[:2], hand[:2]):
        assert torch.allclose(loss_ours, loss_hand, rtol=1e-6, atol=1e-7)
    for grads_ours, grads_hand in zip(ours[2:], hand[2:]):
        for g_ours, g_hand in zip(grads_ours, grads_hand):
            assert (g_ours is None) == (g_hand is None)
            if g_ours is not None:
                assert (g_ours - g_hand).norm() <= 1e-4 * g_hand.norm() + 1e-7  # float32 sums in another order


def test_the_generator_loss_is_the_non_saturating_one():
    """Where D rejects a sample with confidence (logit -10), -log D(G(z)) still has a gradient near -1 per
    sample; the minimax log(1 - D(G(z))) would have one near -sigmoid(-10), about 5e-5."""
    logit = torch.tensor([-10.0], requires_grad=True)
    (gradient,) = torch.autograd.grad(generator_loss(logit), logit)
    assert gradient.item() == pytest.approx(-1.0, abs=1e-4)
