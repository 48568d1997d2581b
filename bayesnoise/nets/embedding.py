"""Embeddings of the diffusion time t in [0, 1]."""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

__all__ = ["GaussianFourierEmbedding", "SinusoidalEmbedding"]


class GaussianFourierEmbedding(eqx.Module):
    """Random Fourier features of t: ``[sin(2π w t), cos(2π w t)]``, ``w ~ N(0, scale²)``.

    The frequencies are fixed (not trained; a stop-gradient guards them). Song et al. 2021
    (score_sde, ``GaussianFourierProjection``).

    Parameters
    ----------
    dim : int
        Output size (even).
    scale : float
        Standard deviation of the random frequencies.
    key : PRNGKeyArray
        Key for the frequencies.
    """

    frequencies: Float[Array, " half"]
    dim: int = eqx.field(static=True)
    scale: float = eqx.field(static=True)

    def __init__(self, dim: int, scale: float = 16.0, *, key: PRNGKeyArray):
        if dim < 2 or dim % 2:
            raise ValueError(f"dim must be a positive even integer. Got dim={dim}.")
        self.frequencies = scale * jax.random.normal(key, (dim // 2,))
        self.dim = dim
        self.scale = scale

    def __call__(self, t: Float[Array, ""]) -> Float[Array, " dim"]:
        angles = 2 * math.pi * jax.lax.stop_gradient(self.frequencies) * t
        return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)])


class SinusoidalEmbedding(eqx.Module):
    """The Transformer's sinusoidal embedding of ``t * time_scale`` (DDPM, score_sde's VP nets).

    Frequencies ``exp(-log(max_period) k / (half - 1))``, k = 0..half-1; no parameters.

    Parameters
    ----------
    dim : int
        Output size (even).
    time_scale : float
        t in [0, 1] is multiplied by this before embedding (DDPM's 1000 steps: 999).
    max_period : float
        The longest period.
    """

    dim: int = eqx.field(static=True)
    time_scale: float = eqx.field(static=True)
    max_period: float = eqx.field(static=True)

    def __init__(self, dim: int, time_scale: float = 999.0, max_period: float = 10_000.0):
        if dim < 4 or dim % 2:
            raise ValueError(f"dim must be an even integer >= 4. Got dim={dim}.")
        self.dim = dim
        self.time_scale = time_scale
        self.max_period = max_period

    def __call__(self, t: Float[Array, ""]) -> Float[Array, " dim"]:
        half = self.dim // 2
        t = jnp.asarray(t, dtype=float)
        frequencies = jnp.exp(
            -math.log(self.max_period) * jnp.arange(half, dtype=t.dtype) / (half - 1)
        )
        angles = self.time_scale * t * frequencies
        return jnp.concatenate([jnp.sin(angles), jnp.cos(angles)])
