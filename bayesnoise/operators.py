"""Forward operators A and B in the observation model y = A(x) + B(n) + eps.

Each operator maps ONE unbatched signal of shape ``input_shape`` (images channel-last, e.g.
``(28, 28, 1)``) to ``output_shape``; batch with ``jax.vmap``. Linear operators add the adjoint
``transpose``: <A x, y> = <x, A^T y>. Shapes are static fields, so the shape checks are plain
Python and run under ``jit`` and ``vmap`` too.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

__all__ = [
    "AbstractOperator",
    "AbstractLinearOperator",
    "Identity",
    "Scale",
    "Mask",
    "Subsample",
    "DenseMatrix",
    "Blur",
    "Nonlinear",
    "random_gaussian_matrix",
    "gaussian_kernel",
]

Shape = tuple[int, ...]


def _as_shape(name: str, shape: Sequence[int]) -> Shape:
    """Validate ``shape`` as a non-empty tuple of positive ints and return it as a tuple."""
    try:
        result = tuple(shape)
    except TypeError:
        result = ()
    if not result or not all(isinstance(s, int | np.integer) and s > 0 for s in result):
        raise ValueError(
            f"{name} must be a non-empty tuple of positive ints. Got {name}={shape!r}."
        )
    return tuple(int(s) for s in result)


def _check_shape(name: str, array: Array, expected_name: str, expected: Shape) -> None:
    if (got := jnp.shape(array)) != expected:
        raise ValueError(
            f"{name} must have shape {expected_name}={expected}. Got {name}.shape={got}."
        )


class AbstractOperator(eqx.Module):
    """A differentiable forward operator ``x -> y`` for one unbatched signal.

    Subclasses implement ``_apply``; ``__call__`` checks the shapes of its input and output.
    """

    input_shape: eqx.AbstractVar[Shape]
    output_shape: eqx.AbstractVar[Shape]

    @abc.abstractmethod
    def _apply(self, x: Array) -> Array:
        """The operator itself, without shape checks."""

    def __call__(self, x: Float[Array, "*input_shape"]) -> Float[Array, "*output_shape"]:
        """Apply the operator to ``x`` of shape ``input_shape``."""
        _check_shape("x", x, "input_shape", self.input_shape)
        y = self._apply(x)
        _check_shape(f"{type(self).__name__}(x)", y, "output_shape", self.output_shape)
        return y


class AbstractLinearOperator(AbstractOperator):
    """A linear operator, with the adjoint ``transpose`` (subclasses implement ``_transpose``)."""

    @abc.abstractmethod
    def _transpose(self, y: Array) -> Array:
        """The adjoint itself, without shape checks."""

    def transpose(self, y: Float[Array, "*output_shape"]) -> Float[Array, "*input_shape"]:
        """Apply the adjoint A^T to ``y`` of shape ``output_shape``."""
        _check_shape("y", y, "output_shape", self.output_shape)
        return self._transpose(y)


class Identity(AbstractLinearOperator):
    """y = x."""

    input_shape: Shape = eqx.field(static=True)

    def __init__(self, shape: Sequence[int]):
        self.input_shape = _as_shape("shape", shape)

    @property
    def output_shape(self) -> Shape:
        return self.input_shape

    def _apply(self, x):
        return x

    def _transpose(self, y):
        return y


class Scale(AbstractLinearOperator):
    """y = factor * x; the paper's mixing y = 0.5 x + 0.5 n uses ``Scale(shape, 0.5)`` twice."""

    input_shape: Shape = eqx.field(static=True)
    factor: float

    def __init__(self, shape: Sequence[int], factor: float):
        self.input_shape = _as_shape("shape", shape)
        self.factor = factor

    @property
    def output_shape(self) -> Shape:
        return self.input_shape

    def _apply(self, x):
        return self.factor * x

    def _transpose(self, y):
        return self.factor * y


class Mask(AbstractLinearOperator):
    """Inpainting: y = mask * x, with ``mask`` a 0/1 array of the signal's shape.

    The 0/1 check runs when ``mask`` is concrete; it is skipped for a traced ``mask``.
    """

    mask: Array

    def __init__(self, mask: ArrayLike):
        mask = jnp.asarray(mask)
        _as_shape("mask.shape", mask.shape)
        try:
            values = np.asarray(mask)
        except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
            values = None
        if values is not None and not np.all((values == 0) | (values == 1)):
            raise ValueError(
                f"mask must contain only 0 and 1. Got values {np.unique(values)[:6].tolist()}."
            )
        self.mask = mask

    @property
    def input_shape(self) -> Shape:
        return self.mask.shape

    @property
    def output_shape(self) -> Shape:
        return self.mask.shape

    def _apply(self, x):
        return self.mask.astype(x.dtype) * x

    def _transpose(self, y):
        return self.mask.astype(y.dtype) * y


