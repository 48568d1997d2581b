"""DDIM(eta) (Song, Meng & Ermon 2021, eq. 12), written for any SDE with marginal N(a_t x_0, s_t^2):

    x0_hat = (x_t + s_t^2 score) / a_t,   eps_hat = -s_t score
    x_next = a_n x0_hat + sqrt(s_n^2 - sigma^2) eps_hat + sigma z,
    sigma  = eta (s_n / s_t) sqrt(s_t^2 - (a_t / a_n)^2 s_n^2)

eta = 0 is the deterministic DDIM step (an exponential-integrator step of the probability-flow
ODE); eta = 1 draws from q(x_next | x_t, x0_hat), the ancestral (DDPM) step. A step to
t_next = 0 returns Tweedie's estimate x0_hat.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bayesnoise.samplers.base import AbstractIntegrator, add, gaussian_like

__all__ = ["DDIM", "ddim_move"]


def ddim_move(rng_key, position, scores, time, next_time, sde, eta):
    """The DDIM(eta) move of ``position`` following ``scores``."""
    a_t, s_t = sde.marginal_mean_coefficient(time), sde.marginal_std(time)
    a_n, s_n = sde.marginal_mean_coefficient(next_time), sde.marginal_std(next_time)
    transition_variance = jnp.maximum(s_t**2 - (a_t / a_n) ** 2 * s_n**2, 0.0)
    sigma = eta * (s_n / s_t) * jnp.sqrt(transition_variance)
    keep = jnp.sqrt(jnp.maximum(s_n**2 - sigma**2, 0.0))
    noise = gaussian_like(rng_key, position)
    moved = {}
    for name, x in position.items():
        denoised = (x + s_t**2 * scores[name]) / a_t
        predicted_noise = -s_t * scores[name]
        moved[name] = a_n * denoised + keep * predicted_noise + sigma * noise[name]
    return moved


class DDIM(AbstractIntegrator):
    """DDIM(eta) steps; ``eta`` is an option (default 0: deterministic)."""

    option_defaults = {"eta": 0.0}

    def __call__(self, rng_key, position, guide, time, next_time, sde, options):
        key_guide, key_move = jax.random.split(rng_key)
        guided = guide(key_guide, position, time)
        moved = ddim_move(
            key_move, guided.position, guided.scores, time, next_time, sde, options["eta"]
        )
        return add(moved, guided.shift), guided.info
