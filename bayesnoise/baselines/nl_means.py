"""Non-local means (Buades et al. 2005, ``skimage.restoration.denoise_nl_means``)."""

from __future__ import annotations

import math
import numbers

import numpy as np
from jaxtyping import ArrayLike, Float
from skimage.restoration import denoise_nl_means

from bayesnoise.baselines.problem import LinearProblem, denoising_input

__all__ = ["nl_means_denoise"]


def _positive(name: str, value) -> None:
    if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number. Got {name}={value!r}.")


def nl_means_denoise(
    observation: Float[ArrayLike, " num_images *observation_shape"],
    problem: LinearProblem,
    *,
    h: float | None = None,
    sigma: float | None = None,
    patch_size: int = 5,
    patch_distance: int = 6,
) -> Float[np.ndarray, " num_images *signal_shape"]:
    """Non-local means on ``z = (y - b E[n]) / a`` (see
    :func:`~bayesnoise.baselines.denoising_input`).

    Each pixel becomes a weighted mean of the pixels whose surrounding patches look alike,
    weights ``exp(-max(d² - 2 sigma², 0) / h²)`` (scikit-image's fast mode).

    Parameters
    ----------
    observation : array (num_images, height, width, channels)
    problem : LinearProblem
        A denoising problem (A and B the identity or a scale).
    h : float, optional
        The filtering strength; by default ``0.8 sigma`` (scikit-image's suggestion).
    sigma : float, optional
        The noise std; by default the one implied by ``problem``.
    patch_size, patch_distance : int
        Patch width and search radius in pixels (5 and 6 suit 28 × 28 images).

    Returns
    -------
    numpy.ndarray
        float32, the shape of ``observation``, clipped to ``[0, 1]``.
    """
    noisy, implied_std = denoising_input(observation, problem)
    sigma = implied_std if sigma is None else sigma
    _positive("sigma", sigma)
    h = 0.8 * sigma if h is None else h
    _positive("h", h)
    for name, value in (("patch_size", patch_size), ("patch_distance", patch_distance)):
        if not (isinstance(value, int) and value > 0):
            raise ValueError(f"{name} must be a positive int. Got {name}={value!r}.")
    if noisy.ndim != 4:
        raise ValueError(
            "observation must be a batch of images (num_images, height, width, channels). "
            f"Got shape {noisy.shape}."
        )
    denoised = np.stack(
        [
            denoise_nl_means(
                image.astype(np.float64),
                h=h,
                sigma=sigma,
                patch_size=patch_size,
                patch_distance=patch_distance,
                fast_mode=True,
                channel_axis=-1,
            ).reshape(image.shape)
            for image in noisy
        ]
    )
    return np.clip(denoised, 0.0, 1.0).astype(np.float32)
