"""Equinox score networks, channel-last: ``net(x, t)`` for one image ``x`` of shape (H, W, C).

Every network here takes ONE unbatched image and a scalar time and returns an array of the
image's shape (the *scaled* score, see :class:`~bayesnoise.priors.ScoreNetPrior`); vmap it over
a batch. Each has a ``hyperparameters`` property that, with :func:`build_network`, rebuilds its
skeleton (what checkpoints store).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
from jaxtyping import PRNGKeyArray

from bayesnoise.nets.embedding import GaussianFourierEmbedding, SinusoidalEmbedding
from bayesnoise.nets.layers import Conv2d, GroupNorm
from bayesnoise.nets.ncsnv2 import NCSNv2
from bayesnoise.nets.unet import UNet

__all__ = [
    "ARCHITECTURES",
    "Conv2d",
    "GaussianFourierEmbedding",
    "GroupNorm",
    "NCSNv2",
    "SinusoidalEmbedding",
    "UNet",
    "architecture_name",
    "build_network",
    "count_parameters",
]

ARCHITECTURES: dict[str, type[eqx.Module]] = {"unet": UNet, "ncsnv2": NCSNv2}


def build_network(
    name: str, hyperparameters: dict[str, Any] | None = None, *, key: PRNGKeyArray
) -> eqx.Module:
    """A network of architecture ``name`` ("unet" or "ncsnv2") with the given hyper-parameters.

    Examples
    --------
    >>> net = build_network("unet", {"channels": [16, 32]}, key=jax.random.key(0))
    """
    if name not in ARCHITECTURES:
        raise ValueError(f"name must be one of {sorted(ARCHITECTURES)}. Got name={name!r}.")
    hyperparameters = dict(hyperparameters or {})
    if "channels" in hyperparameters:
        hyperparameters["channels"] = tuple(hyperparameters["channels"])
    try:
        return ARCHITECTURES[name](**hyperparameters, key=key)
    except TypeError as error:
        raise ValueError(
            f"hyperparameters for {name!r} are not accepted by {ARCHITECTURES[name].__name__}: "
            f"{error}"
        ) from error


def architecture_name(network: eqx.Module) -> str:
    """The registry name of a network's architecture (the inverse of :func:`build_network`)."""
    for name, cls in ARCHITECTURES.items():
        if type(network) is cls:
            return name
    raise ValueError(
        f"network must be one of {[c.__name__ for c in ARCHITECTURES.values()]}. "
        f"Got {type(network).__name__}."
    )


def count_parameters(network: eqx.Module) -> int:
    """Number of trainable floating-point numbers in ``network``."""
    import jax

    return sum(leaf.size for leaf in jax.tree.leaves(eqx.filter(network, eqx.is_inexact_array)))
