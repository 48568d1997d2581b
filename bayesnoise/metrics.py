"""Image quality metrics: PSNR and SSIM through scikit-image, and a JSON-ready summary.

Images are channel-last float arrays: a single image is ``(height, width)`` or
``(height, width, channels)`` with ``channels`` 1 (grey) or 3 (colour); a batch adds a leading
``num_images`` axis and is selected with ``batch=True``. The flag is explicit because a shape
such as ``(3, 64, 64)`` alone does not say whether it is three grey images or one image.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import numpy as np
from jaxtyping import ArrayLike, Float
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

__all__ = ["psnr", "ssim", "metric_summary"]

_CHANNELS = (1, 3)


def psnr(
    estimate: Float[ArrayLike, "*image"],
    truth: Float[ArrayLike, "*image"],
    data_range: float = 1.0,
    *,
    batch: bool = False,
) -> float | Float[np.ndarray, " num_images"]:
    """Peak signal-to-noise ratio, ``10 log10(data_range**2 / MSE)`` in decibels.

    Parameters
    ----------
    estimate, truth
        Images of equal shape: ``(height, width[, channels])``, or with ``batch=True``
        ``(num_images, height, width[, channels])``.
    data_range
        Difference between the largest and smallest possible pixel value (1.0 for [0, 1]).
    batch
        Whether the leading axis indexes images.

    Returns
    -------
    float or numpy.ndarray
        The PSNR (``inf`` for identical images); with ``batch=True`` one value per image.

    Examples
    --------
    >>> import numpy as np
    >>> truth = np.zeros((8, 8))
    >>> round(psnr(truth + 0.1, truth), 6)  # MSE = 0.01
    20.0
    """

    def one(estimate_image: np.ndarray, truth_image: np.ndarray) -> float:
        # skimage divides by the MSE; identical images give inf, which is the right answer.
        with np.errstate(divide="ignore"):
            return float(
                peak_signal_noise_ratio(truth_image, estimate_image, data_range=data_range)
            )

    return _apply(one, estimate, truth, data_range, batch)


def ssim(
    estimate: Float[ArrayLike, "*image"],
    truth: Float[ArrayLike, "*image"],
    data_range: float = 1.0,
    *,
    batch: bool = False,
) -> float | Float[np.ndarray, " num_images"]:
    """Structural similarity index (Wang et al. 2004, eq. 13), averaged over the image.

    Uses ``skimage.metrics.structural_similarity`` with its default 7×7 window, so each image
    must be at least 7 pixels high and wide; colour channels are handled with
    ``channel_axis=-1``.

    Parameters
    ----------
    estimate, truth
        Images of equal shape: ``(height, width[, channels])``, or with ``batch=True``
        ``(num_images, height, width[, channels])``.
    data_range
        Difference between the largest and smallest possible pixel value (1.0 for [0, 1]).
    batch
        Whether the leading axis indexes images.

    Returns
    -------
    float or numpy.ndarray
        SSIM in [-1, 1] (1 for identical images); with ``batch=True`` one value per image.

    Examples
    --------
    >>> import numpy as np
    >>> image = np.linspace(0.0, 1.0, 64).reshape(8, 8)
    >>> ssim(image, image)
    1.0
    """

    def one(estimate_image: np.ndarray, truth_image: np.ndarray) -> float:
        channel_axis = -1 if estimate_image.ndim == 3 else None
        return float(
            structural_similarity(
                truth_image, estimate_image, data_range=data_range, channel_axis=channel_axis
            )
        )

    return _apply(one, estimate, truth, data_range, batch)


def metric_summary(values: Float[ArrayLike, " num_values"]) -> dict[str, float | int]:
    """Mean, standard deviation and count of per-image metric values, as plain Python numbers.

    Parameters
    ----------
    values
        One metric value per image, e.g. the output of ``psnr(..., batch=True)``.

    Returns
    -------
    dict
        ``{"mean": float, "std": float, "n": int}``; ``std`` is the population standard
        deviation (``numpy.std``, ``ddof=0``). If a value is ``inf`` (a PSNR of an exact
        reconstruction) the mean is ``inf`` and the std ``nan``.

    Examples
    --------
    >>> metric_summary([30.0, 32.0])
    {'mean': 31.0, 'std': 1.0, 'n': 2}
    """
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError("values must hold at least one metric value. Got an empty array.")
    if np.isnan(array).any():
        raise ValueError(
            f"values must not contain NaN. Got {int(np.isnan(array).sum())} NaN of {array.size}."
        )
    std = math.nan if np.isinf(array).any() else float(np.std(array))
    return {"mean": float(np.mean(array)), "std": std, "n": int(array.size)}


def _apply(
    metric: Callable[[np.ndarray, np.ndarray], float],
    estimate: ArrayLike,
    truth: ArrayLike,
    data_range: float,
    batch: bool,
) -> float | np.ndarray:
    """Validate the inputs once, then evaluate ``metric`` per image."""
    estimate_array = np.asarray(estimate, dtype=np.float64)
    truth_array = np.asarray(truth, dtype=np.float64)
    if estimate_array.shape != truth_array.shape:
        raise ValueError(
            "estimate and truth must have the same shape. "
            f"Got estimate.shape={estimate_array.shape} and truth.shape={truth_array.shape}."
        )
    if not (isinstance(data_range, numbers.Real) and math.isfinite(data_range) and data_range > 0):
        raise ValueError(f"data_range must be a positive finite number. Got {data_range!r}.")
    for name, array in (("estimate", estimate_array), ("truth", truth_array)):
        if not np.isfinite(array).all():
            count = int((~np.isfinite(array)).sum())
            raise ValueError(f"{name} must be finite. Got {count} NaN/inf values of {array.size}.")

    image_shape = estimate_array.shape[1:] if batch else estimate_array.shape
    if not _is_image_shape(image_shape):
        hint = (
            " For a batch of images pass batch=True."
            if not batch and _is_image_shape(image_shape[1:])
            else ""
        )
        expected = (
            "(num_images, height, width[, channels])" if batch else "(height, width[, channels])"
        )
        raise ValueError(
            f"estimate and truth must have shape {expected} with channels in {_CHANNELS}. "
            f"Got shape {estimate_array.shape}.{hint}"
        )

    if estimate_array.shape[-1:] == (1,) and len(image_shape) == 3:
        estimate_array, truth_array = estimate_array[..., 0], truth_array[..., 0]
    if not batch:
        return metric(estimate_array, truth_array)
    return np.array([metric(e, t) for e, t in zip(estimate_array, truth_array, strict=True)])


def _is_image_shape(shape: tuple[int, ...]) -> bool:
    return len(shape) == 2 or (len(shape) == 3 and shape[-1] in _CHANNELS)
