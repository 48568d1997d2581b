"""A small time-conditioned U-Net score network, channel-last."""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from bayesnoise.nets.embedding import GaussianFourierEmbedding
from bayesnoise.nets.layers import Conv2d, GroupNorm, crop, pad_to_multiple, upsample_nearest

__all__ = ["ResidualBlock", "UNet"]


def _groups(channels: int, groups: int) -> int:
    """The largest divisor of ``channels`` not above ``groups``."""
    return max(g for g in range(1, min(groups, channels) + 1) if channels % g == 0)


class ResidualBlock(eqx.Module):
    """GroupNorm → SiLU → conv → (+ time embedding) → GroupNorm → SiLU → conv, plus a skip.

    Parameters
    ----------
    in_channels, out_channels : int
        Channels in and out (a 1×1 convolution matches them on the skip path).
    embedding_dim : int
        Size of the time embedding added (after a linear map) between the two convolutions.
    groups : int
        Groups of the group norms (reduced to a divisor of the channel count).
    key : PRNGKeyArray
        Key for the initial weights.
    """

    norm1: GroupNorm
    conv1: Conv2d
    time_projection: eqx.nn.Linear
    norm2: GroupNorm
    conv2: Conv2d
    skip: Conv2d | None

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        embedding_dim: int,
        groups: int = 8,
        *,
        key: PRNGKeyArray,
    ):
        keys = jax.random.split(key, 4)
        self.norm1 = GroupNorm(_groups(in_channels, groups), in_channels)
        self.conv1 = Conv2d(in_channels, out_channels, 3, key=keys[0])
        self.time_projection = eqx.nn.Linear(embedding_dim, out_channels, key=keys[1])
        self.norm2 = GroupNorm(_groups(out_channels, groups), out_channels)
        self.conv2 = Conv2d(out_channels, out_channels, 3, key=keys[2])
        self.skip = (
            None
            if in_channels == out_channels
            else Conv2d(in_channels, out_channels, 1, key=keys[3])
        )

    def __call__(self, x: Float[Array, "h w cin"], embedding: Float[Array, " e"]) -> Array:
        h = self.conv1(jax.nn.silu(self.norm1(x)))
        h = h + self.time_projection(jax.nn.silu(embedding))
        h = self.conv2(jax.nn.silu(self.norm2(h)))
        return h + (x if self.skip is None else self.skip(x))


