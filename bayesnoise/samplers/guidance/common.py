"""Pieces the guidance terms share: the data residual of Tweedie's estimates, and the Gaussian
solve K^-1 r with K = Sigma_y + A C_x A^T + B C_n B^T (PiGDM, proximal)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bayesnoise.linear_solve import solve_positive_definite
from bayesnoise.samplers.base import StepInfo

__all__ = ["residual_norm", "weighted_residual"]


def residual_norm(target, denoised, observation):
    """||y - E[y | x0_hat, n0_hat]||: the norm of the data residual of Tweedie's estimates."""
    return jnp.linalg.norm(observation - target.predicted_observation(denoised))


def weighted_residual(target, denoised, observation, covariance, options):
    """[A B]^T K^-1 (y - A x0_hat - B n0_hat), K = Sigma_y + [A B] C [A B]^T, and the info.

    ``covariance(v)`` applies C (the covariance of x_0 given x_t, per site) to a position-shaped
    ``v``; the operators are linearised at ``denoised``; K^-1 is solved by CG.
    """
    predicted, forward_linear = jax.linearize(target.predicted_observation, denoised)
    forward_transpose = jax.linear_transpose(forward_linear, denoised)
    variance = target.observation_distribution(denoised, observation).variance

    def likelihood_covariance(u):  # K u = Sigma_y u + A C_x A^T u + B C_n B^T u
        (back,) = forward_transpose(u)
        return variance * u + forward_linear(covariance(back))

    residual = observation - predicted
    solve = solve_positive_definite(
        likelihood_covariance, residual, options["cg_tolerance"], options["cg_max_steps"]
    )
    (back,) = forward_transpose(solve.solution)
    return back, StepInfo(jnp.linalg.norm(residual), solve.converged, solve.num_steps)
