"""The paper's Algorithm 1: joint Euler–Maruyama with data-consistency gradient steps.

At each time t the observation is diffused, y_t ~ N(a_t y, s_t^2 I), then (eqs. 18–19)

    x <- x - lambda A^T (A x + B n - y_t)
    n <- n - mu     B^T (A x + B n - y_t)      (with the updated x, as in appendix C)

followed by one unconditional reverse Euler–Maruyama step of each prior. The gradient comes
from the model's log-likelihood, multiplied by its (mean) variance so that lambda and mu are
the paper's step sizes whatever the measurement std.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bayesnoise.kernels.base import (
    DiffusionInfo,
    DiffusionState,
    diffuse_observation,
    init,
    reverse_euler_maruyama,
    sampling_algorithm,
)

__all__ = ["init", "build_kernel", "as_top_level_api"]


def build_kernel(target):
    """One step of Algorithm 1 for ``target``."""

    def kernel(rng_key, state, observation, time_step, step_sizes):
        key_observation, key_move = jax.random.split(rng_key)
        diffused = diffuse_observation(key_observation, observation, state.time, target.sde)
        position = dict(state.position)
        variance = jnp.mean(target.observation_distribution(position, diffused).variance)
        for name in target.latent_names:  # sequential, as in the paper's appendix C
            gradient = jax.grad(target.log_likelihood)(position, diffused)[name]
            position[name] = position[name] + step_sizes.get(name, 1.0) * variance * gradient
        residual_norm = jnp.linalg.norm(diffused - target.predicted_observation(position))
        scores = target.prior_score(position, state.time)
        moved = reverse_euler_maruyama(
            key_move, position, scores, state.time, time_step, target.sde
        )
        return DiffusionState(moved, state.time - time_step), DiffusionInfo(residual_norm)

    return kernel


def as_top_level_api(target, observation, *, time_step, start_time=1.0, step_sizes=None):
    """Algorithm 1; ``step_sizes`` maps each site to its step (lambda for x, mu for n)."""
    kernel = build_kernel(target)
    return sampling_algorithm(kernel, start_time, observation, time_step, step_sizes or {})
