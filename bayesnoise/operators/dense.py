"""An explicit matrix acting on the flattened signal, and the compressed-sensing one."""

from __future__ import annotations

import math
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from bayesnoise.operators.base import AbstractLinearOperator, Shape, _as_shape

__all__ = ["DenseMatrix", "random_gaussian_matrix"]


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
