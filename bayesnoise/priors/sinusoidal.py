"""Sinusoidal structured noise (the paper's appendix A).

Zero-mean Gaussian noise whose standard deviation varies along the rows of an image:
std of row k is proportional to exp(sin(2 pi k / period)), scaled so that the standard
deviation averaged over the pixels equals ``average_std``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from bayesnoise.priors.gaussian import GaussianPrior
from bayesnoise.sde import AbstractSDE

__all__ = ["sinusoidal_std", "sample_sinusoidal_noise", "sinusoidal_noise_prior"]


def sinusoidal_std(
    shape: tuple[int, ...], average_std: float, period: float = 16.0
) -> Float[Array, "..."]:
    """Per-pixel standard deviation of sinusoidal noise for images of ``shape``.

    ``shape`` is ``(height, width)`` or ``(height, width, channels)``; row k (axis 0) has
    std ``c * exp(sin(2 pi k / period))`` with c chosen so the pixel average is ``average_std``.
    """
    if len(shape) < 1:
        raise ValueError(f"shape must have at least one axis (rows). Got shape={shape}.")
    if not average_std > 0:
        raise ValueError(f"average_std must be positive. Got average_std={average_std}.")
    rows = jnp.arange(shape[0], dtype=jnp.float32)
    row_profile = jnp.exp(jnp.sin(2.0 * jnp.pi * rows / period))
    row_profile = row_profile * (average_std / jnp.mean(row_profile))
    return jnp.broadcast_to(row_profile.reshape((-1,) + (1,) * (len(shape) - 1)), shape)


def sample_sinusoidal_noise(
    key: PRNGKeyArray,
    shape: tuple[int, ...],
    average_std: float,
    period: float = 16.0,
    num_samples: int | None = None,
) -> Array:
    """Draws of sinusoidal noise, of shape ``shape`` or ``(num_samples, *shape)``."""
    std = sinusoidal_std(shape, average_std, period)
    batch = () if num_samples is None else (num_samples,)
    return std * jax.random.normal(key, batch + tuple(shape))


def sinusoidal_noise_prior(
    shape: tuple[int, ...], average_std: float, sde: AbstractSDE, period: float = 16.0
) -> GaussianPrior:
    """The analytic prior of sinusoidal noise: a diagonal Gaussian with exact diffused score."""
    std = sinusoidal_std(shape, average_std, period)
    return GaussianPrior(shape=tuple(shape), sde=sde, variance=std**2)
