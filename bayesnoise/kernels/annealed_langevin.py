"""Joint annealed Langevin dynamics (Song & Ermon 2019, Algorithm 1) on p_t(x, n | y).

Each step runs ``steps_per_level`` Langevin moves at the noise level s_t of time t with step
size ``step_size * s_t^2`` (Song & Ermon's alpha_i = epsilon sigma_i^2 / sigma_L^2 with
step_size = epsilon / sigma_L^2), then lowers t by one time step; the score is the conditional
score of :mod:`bayesnoise.kernels.pigdm` (prior scores plus PiGDM guidance).

    x <- x + step * score(x, t) + sqrt(2 step) z
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bayesnoise.kernels.base import (
    DiffusionInfo,
    DiffusionState,
    init,
    sampling_algorithm,
    split_like,
)
from bayesnoise.kernels.pigdm import conditional_score

__all__ = ["init", "build_kernel", "as_top_level_api"]


def build_kernel(target, steps_per_level: int = 5, covariance: str = "tweedie"):
    """``steps_per_level`` Langevin moves at the current noise level, then the next level."""

    def kernel(rng_key, state, observation, time_step, step_size, guidance_weights):
        step = step_size * target.sde.marginal_std(state.time) ** 2
        position, residual_norm = state.position, jnp.zeros(())
        for key in jax.random.split(rng_key, steps_per_level):
            scores, residual_norm = conditional_score(
                target, position, observation, state.time, guidance_weights, covariance
            )
            keys = split_like(key, position)
            position = {
                name: value
                + step * scores[name]
                + jnp.sqrt(2.0 * step) * jax.random.normal(keys[name], value.shape)
                for name, value in position.items()
            }
        return DiffusionState(position, state.time - time_step), DiffusionInfo(residual_norm)

    return kernel


def as_top_level_api(
    target,
    observation,
    *,
    time_step,
    start_time=1.0,
    steps_per_level=5,
    step_size=0.1,
    guidance_weights=None,
    covariance="tweedie",
):
    """Joint annealed Langevin; the Langevin step at noise level s_t is ``step_size * s_t^2``."""
    kernel = build_kernel(target, steps_per_level, covariance)
    weights = guidance_weights or {}
    return sampling_algorithm(kernel, start_time, observation, time_step, step_size, weights)
