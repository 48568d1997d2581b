"""Unconditional draws from one score prior: the reverse SDE driven by its score alone."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from bayesnoise.priors.base import AbstractScorePrior
from bayesnoise.samplers.base import Guided, no_solve_info
from bayesnoise.samplers.integrators.euler_maruyama import euler_maruyama_move
from bayesnoise.sde import time_grid

__all__ = ["sample_prior"]


def sample_prior(
    prior: AbstractScorePrior,
    key: PRNGKeyArray,
    num_samples: int,
    num_steps: int = 500,
    spacing: str = "quadratic",
) -> Float[Array, "num_samples ..."]:
    """``num_samples`` draws of x_0 by reverse Euler–Maruyama from the SDE's prior at t = 1.

    The jitted step takes the prior as an argument and is driven from a Python loop (fast for
    convolutional networks on CPU).
    """
    grid = time_grid(num_steps, spacing=spacing)
    start_key, key = jax.random.split(key)
    x = prior.sde.prior_sample(start_key, (num_samples, *prior.shape))

    @jax.jit
    def step(prior, x, key, time, next_time):
        def move(x, key):
            position = {"x": x}
            guided = Guided(position, {"x": prior.score(x, time)}, {"x": 0.0}, no_solve_info(0.0))
            return euler_maruyama_move(key, guided, time, next_time, prior.sde)["x"]

        return jax.vmap(move)(x, jax.random.split(key, num_samples))

    for index, step_key in enumerate(jax.random.split(key, num_steps)):
        x = step(prior, x, step_key, grid[index], grid[index + 1])
    return jnp.asarray(x)
