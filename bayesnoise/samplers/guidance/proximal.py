"""A proximal data step on Tweedie's estimates (DiffPIR, Zhu et al. 2023, eq. 12, joint):

    (x0, n0) = argmin ||y - A x0 - B n0||^2 / sigma_y^2
                      + sum_site ||site0 - site0_hat||^2 / C_site,   C_site = (s_t / a_t)^2 / lambda

i.e. DiffPIR's rho_t = lambda sigma_y^2 / sigma_t^2 per site, in closed form for a Gaussian
likelihood: site0 = site0_hat + C_site M^T K^-1 (y - A x0_hat - B n0_hat) with
K = Sigma_y + A C_x A^T + B C_n B^T (CG; the operators linearised at x0_hat). The score
handed to the integrator is the one whose Tweedie estimate is the proximal point,
(a_t site0 - x_t) / s_t^2, so DDIM(eta) from it is DiffPIR's step. No VJP through the networks:
one forward pass per prior per step. ``guidance_weight`` is lambda (larger trusts the prior more).
"""

from __future__ import annotations

import jax.numpy as jnp

from bayesnoise.samplers.base import AbstractGuidance, Guided, zeros_like
from bayesnoise.samplers.guidance.common import weighted_residual

__all__ = ["Proximal"]


class Proximal(AbstractGuidance):
    """The closed-form proximal point of the likelihood around Tweedie's estimates."""

    option_defaults = {"guidance_weight": 1.0, "cg_tolerance": 1e-4, "cg_max_steps": 100}

    def __call__(self, rng_key, position, target, observation, time, options):
        sde = target.sde
        a_t, s_t = sde.marginal_mean_coefficient(time), sde.marginal_std(time)
        denoised, _ = target.tweedie_denoise(position, time)
        prior_variance = {
            name: (s_t / a_t) ** 2 / jnp.maximum(weight, 1e-12)
            for name, weight in options["guidance_weight"].items()
        }

        def covariance(v):
            return {name: prior_variance[name] * value for name, value in v.items()}

        back, info = weighted_residual(target, denoised, observation, covariance, options)
        proximal = {name: denoised[name] + prior_variance[name] * back[name] for name in back}
        scores = {name: (a_t * proximal[name] - position[name]) / s_t**2 for name in position}
        return Guided(position, scores, zeros_like(position), info)
