"""Langevin moves on p_t(x, n | y) at a fixed diffusion time, with BlackJAX's overdamped
Langevin step (``blackjax.mcmc.diffusions.overdamped_langevin``):

    x <- x + step * score(x, t) + sqrt(2 step) z.

- :class:`PredictorCorrector` (Song et al. 2021, Algorithms 2-3): ``corrector_steps`` moves
  with score_sde's step rule step = 2 alpha (snr ||z|| / ||score||)^2 (||z|| by its expected
  value sqrt(d), norms over the joint position, alpha = exp(2 f(t) dt)), then one reverse
  Euler–Maruyama predictor step from the last score.
- :class:`AnnealedLangevin` (Song & Ermon 2019, Algorithm 1): ``steps_per_level`` moves with
  step = step_size * s_t^2, then the next noise level.

The guidance must be a score guidance. BlackJAX's state slot for the log-density carries the
:class:`~bayesnoise.samplers.base.Guided` answer (a score network has no log-density value).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from blackjax.mcmc.diffusions import DiffusionState, overdamped_langevin

from bayesnoise.samplers.base import AbstractIntegrator
from bayesnoise.samplers.integrators.euler_maruyama import euler_maruyama_move

__all__ = ["PredictorCorrector", "AnnealedLangevin"]


def _langevin_moves(rng_key, position, guide, time, num_moves, step_size_fn):
    """``num_moves`` overdamped Langevin moves; returns the final Guided answer."""
    guide_key, move_key = jax.random.split(rng_key)

    def guided_score(position):
        guided = guide(guide_key, position, time)
        return guided, guided.scores

    one_step = overdamped_langevin(guided_score)
    guided, scores = guided_score(position)
    state = DiffusionState(position, guided, scores)

    def body(index, state):
        step_size = step_size_fn(state.logdensity_grad)
        return one_step(jax.random.fold_in(move_key, index), state, step_size)

    state = jax.lax.fori_loop(0, num_moves, body, state)
    return state.logdensity


class PredictorCorrector(AbstractIntegrator):
    """Langevin corrector moves at t, then a reverse Euler–Maruyama predictor step."""

    option_defaults = {"signal_to_noise": 0.16, "corrector_steps": 1}
    accepts_data_steps = False

    def __call__(self, rng_key, position, guide, time, next_time, sde, options):
        corrector_key, predictor_key = jax.random.split(rng_key)
        alpha = jnp.exp(2.0 * sde.drift_coefficient(time) * (time - next_time))
        size = sum(math.prod(value.shape) for value in position.values())

        def step_size(scores):
            score_norm = jnp.sqrt(sum(jnp.sum(score**2) for score in scores.values()))
            return 2.0 * alpha * (options["signal_to_noise"] * math.sqrt(size) / score_norm) ** 2

        num_moves = options["corrector_steps"].astype(jnp.int32)
        guided = _langevin_moves(corrector_key, position, guide, time, num_moves, step_size)
        moved = euler_maruyama_move(predictor_key, guided, time, next_time, sde)
        return moved, guided.info

    def evaluations_per_step(self, options):
        return int(options["corrector_steps"]) + 1


class AnnealedLangevin(AbstractIntegrator):
    """``steps_per_level`` Langevin moves at noise level s_t, then the next level."""

    option_defaults = {"step_size": 0.1, "steps_per_level": 5}
    accepts_data_steps = False

    def __call__(self, rng_key, position, guide, time, next_time, sde, options):
        step = options["step_size"] * sde.marginal_std(time) ** 2
        num_moves = options["steps_per_level"].astype(jnp.int32)
        guided = _langevin_moves(rng_key, position, guide, time, num_moves, lambda _: step)
        return guided.position, guided.info

    def evaluations_per_step(self, options):
        return int(options["steps_per_level"]) + 1
