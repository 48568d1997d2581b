"""Matrix-free linear solves for guidance and initialisation, by conjugate gradients.

Every solve reports whether it converged and how many iterations it took, so a sampler can
put non-convergence in ``sample_stats`` instead of silently using an unconverged result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Int, PyTree

__all__ = ["SolveResult", "solve_positive_definite", "pseudo_inverse"]


class SolveResult(NamedTuple):
    """The solution of K u = b, whether CG met its tolerance, and its number of iterations."""

    solution: PyTree
    converged: Bool[Array, ""]
    num_steps: Int[Array, ""]


def solve_positive_definite(
    operator: Callable[[PyTree], PyTree], vector: PyTree, tolerance, max_steps
) -> SolveResult:
    """Solve ``operator(u) = vector`` for a symmetric positive definite ``operator`` by CG.

    Stops when ||r||_2 <= tolerance ||vector||_2, after ``max_steps`` iterations (not
    converged), or at a breakdown (p^T K p <= 0, reached when rounding makes K numerically
    indefinite), keeping the last finite iterate. ``tolerance`` and ``max_steps`` may be traced.

    Written here rather than taken from lineax: lineax's CG tests the residual element-wise
    against atol + rtol |b_i| and returns NaN at a breakdown; on PiGDM's Tweedie covariance near
    t = 1 (float32, s_t^2 / a_t ~ 1e4) that turned 45 of 1024 trajectories into NaN (measured on
    ``tests/gaussian_problems.py``), where a norm-wise test converges.
    """

    def dot(first, second):
        return sum(
            jnp.vdot(a, b)
            for a, b in zip(jax.tree.leaves(first), jax.tree.leaves(second), strict=True)
        )

    def axpy(alpha, first, second):  # alpha * first + second
        return jax.tree.map(lambda a, b: alpha * a + b, first, second)

    squared_norm = dot(vector, vector)
    threshold = tolerance**2 * squared_norm
    solution = jax.tree.map(jnp.zeros_like, vector)

    def keep_going(carry):
        _, _, _, squared_norm, step, broken = carry
        return (squared_norm > threshold) & (step < max_steps) & ~broken

    def iterate(carry):
        solution, residual, direction, squared_norm, step, _ = carry
        image = operator(direction)
        curvature = dot(direction, image)
        broken = ~(curvature > 0)
        alpha = jnp.where(broken, 0.0, squared_norm / jnp.where(broken, 1.0, curvature))
        solution = axpy(alpha, direction, solution)
        residual = axpy(-alpha, image, residual)
        new_squared_norm = dot(residual, residual)
        beta = new_squared_norm / jnp.where(squared_norm > 0, squared_norm, 1.0)
        direction = axpy(beta, direction, residual)
        return solution, residual, direction, new_squared_norm, step + 1, broken

    initial = (solution, vector, vector, squared_norm, jnp.array(0), jnp.array(False))
    solution, _, _, squared_norm, steps, _ = jax.lax.while_loop(keep_going, iterate, initial)
    return SolveResult(solution, squared_norm <= threshold, steps)


def pseudo_inverse(
    forward: Callable[[PyTree], Array],
    point: PyTree,
    residual: Array,
    damping: float = 1e-6,
    tolerance: float = 1e-6,
    max_steps: int = 100,
) -> tuple[PyTree, SolveResult]:
    """F^T (F F^T + damping I)^-1 residual, with F the forward map linearised at ``point``.

    For a linear F this is the minimum-norm correction u with F u = residual (A^+ r).
    """
    _, forward_linear = jax.linearize(forward, point)
    forward_transpose = jax.linear_transpose(forward_linear, point)

    def normal_operator(u):
        (back,) = forward_transpose(u)
        return forward_linear(back) + damping * u

    result = solve_positive_definite(normal_operator, residual, tolerance, max_steps)
    return forward_transpose(result.solution)[0], result
