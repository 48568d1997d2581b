"""Matrix-free linear solves for guidance and initialisation, with lineax's conjugate gradients.

Every solve reports whether it converged and how many iterations it took, so a sampler can
put non-convergence in ``sample_stats`` instead of silently using an unconverged result.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import lineax
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

    ``tolerance`` (relative and absolute, max-norm) and ``max_steps`` may be traced.
    """
    structure = jax.eval_shape(lambda: vector)
    linear_operator = lineax.FunctionLinearOperator(
        operator, structure, tags=lineax.positive_semidefinite_tag
    )
    solver = lineax.CG(rtol=tolerance, atol=tolerance, max_steps=max_steps)
    solution = lineax.linear_solve(linear_operator, vector, solver=solver, throw=False)
    converged = solution.result == lineax.RESULTS.successful
    return SolveResult(solution.value, converged, solution.stats["num_steps"])


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
