"""Operators that reduce the resolution: strided subsampling and average-pooling."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp

from bayesnoise.operators.base import AbstractLinearOperator, Shape, _as_image_shape, _as_shape

__all__ = ["Subsample", "SuperResolution"]


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


class SuperResolution(AbstractLinearOperator):
    """Average-pooling by an integer ``factor``: the mean of each ``factor x factor`` block.

    y[i, j] = (1 / factor^2) sum_{a, b < factor} x[factor i + a, factor j + b] on every channel;
    the adjoint is nearest-neighbour upsampling divided by factor^2.

    Parameters
    ----------
    shape : tuple of int
        ``(height, width, *channels)``, height and width divisible by ``factor``; the output
        has shape ``(height // factor, width // factor, *channels)``.
    factor : int
        The downsampling factor, a positive int.
    """

    input_shape: Shape = eqx.field(static=True)
    factor: int = eqx.field(static=True)

    def __init__(self, shape: Sequence[int], factor: int):
        self.input_shape = _as_image_shape("shape", shape)
        if isinstance(factor, bool) or not isinstance(factor, int) or factor <= 0:
            raise ValueError(f"factor must be a positive int. Got factor={factor!r}.")
        height, width = self.input_shape[:2]
        if height % factor or width % factor:
            raise ValueError(
                f"shape's height and width must be divisible by factor={factor}. "
                f"Got shape={self.input_shape}."
            )
        self.factor = factor

    @property
    def output_shape(self) -> Shape:
        height, width = self.input_shape[:2]
        return (height // self.factor, width // self.factor, *self.input_shape[2:])

    def _apply(self, x):
        low_height, low_width, *channels = self.output_shape
        blocks = x.reshape(low_height, self.factor, low_width, self.factor, *channels)
        return blocks.mean(axis=(1, 3))

    def _transpose(self, y):
        upsampled = jnp.repeat(jnp.repeat(y, self.factor, axis=0), self.factor, axis=1)
        return upsampled / self.factor**2
