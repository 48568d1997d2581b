"""What every joint diffusion kernel shares: state, info, and the two elementary moves.

Kernels follow BlackJAX: ``init(position, start_time) -> DiffusionState``, ``build_kernel(...)``
returning ``kernel(rng_key, state, observation, ...) -> (DiffusionState, DiffusionInfo)``, and
``as_top_level_api(...) -> blackjax.base.SamplingAlgorithm``. A position is a dict of unbatched
signals ``{"x": ..., "n": ...}``; each step moves the diffusion time from t to t - time_step.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from blackjax.base import SamplingAlgorithm
from jaxtyping import Array, Float, PRNGKeyArray

from bayesnoise.sde import AbstractSDE

__all__ = [
    "sampling_algorithm",
    "DiffusionState",
    "DiffusionInfo",
    "init",
    "reverse_euler_maruyama",
    "langevin_step",
    "diffuse_observation",
    "split_like",
]

Position = dict[str, Array]


class DiffusionState(NamedTuple):
    """The joint position and the diffusion time it is at."""

    position: Position
    time: Float[Array, ""]


class DiffusionInfo(NamedTuple):
    """Per-step information: the norm of the data residual the step's guidance used."""

    residual_norm: Float[Array, ""]


def init(position: Position, start_time: float = 1.0) -> DiffusionState:
    """Start a reverse diffusion at ``start_time`` (1 for the SDE's prior, < 1 for SDEdit)."""
    return DiffusionState(dict(position), jnp.asarray(start_time, dtype=jnp.float32))


def sampling_algorithm(kernel, start_time, *kernel_args) -> SamplingAlgorithm:
    """BlackJAX's ``SamplingAlgorithm`` around ``kernel(rng_key, state, *kernel_args)``."""

    def init_fn(position, rng_key=None):
        return init(position, start_time)

    def step_fn(rng_key, state):
        return kernel(rng_key, state, *kernel_args)

    return SamplingAlgorithm(init_fn, step_fn)


def split_like(rng_key: PRNGKeyArray, position: Position) -> dict[str, PRNGKeyArray]:
    """One independent key per site of the position."""
    keys = jax.random.split(rng_key, len(position))
    return dict(zip(position, keys, strict=True))


def reverse_euler_maruyama(
    rng_key: PRNGKeyArray,
    position: Position,
    scores: Position,
    time: Float[Array, ""],
    time_step: Float[Array, ""],
    sde: AbstractSDE,
) -> Position:
    """x <- x - [f(t) x - g(t)^2 score] dt + g(t) sqrt(dt) z, per site (Song et al. 2021, eq. 6)."""
    drift = sde.drift_coefficient(time)
    diffusion = sde.diffusion(time)
    keys = split_like(rng_key, position)

    def move(name):
        x, score = position[name], scores[name]
        noise = jax.random.normal(keys[name], x.shape)
        return (
            x
            - (drift * x - diffusion**2 * score) * time_step
            + diffusion * jnp.sqrt(time_step) * noise
        )

    return {name: move(name) for name in position}


def langevin_step(
    rng_key: PRNGKeyArray,
    position: Position,
    scores: Position,
    signal_to_noise: float,
    alpha: Float[Array, ""] = 1.0,
) -> Position:
    """One Langevin move per site with score_sde's step rule (Song et al. 2021, Algorithm 5).

    step = 2 alpha (snr ||z|| / ||score||)^2;  x <- x + step score + sqrt(2 step) z.
    """
    keys = split_like(rng_key, position)

    def move(name):
        x, score = position[name], scores[name]
        noise = jax.random.normal(keys[name], x.shape)
        ratio = signal_to_noise * jnp.linalg.norm(noise) / jnp.linalg.norm(score)
        step = 2.0 * alpha * ratio**2
        return x + step * score + jnp.sqrt(2.0 * step) * noise

    return {name: move(name) for name in position}


def diffuse_observation(
    rng_key: PRNGKeyArray, observation: Array, time: Float[Array, ""], sde: AbstractSDE
) -> Array:
    """y_t ~ q(y_t | y) = N(a_t y, s_t^2 I): the observation diffused to time t (Algorithm 1)."""
    return sde.perturb(rng_key, observation, time)
