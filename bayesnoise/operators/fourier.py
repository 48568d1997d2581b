"""Subsampled 2-D Fourier measurements (MRI) and Cartesian line sampling masks.

Complex measurements are stored as real arrays with a trailing (real, imaginary) axis of size
2, so the rest of the package (Gaussian likelihoods, CG solves, guidance) sees a real vector
space: a complex coefficient c with i.i.d. N(0, sigma^2) noise on its real and imaginary parts
is the pair (Re c, Im c) with N(0, sigma^2) noise on each, and the real inner product
<u, v> = sum Re(conj(u) v) is the one the adjoint is exact in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Bool

from bayesnoise.operators.base import AbstractLinearOperator, Shape, _as_image_shape, _concrete

__all__ = ["FourierSampling", "cartesian_mask"]


class FourierSampling(AbstractLinearOperator):
    """The unitary 2-D DFT of every channel, kept where ``mask`` is true (the MRI forward model).

    y = M F x with F the orthonormal DFT over height and width (``norm="ortho"``, so F^H F = I)
    and M the sampling mask. The output has shape ``(height, width, *channels, 2)``: the real
    and imaginary parts on the last axis, both zero where the mask is false (there the
    prediction is zero whatever x is, so an observation's values there add only a constant to
    a Gaussian log-likelihood; pass zeros). The adjoint in the real
    inner product is x = Re(F^H M (y_re + i y_im)); with a full mask A^T A = I (A A^T is not:
    the spectrum of a real x is Hermitian, so its (real, imaginary) pairs are redundant).

    Parameters
    ----------
    shape : tuple of int
        ``(height, width, *channels)`` of the real signal.
    mask : Bool[Array, "height width"]
        Which coefficients are sampled, in FFT order (zero frequency at ``[0, 0]``; view it
        with ``numpy.fft.fftshift``), of shape ``(height, width)`` (the same on every channel)
        or ``shape``; booleans or 0/1 (the 0/1 check is skipped for a traced ``mask``).
        See :func:`cartesian_mask`.

    Examples
    --------
    >>> mask = cartesian_mask((28, 28), acceleration=4, center_fraction=0.08)
    >>> operator = FourierSampling((28, 28, 1), mask)
    >>> operator.output_shape
    (28, 28, 1, 2)
    """

    mask: Bool[Array, "height width *channels"]
    input_shape: Shape = eqx.field(static=True)

    def __init__(self, shape: Sequence[int], mask: ArrayLike):
        self.input_shape = _as_image_shape("shape", shape)
        mask = jnp.asarray(mask)
        if mask.shape not in (self.input_shape[:2], self.input_shape):
            raise ValueError(
                f"mask must have shape (height, width)={self.input_shape[:2]} or "
                f"shape={self.input_shape}. Got mask.shape={mask.shape}."
            )
        values = _concrete(mask)
        if values is not None and not np.all((values == 0) | (values == 1)):
            raise ValueError(
                f"mask must contain only 0 and 1. Got values {np.unique(values)[:6].tolist()}."
            )
        padding = (1,) * (len(self.input_shape) - mask.ndim)
        self.mask = mask.astype(bool).reshape(mask.shape + padding)

    @property
    def output_shape(self) -> Shape:
        return (*self.input_shape, 2)

    def _apply(self, x):
        coefficients = jnp.fft.fft2(x, axes=(0, 1), norm="ortho")
        sampled = jnp.where(self.mask, coefficients, 0)
        return jnp.stack([sampled.real, sampled.imag], axis=-1).astype(x.dtype)

    def _transpose(self, y):
        sampled = jnp.where(self.mask, jax.lax.complex(y[..., 0], y[..., 1]), 0)
        return jnp.fft.ifft2(sampled, axes=(0, 1), norm="ortho").real.astype(y.dtype)


def cartesian_mask(
    shape: Sequence[int], acceleration: float, center_fraction: float = 0.08, seed: int = 0
) -> np.ndarray:
    """A Cartesian line sampling mask: whole k-space columns, the low frequencies all kept.

    As fastMRI's random mask, with an exact line count: of the ``width`` columns,
    ``round(width / acceleration)`` are sampled, the ``round(width * center_fraction)`` of
    lowest frequency always and the rest drawn uniformly without replacement (seeded). Every
    row (the read-out direction) of a sampled column is kept.

    Parameters
    ----------
    shape : tuple of int
        ``(height, width, *channels)``; the mask has shape ``(height, width)``.
    acceleration : float
        width / number of sampled columns, at least 1.
    center_fraction : float
        The fraction of columns, in [0, 1], always sampled around zero frequency.
    seed : int
        Seeds NumPy's generator for the columns outside the centre.

    Returns
    -------
    A boolean ``(height, width)`` array in FFT order (zero frequency at ``[0, 0]``), to pass
    to :class:`FourierSampling`.
    """
    height, width = _as_image_shape("shape", shape)[:2]
    if isinstance(acceleration, bool) or not (
        isinstance(acceleration, int | float) and math.isfinite(acceleration) and acceleration >= 1
    ):
        raise ValueError(f"acceleration must be a finite number >= 1. Got {acceleration!r}.")
    if isinstance(center_fraction, bool) or not (
        isinstance(center_fraction, int | float) and 0 <= center_fraction <= 1
    ):
        raise ValueError(f"center_fraction must be a number in [0, 1]. Got {center_fraction!r}.")
    num_lines = max(1, round(width / acceleration))
    num_center = round(width * center_fraction)
    if num_center > num_lines:
        raise ValueError(
            f"center_fraction={center_fraction} keeps {num_center} columns, more than the "
            f"{num_lines} that acceleration={acceleration} allows of width={width}."
        )
    lines = np.zeros(width, dtype=bool)  # centred order: zero frequency at width // 2
    start = width // 2 - num_center // 2
    lines[start : start + num_center] = True
    outer = np.flatnonzero(~lines)
    chosen = np.random.default_rng(seed).choice(outer, num_lines - num_center, replace=False)
    lines[chosen] = True
    return np.broadcast_to(np.fft.ifftshift(lines), (height, width)).copy()
