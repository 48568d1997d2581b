"""Reverse-time Euler–Maruyama (Song et al. 2021, eq. 6), from t to t_next = t - dt:

x <- x - [f(t) x - g(t)^2 score(x, t)] dt + g(t) sqrt(dt) z
"""

from __future__ import annotations

import jax

from bayesnoise.samplers.base import AbstractIntegrator, Guided, add, gaussian_like

__all__ = ["EulerMaruyama", "euler_maruyama_move"]


def euler_maruyama_move(rng_key, guided: Guided, time, next_time, sde):
    """One reverse Euler–Maruyama move from ``guided.position`` with ``guided.scores``."""
    time_step = time - next_time
    drift = sde.drift_coefficient(time)
    diffusion = sde.diffusion(time)
    noise = gaussian_like(rng_key, guided.position)
    moved = {
        name: x
        - (drift * x - diffusion**2 * guided.scores[name]) * time_step
        + diffusion * time_step**0.5 * noise[name]
        for name, x in guided.position.items()
    }
    return add(moved, guided.shift)


class EulerMaruyama(AbstractIntegrator):
    """The reverse SDE, one Euler–Maruyama step per time step (one evaluation per prior)."""

    def __call__(self, rng_key, position, guide, time, next_time, sde, options):
        key_guide, key_move = jax.random.split(rng_key)
        guided = guide(key_guide, position, time)
        return euler_maruyama_move(key_move, guided, time, next_time, sde), guided.info
