"""A differentiable operator without an adjoint: any function of one signal."""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
from jaxtyping import Array

from bayesnoise.operators.base import AbstractOperator, Shape, _as_shape

__all__ = ["Nonlinear"]


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
