"""An NCSNv2-style score network (Song & Ermon 2020), channel-last and time-conditioned.

The layout follows the reference ``NCSNv2`` (ermongroup/ncsnv2, ``models/ncsnv2.py``): a
begin convolution, four stages of two residual blocks (the second halves the resolution; the
third and fourth keep it and dilate their convolutions by 2 and 4 instead), then four
RefineNet blocks (residual conv units, multi-resolution fusion, chained residual pooling) back
up to full resolution, and an end convolution. The authors' network is nf = 64 with batch norm,
8.9 M parameters; ``features=64`` here (3 channels, no time input) has 7.4 M, and
``features=128`` 29.7 M (counted). The default here is ``features=32`` for CPUs.

Differences from the reference, on purpose:

* group normalisation instead of the reference's InstanceNorm++ / the paper's batch norm, so
  there are no batch statistics and one image can be scored alone;
* time conditioning: an embedding of t (Gaussian Fourier features + MLP) is added after the
  first convolution of every residual block. With ``time_conditioned=False`` there is no
  embedding and t is ignored (the paper's form, score = net(x) / s_t).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from bayesnoise.nets.embedding import GaussianFourierEmbedding
from bayesnoise.nets.layers import Conv2d, GroupNorm
from bayesnoise.nets.unet import _groups

__all__ = ["NCSNv2"]


def _mean_pool(x: Float[Array, "h w c"]) -> Float[Array, "h2 w2 c"]:
    """2 × 2 average pooling ("SAME": odd sizes round up, as 7 -> 4)."""
    summed = jax.lax.reduce_window(x, 0.0, jax.lax.add, (2, 2, 1), (2, 2, 1), "SAME")
    counts = jax.lax.reduce_window(
        jnp.ones_like(x[..., :1]), 0.0, jax.lax.add, (2, 2, 1), (2, 2, 1), "SAME"
    )
    return summed / counts


class _ResidualBlock(eqx.Module):
    """norm → act → conv → (+ time) → norm → act → conv (→ mean pool), plus a shortcut."""

    norm1: GroupNorm
    conv1: Conv2d
    time_projection: eqx.nn.Linear | None
    norm2: GroupNorm
    conv2: Conv2d
    shortcut: Conv2d | None
    downsample: bool = eqx.field(static=True)

    def __init__(self, cin, cout, *, downsample, dilation, embedding_dim, groups, key):
        keys = jax.random.split(key, 4)
        # As in the reference: a dilated "down" block keeps the resolution and dilates instead.
        self.downsample = downsample and dilation == 1
        mid = cin if downsample else cout
        self.norm1 = GroupNorm(_groups(cin, groups), cin)
        self.conv1 = Conv2d(cin, mid, 3, dilation=dilation, key=keys[0])
        self.time_projection = (
            eqx.nn.Linear(embedding_dim, mid, key=keys[1]) if embedding_dim else None
        )
        self.norm2 = GroupNorm(_groups(mid, groups), mid)
        self.conv2 = Conv2d(mid, cout, 3, dilation=dilation, key=keys[2])
        needs_shortcut = cin != cout or downsample
        shortcut_size = 1 if dilation == 1 else 3
        self.shortcut = (
            Conv2d(cin, cout, shortcut_size, dilation=dilation, key=keys[3])
            if needs_shortcut
            else None
        )

    def __call__(self, x, embedding):
        h = self.conv1(jax.nn.elu(self.norm1(x)))
        if self.time_projection is not None:
            h = h + self.time_projection(jax.nn.silu(embedding))
        h = self.conv2(jax.nn.elu(self.norm2(h)))
        skip = x if self.shortcut is None else self.shortcut(x)
        if self.downsample:
            h, skip = _mean_pool(h), _mean_pool(skip)
        return h + skip


class _ResidualConvUnit(eqx.Module):
    """RCUBlock: ``num_blocks`` × (``num_stages`` × (act → conv, no bias)) with residuals."""

    convs: list[list[Conv2d]]

    def __init__(self, features, num_blocks, num_stages, *, key):
        keys = jax.random.split(key, num_blocks * num_stages)
        self.convs = [
            [
                Conv2d(features, features, 3, use_bias=False, key=keys[b * num_stages + s])
                for s in range(num_stages)
            ]
            for b in range(num_blocks)
        ]

    def __call__(self, x):
        for block in self.convs:
            residual = x
            for conv in block:
                x = conv(jax.nn.elu(x))
            x = x + residual
        return x


class _ChainedResidualPooling(eqx.Module):
    """CRPBlock: act, then repeatedly 5 × 5 max pool (stride 1) → conv, summed onto the input."""

    convs: list[Conv2d]

    def __init__(self, features, num_stages, *, key):
        keys = jax.random.split(key, num_stages)
        self.convs = [Conv2d(features, features, 3, use_bias=False, key=k) for k in keys]

    def __call__(self, x):
        x = jax.nn.elu(x)
        path = x
        for conv in self.convs:
            path = jax.lax.reduce_window(path, -jnp.inf, jax.lax.max, (5, 5, 1), (1, 1, 1), "SAME")
            path = conv(path)
            x = path + x
        return x


class _RefineBlock(eqx.Module):
    """RefineNet block: adapt each input (RCU), fuse at the finest resolution, pool, output RCU."""

    adapt: list[_ResidualConvUnit]
    fuse: list[Conv2d] | None
    pool: _ChainedResidualPooling
    output: _ResidualConvUnit

    def __init__(self, in_features, features, *, end=False, key):
        keys = jax.random.split(key, 2 * len(in_features) + 2)
        self.adapt = [
            _ResidualConvUnit(c, 2, 2, key=k) for c, k in zip(in_features, keys, strict=False)
        ]
        self.fuse = (
            [
                Conv2d(c, features, 3, key=k)
                for c, k in zip(in_features, keys[len(in_features) :], strict=False)
            ]
            if len(in_features) > 1
            else None
        )
        self.pool = _ChainedResidualPooling(features, 2, key=keys[-2])
        self.output = _ResidualConvUnit(features, 3 if end else 1, 2, key=keys[-1])

    def __call__(self, inputs, size):
        hs = [adapt(x) for adapt, x in zip(self.adapt, inputs, strict=True)]
        if self.fuse is None:
            h = hs[0]
        else:  # multi-resolution fusion: conv, bilinear resize to the finest size, sum
            h = sum(
                jax.image.resize(conv(x), (*size, conv.weight.shape[-1]), "bilinear")
                for conv, x in zip(self.fuse, hs, strict=True)
            )
        return self.output(self.pool(h))


class NCSNv2(eqx.Module):
    """NCSNv2-style RefineNet score network: ``net(x, t)`` for one image of shape (H, W, C).

    Parameters
    ----------
    in_channels : int
        Image channels.
    features : int
        Base width ``ngf``: stage 1 has ``features`` channels, stages 2-4 ``2 * features``
        (the paper's 64 × 64 network: 128).
    embedding_dim : int
        Size of the time embedding.
    groups : int
        Groups of the group norms.
    time_conditioned : bool
        If False the network ignores t (the paper's released form).
    key : PRNGKeyArray
        Key for the initial weights.

    Examples
    --------
    >>> net = NCSNv2(features=16, key=jax.random.key(0))
    >>> net(jnp.zeros((28, 28, 1)), 0.5).shape
    (28, 28, 1)
    """

    in_channels: int = eqx.field(static=True)
    features: int = eqx.field(static=True)
    embedding_dim: int = eqx.field(static=True)
    groups: int = eqx.field(static=True)
    time_conditioned: bool = eqx.field(static=True)
    time_embedding: GaussianFourierEmbedding | None
    time_mlp: eqx.nn.MLP | None
    begin_conv: Conv2d
    stages: list[list[_ResidualBlock]]
    refine: list[_RefineBlock]
    norm_out: GroupNorm
    end_conv: Conv2d

    def __init__(
        self,
        in_channels: int = 1,
        features: int = 32,
        embedding_dim: int = 64,
        groups: int = 8,
        time_conditioned: bool = True,
        *,
        key: PRNGKeyArray,
    ):
        if features < 1:
            raise ValueError(f"features must be a positive integer. Got features={features}.")
        self.in_channels = in_channels
        self.features = features
        self.embedding_dim = embedding_dim
        self.groups = groups
        self.time_conditioned = time_conditioned
        keys = iter(jax.random.split(key, 20))
        if time_conditioned:
            self.time_embedding = GaussianFourierEmbedding(embedding_dim, key=next(keys))
            self.time_mlp = eqx.nn.MLP(
                embedding_dim, embedding_dim, embedding_dim, 1, jax.nn.silu, key=next(keys)
            )
        else:
            self.time_embedding = self.time_mlp = None
        emb = embedding_dim if time_conditioned else 0
        f, f2 = features, 2 * features
        self.begin_conv = Conv2d(in_channels, f, 3, key=next(keys))
        plan = [  # (in, out, downsample, dilation) of the two blocks of each stage
            [(f, f, False, 1), (f, f, False, 1)],
            [(f, f2, True, 1), (f2, f2, False, 1)],
            [(f2, f2, True, 2), (f2, f2, False, 2)],
            [(f2, f2, True, 4), (f2, f2, False, 4)],
        ]
        self.stages = [
            [
                _ResidualBlock(
                    cin,
                    cout,
                    downsample=down,
                    dilation=dil,
                    embedding_dim=emb,
                    groups=groups,
                    key=next(keys),
                )  # fmt: skip
                for cin, cout, down, dil in stage
            ]
            for stage in plan
        ]
        self.refine = [
            _RefineBlock([f2], f2, key=next(keys)),
            _RefineBlock([f2, f2], f2, key=next(keys)),
            _RefineBlock([f2, f2], f, key=next(keys)),
            _RefineBlock([f, f], f, end=True, key=next(keys)),
        ]
        self.norm_out = GroupNorm(_groups(f, groups), f)
        self.end_conv = Conv2d(f, in_channels, 3, key=next(keys))

    @property
    def hyperparameters(self) -> dict:
        """The constructor's arguments (except ``key``), enough to rebuild the skeleton."""
        return {
            "in_channels": self.in_channels,
            "features": self.features,
            "embedding_dim": self.embedding_dim,
            "groups": self.groups,
            "time_conditioned": self.time_conditioned,
        }

    def __call__(
        self, x: Float[Array, "height width channels"], t: Float[Array, ""] | float | None = None
    ) -> Float[Array, "height width channels"]:
        if x.ndim != 3 or x.shape[-1] != self.in_channels:
            raise ValueError(
                f"x must be one channel-last image of shape (height, width, {self.in_channels}). "
                f"Got {x.shape}; vmap the network over a batch."
            )
        if self.time_conditioned:
            if t is None:
                raise ValueError("t must be given to a time-conditioned NCSNv2. Got None.")
            embedding = self.time_mlp(self.time_embedding(jnp.asarray(t, dtype=x.dtype)))
        else:
            embedding = None
        h = self.begin_conv(x)
        layers = []
        for stage in self.stages:
            for block in stage:
                h = block(h, embedding)
            layers.append(h)
        layer1, layer2, layer3, layer4 = layers
        h = self.refine[0]([layer4], layer4.shape[:2])
        h = self.refine[1]([layer3, h], layer3.shape[:2])
        h = self.refine[2]([layer2, h], layer2.shape[:2])
        h = self.refine[3]([layer1, h], layer1.shape[:2])
        return self.end_conv(jax.nn.elu(self.norm_out(h)))
