"""Operators acting element by element: identity, scaling and the inpainting mask."""

from __future__ import annotations

from collections.abc import Sequence

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike

from bayesnoise.operators.base import AbstractLinearOperator, Shape, _as_shape, _concrete

__all__ = ["Identity", "Scale", "Mask"]


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
        values = _concrete(mask)
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
