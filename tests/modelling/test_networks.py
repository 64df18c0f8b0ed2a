"""Encoders and decoders: shapes for any leading dims, scale floor, gradients, layer-count errors."""

from typing import NamedTuple

import pytest
import torch

from pyro_vae.modelling.networks import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder, conv_sizes

pytestmark = pytest.mark.usefixtures("single_thread")

LATENT = 3
MIN_WEIGHT_SCALE = 0.25
CHANNELS = [4, 8, 8]
SHAPES = [(1, 28, 28), (3, 32, 32), (1, 27, 27), (2, 9, 14)]
LEADING = [(), (5,), (3, 5)]


class ConvPair(NamedTuple):
    encoder: ConvEncoder
    decoder: ConvDecoder


def conv_pair(image_shape, params_per_pixel=1, channels=CHANNELS, activation="relu") -> ConvPair:
    encoder = ConvEncoder(image_shape, channels, LATENT, activation, MIN_WEIGHT_SCALE)
    decoder = ConvDecoder(LATENT, channels[::-1], image_shape, params_per_pixel, activation)
    return ConvPair(encoder, decoder)


def test_conv_sizes_halve_rounding_down():
    assert conv_sizes((1, 28, 28), 3) == [(28, 28), (14, 14), (7, 7), (3, 3)]
    assert conv_sizes((3, 32, 16), 2) == [(32, 16), (16, 8), (8, 4)]
    assert conv_sizes((1, 27, 27), 3) == [(27, 27), (13, 13), (6, 6), (3, 3)]


@pytest.mark.parametrize("image_shape", SHAPES)
@pytest.mark.parametrize("params_per_pixel", [1, 2])
@pytest.mark.parametrize("lead", LEADING)
def test_conv_shapes_for_any_leading_dims(image_shape, params_per_pixel, lead):
    encoder, decoder = conv_pair(image_shape, params_per_pixel)
    loc, scale = encoder(torch.rand(*lead, *image_shape))
    assert loc.shape == scale.shape == (*lead, LATENT)
    c, h, w = image_shape
    assert decoder(loc).shape == (*lead, params_per_pixel * c, h, w)


def test_conv_leading_dims_do_not_mix_images():
    """Merging and splitting the leading dims must give each image its own output."""
    encoder, decoder = conv_pair((1, 28, 28), 2)
    x = torch.rand(3, 5, 1, 28, 28)
    loc, scale = encoder(x)
    out = decoder(loc)
    for i, j in [(0, 0), (1, 3), (2, 4)]:
        single_loc, single_scale = encoder(x[i, j])
        assert torch.allclose(loc[i, j], single_loc, atol=1e-6)
        assert torch.allclose(scale[i, j], single_scale, atol=1e-6)
        assert torch.allclose(out[i, j], decoder(loc[i, j]), atol=1e-6)


def test_conv_scale_is_positive_and_floored():
    encoder = conv_pair((1, 28, 28)).encoder
    with torch.no_grad():  # push the raw scales far negative so the floor is what remains
        encoder.head.bias[LATENT:] = -100.0
    _, scale = encoder(torch.rand(7, 1, 28, 28))
    assert (scale >= MIN_WEIGHT_SCALE).all()
    assert torch.allclose(scale, torch.full_like(scale, MIN_WEIGHT_SCALE))


@pytest.mark.parametrize("image_shape", [(1, 28, 28), (3, 32, 32)])
def test_conv_gradients_reach_every_parameter(image_shape):
    encoder, decoder = conv_pair(image_shape, 2)
    loc, scale = encoder(torch.rand(2, 4, *image_shape))
    (decoder(loc + scale).square().mean() + loc.sum()).backward()
    for net in (encoder, decoder):
        for name, param in net.named_parameters():
            assert param.grad is not None and param.grad.abs().sum() > 0, name


@pytest.mark.parametrize("image_shape, max_layers", [((1, 28, 28), 4), ((3, 32, 32), 5), ((1, 40, 3), 1)])
def test_too_many_conv_layers_are_refused(image_shape, max_layers):
    encoder, decoder = conv_pair(image_shape, channels=[2] * max_layers)  # the most that fit still work
    assert decoder(encoder(torch.rand(2, *image_shape))[0]).shape[-2:] == image_shape[1:]
    too_many = [2] * (max_layers + 1)
    with pytest.raises(ValueError, match=f"use at most {max_layers} layers") as error:
        ConvEncoder(image_shape, too_many, LATENT, "relu", MIN_WEIGHT_SCALE)
    assert "\n" not in str(error.value)
    with pytest.raises(ValueError, match=f"use at most {max_layers} layers"):
        ConvDecoder(LATENT, too_many, image_shape, 1, "relu")


@pytest.mark.parametrize("lead", LEADING)
def test_mlp_nets_keep_the_leading_dims_contract(lead):
    image_shape = (1, 6, 5)
    encoder = MLPEncoder(image_shape, [16], LATENT, "tanh", MIN_WEIGHT_SCALE)
    decoder = MLPDecoder(LATENT, [16], image_shape, 2, "tanh")
    loc, scale = encoder(torch.rand(*lead, *image_shape))
    assert loc.shape == scale.shape == (*lead, LATENT)
    assert (scale >= MIN_WEIGHT_SCALE).all()
    assert decoder(loc).shape == (*lead, 2, 6, 5)
