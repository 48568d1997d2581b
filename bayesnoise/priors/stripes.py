"""Stripe noise: a random offset per column (push-broom sensors, CMOS fixed-pattern noise).

n[i, j, c] = g_i o_{j, c} + e_{i, j, c} with column offsets o ~ N(0, column_std^2), a fixed
smooth per-row gain g (the sensor's response along the column; default 1) and white noise
e ~ N(0, pixel_std^2). n is Gaussian with Sigma = F F^T + pixel_std^2 I, one pattern per
column and channel (F[(i, j, c), (j, c)] = column_std g_i), so its prior is a
:class:`LowRankGaussianPrior` with the exact diffused score.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from bayesnoise.priors.low_rank import LowRankGaussianPrior
from bayesnoise.sde import AbstractSDE

__all__ = ["stripe_factor", "sample_stripe_noise", "stripe_noise_prior"]


def _checked(shape, column_std, pixel_std, row_gain) -> tuple[tuple[int, ...], np.ndarray]:
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3):
        raise ValueError(
            f"shape must be (height, width) or (height, width, channels). Got {shape}."
        )
    for name, value in (("column_std", column_std), ("pixel_std", pixel_std)):
        if not (isinstance(value, int | float) and not isinstance(value, bool) and value > 0):
            raise ValueError(f"{name} must be a positive number. Got {name}={value!r}.")
    gain = np.ones(shape[0]) if row_gain is None else np.asarray(row_gain, dtype=np.float64)
    if gain.shape != (shape[0],) or not np.all(np.isfinite(gain)):
        raise ValueError(
            f"row_gain must be a finite array of shape (height,)=({shape[0]},). "
            f"Got shape {gain.shape}."
        )
    return shape, gain


def stripe_factor(
    shape: tuple[int, ...], column_std: float, row_gain: ArrayLike | None = None
) -> np.ndarray:
    """F, ``(prod(shape), width * channels)``: column (j, c)'s pattern is column_std g_i on
    column j of channel c and zero elsewhere."""
    shape, gain = _checked(shape, column_std, 1.0, row_gain)
    height, width = shape[:2]
    channels = shape[2] if len(shape) == 3 else 1
    columns = np.eye(width * channels).reshape(1, width * channels, width * channels)
    factor = column_std * gain[:, None, None] * columns  # (height, width * channels, patterns)
    return factor.reshape(height * width * channels, width * channels)


def sample_stripe_noise(
    key: PRNGKeyArray,
    shape: tuple[int, ...],
    column_std: float,
    pixel_std: float,
    row_gain: ArrayLike | None = None,
    num_samples: int | None = None,
) -> Float[Array, "..."]:
    """Draws of stripe noise, of shape ``shape`` or ``(num_samples, *shape)``."""
    shape, gain = _checked(shape, column_std, pixel_std, row_gain)
    batch = () if num_samples is None else (num_samples,)
    offset_key, white_key = jax.random.split(key)
    offsets = column_std * jax.random.normal(offset_key, (*batch, 1, *shape[1:]))
    profile = jnp.asarray(gain, dtype=jnp.float32).reshape((-1,) + (1,) * (len(shape) - 1))
    return profile * offsets + pixel_std * jax.random.normal(white_key, batch + shape)


def stripe_noise_prior(
    shape: tuple[int, ...],
    column_std: float,
    pixel_std: float,
    sde: AbstractSDE,
    row_gain: ArrayLike | None = None,
) -> LowRankGaussianPrior:
    """The analytic prior of stripe noise, with the exact diffused score.

    Examples
    --------
    >>> prior = stripe_noise_prior((28, 28, 1), column_std=0.15, pixel_std=0.02, sde=bn.VPSDE())
    """
    shape, _ = _checked(shape, column_std, pixel_std, row_gain)
    factor = stripe_factor(shape, column_std, row_gain)
    return LowRankGaussianPrior(shape, sde, factor, pixel_std=pixel_std)
