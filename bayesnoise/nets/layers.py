"""Channel-last building blocks: convolution, group norm, resampling.

Equinox's ``eqx.nn.Conv2d`` and ``eqx.nn.GroupNorm`` take channel-first arrays ``(C, H, W)``.
On CPU, XLA lowers channel-first convolutions to slow loops, so the score networks here keep
images channel-last, ``(H, W, C)``, and convolve with ``jax.lax.conv_general_dilated`` using the
``("NHWC", "HWIO", "NHWC")`` layout. Every layer takes ONE unbatched image; ``jax.vmap`` folds
the mapped axis into the convolution's batch axis, so a vmapped network runs one batched
convolution per layer.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

__all__ = ["Conv2d", "GroupNorm", "upsample_nearest", "pad_to_multiple", "crop"]

_DIMENSION_NUMBERS = ("NHWC", "HWIO", "NHWC")


class Conv2d(eqx.Module):
    """A 2-D convolution on a channel-last image ``(H, W, C_in) -> (H', W', C_out)``.

    "SAME" zero padding; ``stride=2`` halves the spatial size (rounding up); ``dilation > 1``
    spreads the kernel (atrous convolution, as in NCSNv2's deeper blocks).
    Initialised like ``eqx.nn.Conv2d`` (uniform in ±1/sqrt(fan_in)).

    Parameters
    ----------
    in_channels, out_channels : int
        Channels of the input and the output.
    kernel_size : int
        Side of the square kernel.
    stride : int
        Spatial stride.
    dilation : int
        Kernel dilation.
    use_bias : bool
        Whether to add a learned per-channel bias.
    key : PRNGKeyArray
        Key for the initial weights.
    """

    weight: Float[Array, "kh kw cin cout"]
    bias: Float[Array, " cout"] | None
    stride: int = eqx.field(static=True)
    dilation: int = eqx.field(static=True)

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        stride: int = 1,
        dilation: int = 1,
        use_bias: bool = True,
        *,
        key: PRNGKeyArray,
    ):
        if in_channels < 1 or out_channels < 1:
            raise ValueError(
                f"in_channels and out_channels must be positive. "
                f"Got in_channels={in_channels}, out_channels={out_channels}."
            )
        weight_key, bias_key = jax.random.split(key)
        bound = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.weight = jax.random.uniform(
            weight_key,
            (kernel_size, kernel_size, in_channels, out_channels),
            minval=-bound,
            maxval=bound,
        )
        self.bias = (
            jax.random.uniform(bias_key, (out_channels,), minval=-bound, maxval=bound)
            if use_bias
            else None
        )
        self.stride = stride
        self.dilation = dilation

    def __call__(self, x: Float[Array, "height width cin"]) -> Float[Array, "h w cout"]:
        if x.ndim != 3 or x.shape[-1] != self.weight.shape[2]:
            raise ValueError(
                f"x must have shape (height, width, {self.weight.shape[2]}). Got {x.shape}."
            )
        out = jax.lax.conv_general_dilated(
            x[None],
            self.weight,
            window_strides=(self.stride, self.stride),
            padding="SAME",
            rhs_dilation=(self.dilation, self.dilation),
            dimension_numbers=_DIMENSION_NUMBERS,
        )[0]
        return out if self.bias is None else out + self.bias


class GroupNorm(eqx.Module):
    """Group normalisation of a channel-last image, with a learned per-channel scale and shift.

    Statistics are taken over space and the channels of each group of ONE image, so there are
    no batch statistics and no state (unlike the batch norm of the paper's NCSNv2).
    """

    groups: int = eqx.field(static=True)
    weight: Float[Array, " channels"]
    bias: Float[Array, " channels"]
    eps: float = eqx.field(static=True)

    def __init__(self, groups: int, channels: int, eps: float = 1e-5):
        if channels % groups:
            raise ValueError(
                f"channels must be divisible by groups. Got channels={channels}, groups={groups}."
            )
        self.groups = groups
        self.weight = jnp.ones((channels,))
        self.bias = jnp.zeros((channels,))
        self.eps = eps

    def __call__(self, x: Float[Array, "height width channels"]) -> Float[Array, "h w c"]:
        height, width, channels = x.shape
        grouped = x.reshape(height, width, self.groups, channels // self.groups)
        mean = grouped.mean(axis=(0, 1, 3), keepdims=True)
        var = grouped.var(axis=(0, 1, 3), keepdims=True)
        grouped = (grouped - mean) * jax.lax.rsqrt(var + self.eps)
        return grouped.reshape(x.shape) * self.weight + self.bias


def upsample_nearest(x: Float[Array, "h w c"], size: tuple[int, int]) -> Float[Array, "H W c"]:
    """Nearest-neighbour upsampling by 2, cropped to ``size`` (handles odd sizes, 7 -> 14)."""
    x = jnp.repeat(jnp.repeat(x, 2, axis=0), 2, axis=1)
    return x[: size[0], : size[1]]


def pad_to_multiple(x: Float[Array, "h w c"], multiple: int) -> Float[Array, "H W c"]:
    """Zero-pad height and width at the bottom/right up to a multiple of ``multiple``."""
    height, width = x.shape[:2]
    pad_h = -height % multiple
    pad_w = -width % multiple
    if pad_h == 0 and pad_w == 0:
        return x
    return jnp.pad(x, ((0, pad_h), (0, pad_w), (0, 0)))


def crop(x: Float[Array, "H W c"], size: tuple[int, int]) -> Float[Array, "h w c"]:
    """The top-left ``size`` corner of ``x``."""
    return x[: size[0], : size[1]]
