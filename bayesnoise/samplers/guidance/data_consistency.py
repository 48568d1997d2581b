"""The paper's Algorithm 1 (Stevens et al., eqs. 18-19): gradient steps toward the diffused y.

At time t the observation is diffused, y_t ~ N(a_t y, s_t^2 I), then, sequentially as in the
paper's appendix C,

    x <- x - lambda A^T (A x + B n - y_t),   n <- n - mu B^T (A x + B n - y_t),

and the integrator moves from there with the priors' unconditional scores. The gradient comes
from the model's log-likelihood, multiplied by its (mean) variance so that ``guidance_weight``
({"x": lambda, "n": mu}) are the paper's step sizes whatever the measurement std. The authors'
released code calls this guidance "projection" (lambda = kappa = 0.5).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from bayesnoise.samplers.base import AbstractGuidance, Guided, no_solve_info, zeros_like
from bayesnoise.samplers.guidance.common import residual_norm

__all__ = ["DataConsistency"]


class DataConsistency(AbstractGuidance):
    """Algorithm 1's data-consistency gradient steps on the diffused observation."""

    option_defaults = {"guidance_weight": 1.0}
    moves_position = True

    def __call__(self, rng_key, position, target, observation, time, options):
        likelihood = getattr(target.model, "likelihood", "gaussian")
        if likelihood != "gaussian":
            raise ValueError(
                "guidance data_consistency (Algorithm 1) steps with one variance for every "
                "measurement, so it needs a Gaussian likelihood whose variance does not depend "
                f"on the signal. Got likelihood={likelihood!r}; use a DPS, PiGDM or proximal "
                "sampler (e.g. dps, pigdm, ddim_pigdm, diffpir)."
            )
        diffused = target.sde.perturb(rng_key, observation, time)
        position = dict(position)
        variance = jnp.mean(target.observation_distribution(position, diffused).variance)
        weights = options["guidance_weight"]
        for name in target.latent_names:
            gradient = jax.grad(target.log_likelihood)(position, diffused)[name]
            position[name] = position[name] + weights[name] * variance * gradient
        denoised, scores = target.tweedie_denoise(position, time)
        info = no_solve_info(residual_norm(target, denoised, observation))
        return Guided(position, scores, zeros_like(position), info)
