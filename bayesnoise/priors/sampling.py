"""Unconditional draws from a score prior: the reverse SDE driven by its score alone."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from bayesnoise.kernels.base import reverse_euler_maruyama
from bayesnoise.priors.base import AbstractScorePrior
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

    The jitted step is driven from a Python loop (fast for convolutional networks on CPU).
    """
    grid = time_grid(num_steps, spacing=spacing)
    start_key, key = jax.random.split(key)
    x = prior.sde.prior_sample(start_key, (num_samples, *prior.shape))

    @jax.jit
    def step(x, key, time, time_step):
        keys = jax.random.split(key, num_samples)

        def move(x, key):
            scores = {"x": prior.score(x, time)}
            return reverse_euler_maruyama(key, {"x": x}, scores, time, time_step, prior.sde)["x"]

        return jax.vmap(move)(x, keys)

    for index, step_key in enumerate(jax.random.split(key, num_steps)):
        x = step(x, step_key, grid[index], grid[index] - grid[index + 1])
    return jnp.asarray(x)
