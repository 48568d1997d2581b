"""Joint DPS (Chung et al. 2023, Algorithm 1, extended to (x, n)): after the integrator's move,

    x <- x - zeta_x grad_{x_t} ||y - A x0_hat - B n0_hat||,   n <- n - zeta_n grad_{n_t} ||...||

with Tweedie's x0_hat = (x_t + s_t^2 s(x_t, t)) / a_t (DPS eq. 11), one VJP through each prior.
The norm is taken per image (the released code's batch-wide norm makes the step depend on the
batch size), whitened by the likelihood's variance and rescaled by its mean std, so it is DPS's
norm for Gaussian noise and the shot-noise weighted norm for Poisson. ``guidance_weight`` is
zeta. An approximation: its error against the exact posterior is measured, not assumed away.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bayesnoise.samplers.base import AbstractGuidance, Guided, no_solve_info

__all__ = ["DPS"]


class DPS(AbstractGuidance):
    """Prior scores for the move, then a step down the gradient of the residual norm."""

    option_defaults = {"guidance_weight": 1.0}
    vjps_per_evaluation = 1

    def __call__(self, rng_key, position, target, observation, time, options):
        def norm_of_residual(position):
            denoised, scores = target.tweedie_denoise(position, time)
            likelihood = target.observation_distribution(denoised, observation)
            whitened = (observation - likelihood.mean) / jnp.sqrt(likelihood.variance)
            scale = jnp.sqrt(jnp.mean(likelihood.variance))
            return scale * jnp.sqrt(jnp.sum(whitened**2)), scores

        (norm, scores), gradient = jax.value_and_grad(norm_of_residual, has_aux=True)(position)
        weights = options["guidance_weight"]
        shift = {name: -weights[name] * gradient[name] for name in gradient}
        return Guided(position, scores, shift, no_solve_info(norm))
