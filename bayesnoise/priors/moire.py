"""Moiré (periodic interference) noise: a few 2-D cosines of random amplitude and phase.

n[i, j, c] = sum_k u_k cos(2 pi (f_k . (i, j))) + v_k sin(2 pi (f_k . (i, j))) + e[i, j, c],
with u_k, v_k ~ N(0, amplitude_k^2) (a cosine of Rayleigh amplitude and uniform phase), the
frequencies f_k = (rows, columns) in cycles per pixel fixed, the same pattern on every channel,
and white noise e ~ N(0, pixel_std^2). This is a stationary Gaussian process with the periodic
covariance sum_k amplitude_k^2 cos(2 pi f_k . (r - r')) + pixel_std^2 delta: rank 2K plus a
diagonal, so its prior is a :class:`LowRankGaussianPrior` with the exact diffused score.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from bayesnoise.priors.low_rank import LowRankGaussianPrior
from bayesnoise.sde import AbstractSDE

__all__ = ["moire_factor", "sample_moire_noise", "moire_noise_prior"]


def moire_factor(
    shape: tuple[int, ...], frequencies: ArrayLike, amplitudes: ArrayLike
) -> np.ndarray:
    """F, ``(prod(shape), 2 K)``: amplitude_k cos and sin of 2 pi f_k . (i, j) per frequency.

    Parameters
    ----------
    shape : ``(height, width)`` or ``(height, width, channels)``.
    frequencies : ``(K, 2)``, (row, column) frequencies in cycles per pixel.
    amplitudes : ``(K,)`` positive stds of each cosine's and sine's coefficient.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) not in (2, 3):
        raise ValueError(
            f"shape must be (height, width) or (height, width, channels). Got {shape}."
        )
    frequencies = np.asarray(frequencies, dtype=np.float64)
    amplitudes = np.asarray(amplitudes, dtype=np.float64)
    if frequencies.ndim != 2 or frequencies.shape[1] != 2:
        raise ValueError(f"frequencies must have shape (K, 2). Got {frequencies.shape}.")
    if amplitudes.shape != frequencies.shape[:1] or not np.all(amplitudes > 0):
        raise ValueError(
            f"amplitudes must be ({len(frequencies)},) positive numbers, one per frequency. "
            f"Got shape {amplitudes.shape}."
        )
    rows, columns = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    phase = (
        2 * np.pi * (frequencies[:, 0, None, None] * rows + frequencies[:, 1, None, None] * columns)
    )
    scale = amplitudes[:, None, None]
    patterns = np.concatenate([scale * np.cos(phase), scale * np.sin(phase)])  # (2K, height, width)
    channels = shape[2] if len(shape) == 3 else 1
    patterns = np.repeat(patterns[..., None], channels, axis=-1)  # (2K, height, width, channels)
    return patterns.reshape(len(patterns), -1).T


def sample_moire_noise(
    key: PRNGKeyArray,
    shape: tuple[int, ...],
    frequencies: ArrayLike,
    amplitudes: ArrayLike,
    pixel_std: float,
    num_samples: int | None = None,
) -> Float[Array, "..."]:
    """Draws of moiré noise, of shape ``shape`` or ``(num_samples, *shape)``."""
    if not (
        isinstance(pixel_std, int | float) and not isinstance(pixel_std, bool) and pixel_std > 0
    ):
        raise ValueError(f"pixel_std must be a positive number. Got pixel_std={pixel_std!r}.")
    shape = tuple(int(s) for s in shape)
    factor = jnp.asarray(moire_factor(shape, frequencies, amplitudes), dtype=jnp.float32)
    batch = () if num_samples is None else (num_samples,)
    coefficient_key, white_key = jax.random.split(key)
    coefficients = jax.random.normal(coefficient_key, (*batch, factor.shape[1]))
    patterns = (coefficients @ factor.T).reshape(batch + shape)
    return patterns + pixel_std * jax.random.normal(white_key, batch + shape)


def moire_noise_prior(
    shape: tuple[int, ...],
    frequencies: ArrayLike,
    amplitudes: ArrayLike,
    pixel_std: float,
    sde: AbstractSDE,
) -> LowRankGaussianPrior:
    """The analytic prior of moiré noise, with the exact diffused score.

    Examples
    --------
    >>> prior = moire_noise_prior((28, 28, 1), [[0.1, 0.2]], [0.1], pixel_std=0.02, sde=bn.VPSDE())
    """
    factor = moire_factor(shape, frequencies, amplitudes)
    return LowRankGaussianPrior(tuple(shape), sde, factor, pixel_std=pixel_std)
