"""No guidance: the priors' own scores (unconditional sampling of each prior)."""

from __future__ import annotations

from bayesnoise.samplers.base import AbstractGuidance, Guided, no_solve_info, zeros_like
from bayesnoise.samplers.guidance.common import residual_norm

__all__ = ["Unconditional"]


class Unconditional(AbstractGuidance):
    """The prior scores unchanged; the info still reports the residual of Tweedie's estimates."""

    def __call__(self, rng_key, position, target, observation, time, options):
        denoised, scores = target.tweedie_denoise(position, time)
        info = no_solve_info(residual_norm(target, denoised, observation))
        return Guided(position, scores, zeros_like(position), info)