class Subsample(AbstractLinearOperator):
    """Keep every k-th sample along the leading axes: ``x[::factors[0], ::factors[1], ...]``.

    Parameters
    ----------
    shape : tuple of int
        The signal's shape, e.g. ``(28, 28, 1)``.
    factors : tuple of int
        One positive stride per leading axis; trailing axes (channels) are kept whole.

    The adjoint scatters ``y`` back onto zeros of shape ``input_shape``.
    """

    input_shape: Shape = eqx.field(static=True)
    factors: Shape = eqx.field(static=True)

    def __init__(self, shape: Sequence[int], factors: Sequence[int]):
        self.input_shape = _as_shape("shape", shape)
        self.factors = _as_shape("factors", factors)
        if len(self.factors) > len(self.input_shape):
            raise ValueError(
                f"factors must have at most len(shape)={len(self.input_shape)} entries. "
                f"Got factors={self.factors}."
            )

    @property
    def _slices(self) -> tuple[slice, ...]:
        return tuple(slice(None, None, k) for k in self.factors)

    @property
    def output_shape(self) -> Shape:
        leading = tuple(-(-n // k) for n, k in zip(self.input_shape, self.factors, strict=False))
        return leading + self.input_shape[len(self.factors) :]

    def _apply(self, x):
        return x[self._slices]

    def _transpose(self, y):
        return jnp.zeros(self.input_shape, y.dtype).at[self._slices].set(y)


class DenseMatrix(AbstractLinearOperator):
    """y = matrix @ x.ravel(), of shape ``(matrix.shape[0],)``.

    Parameters
    ----------
    matrix : Float[Array, "measurements size"]
        With ``size = prod(input_shape)`` columns.
    input_shape : tuple of int
        The signal's shape; ``x`` is flattened in C order.
    """

    matrix: Float[Array, "measurements size"]
    input_shape: Shape = eqx.field(static=True)

    def __init__(self, matrix: ArrayLike, input_shape: Sequence[int]):
        matrix = jnp.asarray(matrix)
        self.input_shape = _as_shape("input_shape", input_shape)
        size = math.prod(self.input_shape)
        if matrix.ndim != 2 or matrix.shape[1] != size:
            raise ValueError(
                f"matrix must have 2 dimensions and prod(input_shape)={size} columns. "
                f"Got matrix.shape={matrix.shape}."
            )
        self.matrix = matrix

    @property
    def output_shape(self) -> Shape:
        return (self.matrix.shape[0],)

    def _apply(self, x):
        return self.matrix @ x.ravel()

    def _transpose(self, y):
        return (self.matrix.T @ y).reshape(self.input_shape)


def random_gaussian_matrix(
    input_shape: Sequence[int], num_measurements: int, *, key: PRNGKeyArray, dtype=jnp.float32
) -> DenseMatrix:
    """A compressed-sensing ``DenseMatrix`` of ``num_measurements`` rows with i.i.d.
    N(0, 1/num_measurements) entries, drawn from ``key``."""
    if not isinstance(num_measurements, int) or num_measurements <= 0:
        raise ValueError(f"num_measurements must be a positive int. Got {num_measurements!r}.")
    size = math.prod(_as_shape("input_shape", input_shape))
    matrix = jax.random.normal(key, (num_measurements, size), dtype) / math.sqrt(num_measurements)
    return DenseMatrix(matrix, input_shape)


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
        self.input_shape = _as_shape("shape", shape)
        if len(self.input_shape) < 2:
            raise ValueError(f"shape must be (height, width, *channels). Got shape={shape}.")
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


def gaussian_kernel(size: int, std: float, dtype=jnp.float32) -> Float[Array, "size size"]:
    """An isotropic ``(size, size)`` Gaussian blur kernel with standard deviation ``std`` pixels,
    normalised to sum to one; ``size`` must be odd."""
    if not isinstance(size, int) or size <= 0 or size % 2 == 0:
        raise ValueError(f"size must be a positive odd int. Got size={size!r}.")
    if not std > 0:
        raise ValueError(f"std must be positive. Got std={std!r}.")
    offsets = jnp.arange(size, dtype=dtype) - (size - 1) / 2
    profile = jnp.exp(-0.5 * (offsets / std) ** 2)
    kernel = jnp.outer(profile, profile)
    return kernel / jnp.sum(kernel)


class Nonlinear(AbstractOperator):
    """Wraps a differentiable ``fn`` from ``input_shape`` to ``output_shape``; no adjoint.

    Parameters
    ----------
    fn : callable
        Acts on one unbatched signal; it may be an Equinox module (a network).
    input_shape, output_shape : tuple of int
        Checked on every call.
    """

    fn: Callable[[Array], Array]
    input_shape: Shape = eqx.field(static=True)
    output_shape: Shape = eqx.field(static=True)

    def __init__(self, fn: Callable[[Array], Array], input_shape, output_shape):
        if not callable(fn):
            raise TypeError(f"fn must be callable. Got fn of type {type(fn).__name__}.")
        self.fn = fn
        self.input_shape = _as_shape("input_shape", input_shape)
        self.output_shape = _as_shape("output_shape", output_shape)

    def _apply(self, x):
        return self.fn(x)
