"""Blur operators: 2-D convolution with zero padding (direct) or periodic boundaries (FFT)."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float

from bayesnoise.operators.base import AbstractLinearOperator, Shape, _as_image_shape

__all__ = ["Blur", "FFTBlur", "gaussian_kernel"]


class Blur(AbstractLinearOperator):
    """2-D convolution of every channel, as ``scipy.signal.convolve2d(mode="same")`` does it.

    Parameters
    ----------
    shape : tuple of int
        ``(height, width, *channels)``; the output has the same shape (zero padding).
    kernel : Float[Array, "kernel_height kernel_width"]
        Odd height and width; applied to each channel separately. The adjoint correlates with
        the same kernel, i.e. convolves with the flipped one.
    """

    kernel: Float[Array, "kernel_height kernel_width"]
    input_shape: Shape = eqx.field(static=True)

    def __init__(self, shape: Sequence[int], kernel: ArrayLike):
        self.input_shape = _as_image_shape("shape", shape)
        kernel = jnp.asarray(kernel)
        if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
            raise ValueError(
                f"kernel must be 2-D with odd height and width. Got kernel.shape={kernel.shape}."
            )
        self.kernel = kernel

    @property
    def output_shape(self) -> Shape:
        return self.input_shape

    def _correlate(self, x, kernel):
        height, width = self.input_shape[:2]
        # Channels become the batch axis: (C, H, W, 1) images against one (kh, kw, 1, 1) filter.
        images = x.reshape(height, width, -1).transpose(2, 0, 1)[..., None]
        filters = kernel.astype(x.dtype)[:, :, None, None]
        layout = ("NHWC", "HWIO", "NHWC")
        out = jax.lax.conv_general_dilated(
            images, filters, (1, 1), "SAME", dimension_numbers=layout
        )
        return out[..., 0].transpose(1, 2, 0).reshape(self.input_shape)

    def _apply(self, x):
        # lax.conv_general_dilated is a correlation; flipping the kernel makes it a convolution.
        return self._correlate(x, self.kernel[::-1, ::-1])

    def _transpose(self, y):
        return self._correlate(y, self.kernel)


class FFTBlur(AbstractLinearOperator):
    """Circular 2-D convolution of every channel with ``kernel``, computed by FFT.

    y[i, j] = sum_{a, b} kernel[a, b] x[(i - a + c_h) mod H, (j - b + c_w) mod W] with the
    kernel's centre (c_h, c_w) = (kernel_height // 2, kernel_width // 2) (the middle pixel of
    an odd kernel) at zero shift, i.e. ``scipy.ndimage.convolve(..., mode="grid-wrap")`` for
    odd kernels. Periodic boundaries make it diagonal in Fourier: y = F^-1(K F x) with K the
    kernel's transfer function; the adjoint is the correlation F^-1(conj(K) F y).

    Parameters
    ----------
    shape : tuple of int
        ``(height, width, *channels)``; the output has the same shape.
    kernel : Float[Array, "kernel_height kernel_width"]
        A real 2-D kernel no larger than ``(height, width)``, the same on every channel.
    """

    kernel: Float[Array, "kernel_height kernel_width"]
    input_shape: Shape = eqx.field(static=True)

    def __init__(self, shape: Sequence[int], kernel: ArrayLike):
        self.input_shape = _as_image_shape("shape", shape)
        kernel = jnp.asarray(kernel)
        height, width = self.input_shape[:2]
        if kernel.ndim != 2 or kernel.shape[0] > height or kernel.shape[1] > width:
            raise ValueError(
                f"kernel must be 2-D and at most (height, width)=({height}, {width}). "
                f"Got kernel.shape={kernel.shape}."
            )
        self.kernel = kernel

    @property
    def output_shape(self) -> Shape:
        return self.input_shape

    def _transfer_function(self, dtype):
        """rfft2 of the kernel zero-padded to (H, W) with its centre rolled to index (0, 0)."""
        height, width = self.input_shape[:2]
        kernel_height, kernel_width = self.kernel.shape
        padded = jnp.zeros((height, width), dtype)
        padded = padded.at[:kernel_height, :kernel_width].set(self.kernel.astype(dtype))
        padded = jnp.roll(padded, (-(kernel_height // 2), -(kernel_width // 2)), axis=(0, 1))
        return jnp.fft.rfft2(padded)

    def _filter(self, x, transfer):
        height, width = self.input_shape[:2]
        images = x.reshape(height, width, -1)
        spectrum = jnp.fft.rfft2(images, axes=(0, 1)) * transfer[..., None]
        filtered = jnp.fft.irfft2(spectrum, s=(height, width), axes=(0, 1))
        return filtered.astype(x.dtype).reshape(self.input_shape)

    def _apply(self, x):
        return self._filter(x, self._transfer_function(x.dtype))

    def _transpose(self, y):
        return self._filter(y, jnp.conj(self._transfer_function(y.dtype)))


def gaussian_kernel(size: int, std: float, dtype=jnp.float32) -> Float[Array, "size size"]:
    """An isotropic ``(size, size)`` Gaussian blur kernel with standard deviation ``std`` pixels,
    normalised to sum to one; ``size`` must be odd. ``std`` may be traced (an unknown blur
    width sampled as a forward-model parameter); a concrete one must be > 0."""
    if not isinstance(size, int) or size <= 0 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd int. Got size={size!r}.")
    if not isinstance(std, jax.core.Tracer) and not std > 0:
        raise ValueError(f"std must be positive. Got std={std!r}.")
    offsets = jnp.arange(size, dtype=dtype) - (size - 1) / 2
    profile = jnp.exp(-0.5 * (offsets / std) ** 2)
    kernel = jnp.outer(profile, profile)
    return kernel / jnp.sum(kernel)
