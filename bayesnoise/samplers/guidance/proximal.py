"""A proximal data step on Tweedie's estimates (DiffPIR, Zhu et al. 2023, eq. 12, joint):

    (x0, n0) = argmin ||y - A x0 - B n0||^2 / sigma_y^2
                      + sum_site ||site0 - site0_hat||^2 / C_site,   C_site = (s_t / a_t)^2 / lambda

i.e. DiffPIR's rho_t = lambda sigma_y^2 / sigma_t^2 per site, in closed form for a Gaussian
likelihood: site0 = site0_hat + C_site M^T K^-1 (y - A x0_hat - B n0_hat) with
K = Sigma_y + A C_x A^T + B C_n B^T (CG, lineax; the operators linearised at x0_hat). The score
handed to the integrator is the one whose Tweedie estimate is the proximal point,
(a_t site0 - x_t) / s_t^2, so DDIM(eta) from it is DiffPIR's step. No VJP through the networks:
one forward pass per prior per step. ``guidance_weight`` is lambda (larger trusts the prior more).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bayesnoise.linear_solve import solve_positive_definite
from bayesnoise.samplers.base import AbstractGuidance, Guided, StepInfo, zeros_like

__all__ = ["Proximal"]


class Proximal(AbstractGuidance):
    """The closed-form proximal point of the likelihood around Tweedie's estimates."""

    option_defaults = {"guidance_weight": 1.0, "cg_tolerance": 1e-4, "cg_max_steps": 100}

    def __call__(self, rng_key, position, target, observation, time, options):
        sde = target.sde
        a_t, s_t = sde.marginal_mean_coefficient(time), sde.marginal_std(time)
        denoised, _ = target.tweedie_denoise(position, time)
        predicted, forward_linear = jax.linearize(target.predicted_observation, denoised)
        forward_transpose = jax.linear_transpose(forward_linear, denoised)
        variance = target.observation_distribution(denoised, observation).variance
        prior_variance = {
            name: (s_t / a_t) ** 2 / jnp.maximum(weight, 1e-12)
            for name, weight in options["guidance_weight"].items()
        }

        def scaled(v):
            return {name: prior_variance[name] * value for name, value in v.items()}

        def likelihood_covariance(u):
            (back,) = forward_transpose(u)
            return variance * u + forward_linear(scaled(back))

        residual = observation - predicted
        solve = solve_positive_definite(
            likelihood_covariance, residual, options["cg_tolerance"], options["cg_max_steps"]
        )
        (back,) = forward_transpose(solve.solution)
        proximal = {name: denoised[name] + prior_variance[name] * back[name] for name in back}
        scores = {name: (a_t * proximal[name] - position[name]) / s_t**2 for name in position}
        info = StepInfo(jnp.linalg.norm(residual), solve.converged, solve.num_steps)
        return Guided(position, scores, zeros_like(position), info)
