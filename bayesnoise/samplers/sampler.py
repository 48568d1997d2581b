"""A sampler: an integrator composed with a guidance term (like ``optax.chain`` of two parts)."""

from __future__ import annotations

from typing import Any

import equinox as eqx

from bayesnoise.samplers.base import (
    AbstractGuidance,
    AbstractIntegrator,
    Position,
    SamplerState,
    StepInfo,
)
from bayesnoise.samplers.options import prepare_options

__all__ = ["Sampler"]


class Sampler(eqx.Module):
    """``integrator`` driven by the scores (or data steps) of ``guidance``.

    Parameters
    ----------
    integrator : moves (x, n) from t to t_next.
    guidance : turns prior scores into posterior scores, or applies a data step.
    name : how the sampler is reported (in the DataTree attributes and errors).
    default_overrides : option defaults of this composition that differ from its parts' (e.g.
        ``{"eta": 1.0}`` makes DDIM ancestral).

    Examples
    --------
    >>> from bayesnoise.samplers import integrators, guidance
    >>> ddim_dps = Sampler(integrators.DDIM(), guidance.DPS(), "ddim_dps")
    """

    integrator: AbstractIntegrator
    guidance: AbstractGuidance
    name: str = eqx.field(static=True)
    default_overrides: tuple[tuple[str, Any], ...] = eqx.field(static=True, default=())

    def __check_init__(self):
        if self.guidance.moves_position and not self.integrator.accepts_data_steps:
            raise ValueError(
                f"integrator {type(self.integrator).__name__} follows scores only and cannot "
                f"take the data steps of guidance {type(self.guidance).__name__}; use a "
                "score guidance (dps, pigdm, proximal) with it."
            )

    @property
    def option_defaults(self) -> dict[str, Any]:
        """Every option this sampler reads, with its default."""
        defaults = {**self.integrator.option_defaults, **self.guidance.option_defaults}
        defaults.update(self.default_overrides)
        return defaults

    def prepare_options(self, options: dict | None, latent_names) -> dict:
        """Validated options with defaults filled in, numbers as traced-ready arrays."""
        return prepare_options(self.name, self.option_defaults, options, latent_names)

    def init(self, position: Position) -> SamplerState:
        """The state of a trajectory at ``position``."""
        return SamplerState(dict(position))

    def step(
        self, rng_key, state: SamplerState, target, observation, time, next_time, options: dict
    ) -> tuple[SamplerState, StepInfo]:
        """Advance one trajectory from ``time`` to ``next_time``; pure, everything passed in."""

        def guide(key, position, at_time):
            return self.guidance(key, position, target, observation, at_time, options)

        position, info = self.integrator(
            rng_key, state.position, guide, time, next_time, target.sde, options
        )
        return SamplerState(position), info

    def network_evaluations(self, num_steps: int, options: dict | None = None) -> int:
        """Forward passes of each prior's network over ``num_steps`` steps."""
        merged = {**self.option_defaults, **(options or {})}
        return self.integrator.evaluations(num_steps, merged)

    def vjps(self, num_steps: int, options: dict | None = None) -> int:
        """Vector-Jacobian products through each prior's network over ``num_steps`` steps
        (PiGDM with Tweedie covariance adds CG Jacobian-vector products on top)."""
        return self.network_evaluations(num_steps, options) * self.guidance.vjps_per_evaluation