class UNet(eqx.Module):
    """A time-conditioned U-Net: ``net(x, t)`` for one channel-last image ``x`` of shape (H, W, C).

    Levels at full, 1/2, 1/4, ... resolution with ``channels[i]`` channels and
    ``num_res_blocks`` residual blocks each; stride-2 convolutions down, nearest-neighbour
    upsampling plus a convolution up, skip connections by concatenation, and the time embedding
    (Gaussian Fourier features of t, then a two-layer MLP) added in every residual block.
    The input is zero-padded to a multiple of ``2 ** (len(channels) - 1)`` and the output cropped
    back (28 × 28 with three levels runs 28 → 14 → 7 with no padding). The last convolution
    starts at zero, so an untrained network predicts 0.

    The output has the input's shape; with :class:`~bayesnoise.priors.ScoreNetPrior` it is the
    *scaled* score s_t ∇ log p_t(x) (the negative of the noise, see :mod:`bayesnoise.train`).

    **Conditional networks** (``condition_channels > 0``; Iyer, Shu & Sinha §3.2): the
    observation y (``condition``, of shape (H, W, condition_channels)) is concatenated to x as
    extra input channels, followed by ONE mask channel filled with ``condition_mask`` (1: y is
    given; 0: the condition is dropped, and the y channels are zeros). ``net(x, t)`` without a
    condition is the unconditional score ψ(z) of classifier-free guidance. Zeros plus a mask
    channel, rather than zeros alone, so the network can tell "no observation" from "an
    observation that is 0" (a black image, or pixels set to 0 where they are missing); its
    first convolution's weights on the mask channel are the learned "null" condition, and it
    costs 9 × channels[0] weights. With ``condition_channels = 0`` (the default) the network
    is the unconditional one, parameter for parameter.

    Parameters
    ----------
    in_channels : int
        Image channels (1 for grey images).
    channels : tuple of int
        Channels at each resolution level.
    num_res_blocks : int
        Residual blocks per level on the way down (one more on the way up).
    embedding_dim : int
        Size of the time embedding.
    groups : int
        Groups of the group norms.
    fourier_scale : float
        Standard deviation of the random Fourier frequencies of t.
    condition_channels : int
        Channels of the observation the network is conditioned on (0: unconditional).
    key : PRNGKeyArray
        Key for the initial weights.

    Examples
    --------
    >>> net = UNet(channels=(32, 64, 64), key=jax.random.key(0))
    >>> net(jnp.zeros((28, 28, 1)), 0.5).shape
    (28, 28, 1)
    """

    in_channels: int = eqx.field(static=True)
    channels: tuple[int, ...] = eqx.field(static=True)
    num_res_blocks: int = eqx.field(static=True)
    embedding_dim: int = eqx.field(static=True)
    groups: int = eqx.field(static=True)
    fourier_scale: float = eqx.field(static=True)
    condition_channels: int = eqx.field(static=True)
    time_embedding: GaussianFourierEmbedding
    time_mlp: eqx.nn.MLP
    conv_in: Conv2d
    down_blocks: list[list[ResidualBlock]]
    downsamples: list[Conv2d]
    middle_blocks: list[ResidualBlock]
    up_blocks: list[list[ResidualBlock]]
    upsamples: list[Conv2d]
    norm_out: GroupNorm
    conv_out: Conv2d

    def __init__(
        self,
        in_channels: int = 1,
        channels: tuple[int, ...] = (32, 64, 64),
        num_res_blocks: int = 1,
        embedding_dim: int = 64,
        groups: int = 8,
        fourier_scale: float = 16.0,
        condition_channels: int = 0,
        *,
        key: PRNGKeyArray,
    ):
        channels = tuple(int(c) for c in channels)
        if len(channels) < 1 or min(channels) < 1:
            raise ValueError(
                f"channels must be a non-empty tuple of positive ints. Got {channels}."
            )
        if num_res_blocks < 1:
            raise ValueError(f"num_res_blocks must be at least 1. Got {num_res_blocks}.")
        if isinstance(condition_channels, bool) or not (
            isinstance(condition_channels, int) and condition_channels >= 0
        ):
            raise ValueError(
                f"condition_channels must be a non-negative int. Got {condition_channels!r}."
            )
        self.in_channels = in_channels
        self.channels = channels
        self.num_res_blocks = num_res_blocks
        self.embedding_dim = embedding_dim
        self.groups = groups
        self.fourier_scale = fourier_scale
        self.condition_channels = condition_channels

        keys = iter(jax.random.split(key, 8 + 4 * len(channels) * (num_res_blocks + 2)))
        self.time_embedding = GaussianFourierEmbedding(embedding_dim, fourier_scale, key=next(keys))
        self.time_mlp = eqx.nn.MLP(
            embedding_dim,
            embedding_dim,
            width_size=embedding_dim,
            depth=1,
            activation=jax.nn.silu,
            key=next(keys),
        )
        # a conditional network also reads y and the mask channel (see the class docstring)
        inputs = in_channels + (condition_channels + 1 if condition_channels else 0)
        self.conv_in = Conv2d(inputs, channels[0], 3, key=next(keys))

        self.down_blocks, self.downsamples = [], []
        current = channels[0]
        for level, width in enumerate(channels):
            blocks = []
            for _ in range(num_res_blocks):
                blocks.append(ResidualBlock(current, width, embedding_dim, groups, key=next(keys)))
                current = width
            self.down_blocks.append(blocks)
            if level < len(channels) - 1:
                self.downsamples.append(Conv2d(width, width, 3, stride=2, key=next(keys)))

        self.middle_blocks = [
            ResidualBlock(current, current, embedding_dim, groups, key=next(keys)) for _ in range(2)
        ]

        self.up_blocks, self.upsamples = [], []
        for level in reversed(range(len(channels))):
            width = channels[level]
            blocks = [ResidualBlock(current + width, width, embedding_dim, groups, key=next(keys))]
            blocks += [
                ResidualBlock(width, width, embedding_dim, groups, key=next(keys))
                for _ in range(num_res_blocks)
            ]
            current = width
            self.up_blocks.append(blocks)
            if level > 0:
                self.upsamples.append(Conv2d(width, width, 3, key=next(keys)))

        self.norm_out = GroupNorm(_groups(channels[0], groups), channels[0])
        conv_out = Conv2d(channels[0], in_channels, 3, key=next(keys))
        self.conv_out = eqx.tree_at(
            lambda c: (c.weight, c.bias),
            conv_out,
            (jnp.zeros_like(conv_out.weight), jnp.zeros_like(conv_out.bias)),
        )

    @property
    def hyperparameters(self) -> dict:
        """The constructor's arguments (except ``key``), enough to rebuild the skeleton.

        ``condition_channels`` appears only for a conditional network, so the headers of
        unconditional checkpoints are those written before conditional networks existed.
        """
        hyperparameters = {
            "in_channels": self.in_channels,
            "channels": list(self.channels),
            "num_res_blocks": self.num_res_blocks,
            "embedding_dim": self.embedding_dim,
            "groups": self.groups,
            "fourier_scale": self.fourier_scale,
        }
        if self.condition_channels:
            hyperparameters["condition_channels"] = self.condition_channels
        return hyperparameters

    def _with_condition(self, x, condition, condition_mask):
        """x, then (for a conditional network) y × mask and the mask, along the channels."""
        if not self.condition_channels:
            if condition is not None:
                raise ValueError(
                    "condition must be None for an unconditional network "
                    "(condition_channels=0). Got an array of shape "
                    f"{jnp.shape(condition)}."
                )
            return x
        if condition is None:
            condition = jnp.zeros(x.shape[:2] + (self.condition_channels,), x.dtype)
            condition_mask = 0.0
        expected = x.shape[:2] + (self.condition_channels,)
        if jnp.shape(condition) != expected:
            raise ValueError(
                f"condition must have shape {expected} (the image's height and width, "
                f"condition_channels={self.condition_channels}). Got {jnp.shape(condition)}."
            )
        mask = jnp.asarray(condition_mask, dtype=x.dtype)
        mask_channel = jnp.broadcast_to(mask, x.shape[:2] + (1,))
        return jnp.concatenate([x, condition * mask, mask_channel], axis=-1)

    def __call__(
        self,
        x: Float[Array, "height width channels"],
        t: Float[Array, ""] | float,
        condition: Float[Array, "height width condition_channels"] | None = None,
        condition_mask: Float[Array, ""] | float = 1.0,
    ) -> Float[Array, "height width channels"]:
        """The scaled score at (x, t); a conditional network also takes ``condition`` (y) and
        ``condition_mask`` (1: conditioned, 0: dropped; None ``condition``: dropped)."""
        if x.ndim != 3 or x.shape[-1] != self.in_channels:
            raise ValueError(
                f"x must be one channel-last image of shape (height, width, {self.in_channels}). "
                f"Got {x.shape}; vmap the network over a batch."
            )
        size = x.shape[:2]
        embedding = self.time_mlp(self.time_embedding(jnp.asarray(t, dtype=x.dtype)))
        inputs = self._with_condition(x, condition, condition_mask)
        h = self.conv_in(pad_to_multiple(inputs, 2 ** (len(self.channels) - 1)))

        skips = []
        for level, blocks in enumerate(self.down_blocks):
            for block in blocks:
                h = block(h, embedding)
            skips.append(h)
            if level < len(self.downsamples):
                h = self.downsamples[level](h)

        for block in self.middle_blocks:
            h = block(h, embedding)

        for index, blocks in enumerate(self.up_blocks):
            skip = skips.pop()
            h = jnp.concatenate([h, skip], axis=-1)
            for block in blocks:
                h = block(h, embedding)
            if index < len(self.upsamples):
                target = skips[-1].shape[:2]
                h = self.upsamples[index](upsample_nearest(h, target))

        h = self.conv_out(jax.nn.silu(self.norm_out(h)))
        return crop(h, size)
