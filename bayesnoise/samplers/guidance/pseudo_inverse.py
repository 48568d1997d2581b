"""Pseudo-inverse projection toward the diffused observation (Song et al. 2022's projection):

    y_t ~ N(a_t y, s_t^2 I),  r = y_t - A x - B n,  x <- x + lambda A^+ r,  n <- n + kappa B^+ r

with A^+ = A^T (A A^T)^-1 applied matrix-free by CG; the integrator then moves with the priors'
unconditional scores. Single-prior with lambda = 1 is the classic hard projection. (This is not
the authors' "projection", which is Algorithm 1: :mod:`.data_consistency`.)
"""

from __future__ import annotations

import jax.numpy as jnp

from bayesnoise.linear_solve import pseudo_inverse
from bayesnoise.samplers.base import AbstractGuidance, Guided, StepInfo, zeros_like
from bayesnoise.samplers.guidance.common import residual_norm

__all__ = ["PseudoInverse"]


class PseudoInverse(AbstractGuidance):
    """Per-site pseudo-inverse corrections of the residual to the diffused observation."""

    option_defaults = {"guidance_weight": 1.0, "cg_tolerance": 1e-4, "cg_max_steps": 100}
    moves_position = True

    def __call__(self, rng_key, position, target, observation, time, options):
        diffused = target.sde.perturb(rng_key, observation, time)
        residual = diffused - target.predicted_observation(position)
        corrected, converged, steps = {}, jnp.array(True), jnp.array(0)
        for name in target.latent_names:

            def forward_of_site(value, name=name):
                return target.predicted_observation({**position, name: value})

            correction, solve = pseudo_inverse(
                forward_of_site,
                position[name],
                residual,
                tolerance=options["cg_tolerance"],
                max_steps=options["cg_max_steps"],
            )
            corrected[name] = position[name] + options["guidance_weight"][name] * correction
            converged, steps = converged & solve.converged, steps + solve.num_steps
        denoised, scores = target.tweedie_denoise(corrected, time)
        info = StepInfo(residual_norm(target, denoised, observation), converged, steps)
        return Guided(corrected, scores, zeros_like(corrected), info)
