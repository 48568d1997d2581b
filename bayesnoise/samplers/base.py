"""What every sampler shares: its state and info, and the two abstract parts it is made of.

A sampler is an **integrator** composed with a **guidance** term (:class:`Sampler`):

- the guidance turns the priors' scores into the scores the integrator should follow (DPS,
  PiGDM, proximal) or moves the position by a data step first (Algorithm 1, pseudo-inverse),
  and may add a correction after the move (DPS); it returns a :class:`Guided`;
- the integrator moves the position from t to t_next with whatever scores it is handed
  (reverse Euler–Maruyama, DDIM(eta), Heun, Langevin moves), calling the guidance as often as
  it needs a score.

Every step is pure and takes what it reads as arguments (BlackJAX's convention):
``step(rng_key, state, target, observation, t, t_next, options) -> (SamplerState, StepInfo)``.
The driver owns time. A position is a dict of unbatched signals ``{"x": ..., "n": ...}``.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Bool, Float, Int, PRNGKeyArray

from bayesnoise.sde import AbstractSDE

__all__ = [
    "Position",
    "SamplerState",
    "StepInfo",
    "Guided",
    "AbstractGuidance",
    "AbstractIntegrator",
    "split_like",
    "no_solve_info",
]

Position = dict[str, Array]


class SamplerState(NamedTuple):
    """The joint position of one reverse-diffusion trajectory."""

    position: Position


class StepInfo(NamedTuple):
    """What one step reports; each field has one meaning for every sampler.

    residual_norm : ||y - E[y | x0_hat, n0_hat]||, the data residual of Tweedie's estimates
        at the point where the step's guidance evaluated the priors (units of y).
    solver_converged : False when a linear solve of the step (PiGDM's Tweedie covariance,
        a proximal or pseudo-inverse step) stopped at its iteration limit; True without one.
    solver_steps : CG iterations of the step's linear solves (0 without one).
    """

    residual_norm: Float[Array, ""]
    solver_converged: Bool[Array, ""]
    solver_steps: Int[Array, ""]


def no_solve_info(residual_norm) -> StepInfo:
    """The info of a step that solved no linear system."""
    return StepInfo(jnp.asarray(residual_norm, jnp.float32), jnp.array(True), jnp.array(0))


class Guided(NamedTuple):
    """The guidance's answer at one point.

    position : where the integrator starts (moved by a data step, or the input position).
    scores : the scores the integrator follows there.
    shift : added to the integrator's result (DPS's -zeta grad ||r||; zeros otherwise).
    info : the step's :class:`StepInfo`.
    """

    position: Position
    scores: Position
    shift: Position
    info: StepInfo


GuideFn = Callable[[PRNGKeyArray, Position, Float[Array, ""]], Guided]
"""``guide(rng_key, position, t) -> Guided``: the guidance bound to a target and observation."""


class AbstractGuidance(eqx.Module):
    """Turns prior scores into posterior scores, or applies a data step.

    ``option_defaults`` names the options it reads (the shared vocabulary, see
    :mod:`bayesnoise.samplers.options`). ``moves_position`` is True for data-step guidance
    (the integrator must then start from ``Guided.position``); ``vjps_per_evaluation`` counts
    the vector-Jacobian products through each prior's network per evaluation.
    """

    option_defaults: ClassVar[dict[str, Any]] = {}
    moves_position: ClassVar[bool] = False
    vjps_per_evaluation: ClassVar[int] = 0

    @abc.abstractmethod
    def __call__(
        self, rng_key, position: Position, target, observation, time, options: dict
    ) -> Guided:
        """The guidance at ``position`` and diffusion time ``time``."""


class AbstractIntegrator(eqx.Module):
    """Moves a position from t to t_next given a guidance function."""

    option_defaults: ClassVar[dict[str, Any]] = {}
    accepts_data_steps: ClassVar[bool] = True

    @abc.abstractmethod
    def __call__(
        self,
        rng_key: PRNGKeyArray,
        position: Position,
        guide: GuideFn,
        time: Float[Array, ""],
        next_time: Float[Array, ""],
        sde: AbstractSDE,
        options: dict,
    ) -> tuple[Position, StepInfo]:
        """The position at ``next_time`` and the info of the step."""

    def evaluations_per_step(self, options: dict) -> int:
        """Network evaluations per prior in one step (a forward pass of one network is one)."""
        return 1

    def evaluations(self, num_steps: int, options: dict) -> int:
        """Network evaluations per prior over ``num_steps`` steps."""
        return num_steps * self.evaluations_per_step(options)


def split_like(rng_key: PRNGKeyArray, position: Position) -> dict[str, PRNGKeyArray]:
    """One independent key per site of the position."""
    keys = jax.random.split(rng_key, len(position))
    return dict(zip(position, keys, strict=True))


def gaussian_like(rng_key: PRNGKeyArray, position: Position) -> Position:
    """Standard normal noise with the position's structure, one key per site."""
    keys = split_like(rng_key, position)
    return {name: jax.random.normal(keys[name], value.shape) for name, value in position.items()}


def add(first: Position, second: Position) -> Position:
    return jax.tree.map(jnp.add, first, second)


def zeros_like(position: Position) -> Position:
    return jax.tree.map(jnp.zeros_like, position)
