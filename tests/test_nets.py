"""Score networks: shapes, finiteness, jit/vmap, and the channel-last layers against Equinox."""

import functools

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from network_support import apply

from bayesnoise.nets import (
    NCSNv2,
    UNet,
    architecture_name,
    build_network,
    count_parameters,
)
from bayesnoise.nets.embedding import GaussianFourierEmbedding, SinusoidalEmbedding
from bayesnoise.nets.layers import Conv2d, GroupNorm


@pytest.fixture
def key():
    # The "rbg" generator: threefry compiles slowly for the many weight shapes of a network.
    return jax.random.key(20260522, impl="rbg")


@functools.cache
def _tiny(kind):
    key = jax.random.key(3, impl="rbg")
    if kind == "unet":
        return UNet(channels=(4, 8), embedding_dim=8, groups=2, key=key)
    return NCSNv2(features=4, embedding_dim=8, groups=2, key=key)


def tiny_unet(key):
    return _tiny("unet")  # built once per session: construction compiles many small ops


def tiny_ncsnv2(key):
    return _tiny("ncsnv2")


@pytest.mark.parametrize("make", [tiny_unet, tiny_ncsnv2], ids=["unet", "ncsnv2"])
@pytest.mark.parametrize("size", [28, 32])
def test_output_shape_finite_and_vmap(make, size, key):
    net = make(key)
    images = jax.random.uniform(key, (3, size, size, 1))
    times = jnp.array([0.01, 0.5, 1.0])
    out = eqx.filter_jit(lambda n, x, t: jax.vmap(n)(x, t))(net, images, times)
    assert out.shape == (3, size, size, 1)
    assert out.dtype == jnp.float32
    assert bool(jnp.all(jnp.isfinite(out)))
    if size == 28:
        np.testing.assert_allclose(out[1], apply(net, images[1], times[1]), rtol=1e-4, atol=1e-5)


def test_unet_depth_three_pads_odd_sizes(key):
    # 28 is not a multiple of 8: the input is padded internally and the output cropped back.
    net = UNet(channels=(4, 4, 8, 8), embedding_dim=8, groups=2, key=key)
    out = eqx.filter_eval_shape(net, jnp.zeros((28, 28, 1)), 0.5)
    assert out.shape == (28, 28, 1)


def test_unet_starts_at_zero_and_depends_on_time(key):
    net = tiny_unet(key)
    x = jax.random.normal(key, (28, 28, 1))
    assert bool(jnp.all(apply(net, x, jnp.asarray(0.5)) == 0))  # zero-initialised head
    head = eqx.tree_at(lambda n: n.conv_out.weight, net, jnp.ones_like(net.conv_out.weight))
    assert not np.allclose(apply(head, x, jnp.asarray(0.1)), apply(head, x, jnp.asarray(0.9)))


def test_unconditioned_ncsnv2_ignores_time(key):
    net = NCSNv2(features=4, groups=2, time_conditioned=False, key=key)
    x = jax.random.normal(key, (8, 8, 1))
    unconditioned = eqx.filter_jit(lambda n, x: n(x))
    np.testing.assert_array_equal(unconditioned(net, x), apply(net, x, jnp.asarray(0.3)))
    with pytest.raises(ValueError, match="t must be given"):
        tiny_ncsnv2(key)(x)


def test_networks_reject_batched_input(key):
    with pytest.raises(
        ValueError, match=r"x must be one channel-last image .* Got \(2, 28, 28, 1\)"
    ):
        tiny_unet(key)(jnp.zeros((2, 28, 28, 1)), 0.5)
    with pytest.raises(ValueError, match="x must be one channel-last image"):
        tiny_ncsnv2(key)(jnp.zeros((1, 28, 28)), 0.5)


@pytest.mark.parametrize("stride,dilation", [(1, 1), (2, 1), (1, 2)])
def test_channel_last_conv_matches_equinox(stride, dilation, key):
    conv = Conv2d(3, 5, 3, stride=stride, dilation=dilation, key=key)
    reference = eqx.nn.Conv2d(3, 5, 3, stride=stride, dilation=dilation, padding="SAME", key=key)
    reference = eqx.tree_at(
        lambda c: (c.weight, c.bias),
        reference,
        (jnp.transpose(conv.weight, (3, 2, 0, 1)), conv.bias[:, None, None]),
    )
    x = jax.random.normal(key, (9, 9, 3))
    expected = jnp.transpose(reference(jnp.transpose(x, (2, 0, 1))), (1, 2, 0))
    np.testing.assert_allclose(conv(x), expected, rtol=1e-5, atol=1e-5)


def test_conv_rejects_wrong_channels(key):
    with pytest.raises(ValueError, match=r"x must have shape \(height, width, 3\)"):
        Conv2d(3, 4, key=key)(jnp.zeros((8, 8, 2)))


def test_group_norm_matches_equinox(key):
    x = jax.random.normal(key, (6, 5, 8)) * 3 + 1
    reference = eqx.nn.GroupNorm(4, 8)
    expected = jnp.transpose(reference(jnp.transpose(x, (2, 0, 1))), (1, 2, 0))
    np.testing.assert_allclose(GroupNorm(4, 8)(x), expected, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="channels must be divisible by groups"):
        GroupNorm(3, 8)


def test_embeddings(key):
    fourier = GaussianFourierEmbedding(16, key=key)
    sinusoidal = SinusoidalEmbedding(16)
    for embed in (fourier, sinusoidal):
        out = embed(jnp.asarray(0.3))
        assert out.shape == (16,)
        assert bool(jnp.all(jnp.abs(out) <= 1))
    grads = jax.grad(lambda e: fourier_sum(e))(fourier)
    assert bool(jnp.all(grads.frequencies == 0))  # frequencies are fixed
    with pytest.raises(ValueError, match="dim must be a positive even integer"):
        GaussianFourierEmbedding(7, key=key)


def fourier_sum(embedding):
    return jnp.sum(embedding(jnp.asarray(0.3)))


def test_build_network_round_trip(key):
    for net in (tiny_unet(key), tiny_ncsnv2(key)):
        name = architecture_name(net)
        rebuilt = build_network(name, net.hyperparameters, key=key)
        assert count_parameters(rebuilt) == count_parameters(net)
    with pytest.raises(ValueError, match="name must be one of"):
        build_network("resnet", {}, key=key)
    with pytest.raises(ValueError, match="hyperparameters for 'unet' are not accepted"):
        build_network("unet", {"width": 3}, key=key)
    with pytest.raises(ValueError, match="network must be one of"):
        architecture_name(eqx.nn.Linear(2, 2, key=key))
