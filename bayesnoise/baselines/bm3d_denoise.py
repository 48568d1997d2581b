"""BM3D (Dabov et al. 2007, through the ``bm3d`` package) on the un-mixed observation."""

from __future__ import annotations

import math
import numbers

import numpy as np
from jaxtyping import ArrayLike, Float

from bayesnoise.baselines.problem import LinearProblem, denoising_input, import_optional

__all__ = ["bm3d_denoise"]


def bm3d_denoise(
    observation: Float[ArrayLike, " num_images *observation_shape"],
    problem: LinearProblem,
    *,
    sigma: float | None = None,
) -> Float[np.ndarray, " num_images *signal_shape"]:
    """BM3D on ``z = (y - b E[n]) / a`` (see :func:`~bayesnoise.baselines.denoising_input`).

    The structured noise is treated as white Gaussian noise of std ``sigma``; each channel of
    each image is denoised on its own (both BM3D stages).

    Parameters
    ----------
    observation : array (num_images, height, width, channels)
        Observations of a denoising ``problem`` (A and B the identity or a scale).
    problem : LinearProblem
    sigma : float, optional
        The noise std BM3D assumes; by default the std of z's noise implied by ``problem``.

    Returns
    -------
    numpy.ndarray
        float32, the shape of ``observation``, clipped to ``[0, 1]``.

    Examples
    --------
    >>> from bayesnoise.operators import Identity
    >>> rng = np.random.default_rng(0)
    >>> y = (0.5 + 0.1 * rng.standard_normal((2, 16, 16, 1))).astype(np.float32)
    >>> bm3d_denoise(y, LinearProblem(Identity((16, 16, 1)), noise_std=0.1)).shape
    (2, 16, 16, 1)
    """
    noisy, implied_std = denoising_input(observation, problem)
    sigma = implied_std if sigma is None else sigma
    if not (isinstance(sigma, numbers.Real) and math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive finite number. Got sigma={sigma!r}.")
    if noisy.ndim != 4:
        raise ValueError(
            "observation must be a batch of images (num_images, height, width, channels). "
            f"Got shape {noisy.shape}."
        )
    bm3d = import_optional("bm3d")
    denoised = np.empty_like(noisy)
    for index, channel in np.ndindex(noisy.shape[0], noisy.shape[-1]):
        denoised[index, ..., channel] = bm3d.bm3d(noisy[index, ..., channel], sigma_psd=sigma)
    return np.clip(denoised, 0.0, 1.0).astype(np.float32)
