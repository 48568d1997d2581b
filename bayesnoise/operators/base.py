"""The operator interface: abstract forward operators and linear operators with an adjoint.

Each operator maps ONE unbatched signal of shape ``input_shape`` (images channel-last, e.g.
``(28, 28, 1)``) to ``output_shape``; batch with ``jax.vmap``. Linear operators add the adjoint
``transpose``: <A x, y> = <x, A^T y>. Shapes are static fields, so the shape checks are plain
Python and run under ``jit`` and ``vmap`` too.
"""

from __future__ import annotations

import abc
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

__all__ = ["AbstractOperator", "AbstractLinearOperator"]

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


def _as_image_shape(name: str, shape: Sequence[int]) -> Shape:
    """Validate ``shape`` as ``(height, width, *channels)``."""
    result = _as_shape(name, shape)
    if len(result) < 2:
        raise ValueError(f"{name} must be (height, width, *channels). Got {name}={shape}.")
    return result


def _concrete(array: Array) -> np.ndarray | None:
    """``array``'s values as NumPy, or None when it is traced (under ``jit`` or ``vmap``)."""
    try:
        return np.asarray(array)
    except (jax.errors.ConcretizationTypeError, jax.errors.TracerArrayConversionError):
        return None


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
