"""Heun's second-order step of the probability-flow ODE (Karras et al. 2022, Algorithm 1).

In the scaled variable x~ = x / a_t with noise level sigma_t = s_t / a_t the ODE is
dx~/dsigma = eps_hat(x, t), eps_hat = -s_t score, and Heun's step from sigma_t to sigma_n is

    x~' = x~ + (sigma_n - sigma_t) eps_hat(x_t)                          (Euler = DDIM(0))
    x~_n = x~ + (sigma_n - sigma_t) (eps_hat(x_t) + eps_hat(a_n x~')) / 2

with the Euler step alone into t_next = 0 (which returns Tweedie's x0_hat). Two evaluations per
prior per step, one in the last.
"""

from __future__ import annotations

import jax

from bayesnoise.samplers.base import AbstractIntegrator, add

__all__ = ["Heun"]


class Heun(AbstractIntegrator):
    """Second-order probability-flow steps; the second score comes from the guidance too."""

    accepts_data_steps = False

    def __call__(self, rng_key, position, guide, time, next_time, sde, options):
        first_key, second_key = jax.random.split(rng_key)
        guided = guide(first_key, position, time)
        a_t, s_t = sde.marginal_mean_coefficient(time), sde.marginal_std(time)
        a_n, s_n = sde.marginal_mean_coefficient(next_time), sde.marginal_std(next_time)
        level_step = s_n / a_n - s_t / a_t
        scaled = {name: x / a_t for name, x in guided.position.items()}
        first_slope = {name: -s_t * score for name, score in guided.scores.items()}
        euler = {name: scaled[name] + level_step * first_slope[name] for name in scaled}

        def corrected(_):
            second = guide(second_key, {k: a_n * v for k, v in euler.items()}, next_time)
            return {
                name: scaled[name]
                + 0.5 * level_step * (first_slope[name] - s_n * second.scores[name])
                for name in scaled
            }

        final = jax.lax.cond(next_time > 0, corrected, lambda _: euler, None)
        moved = {name: a_n * value for name, value in final.items()}
        return add(moved, guided.shift), guided.info

    def evaluations_per_step(self, options):
        return 2

    def evaluations(self, num_steps, options):
        return 2 * num_steps - 1  # the last step (into t = 0) is Euler
