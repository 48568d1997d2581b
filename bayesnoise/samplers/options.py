"""One vocabulary of sampler options, validated per sampler.

Every sampler reads its tuning values from one ``options`` dict with these names (each part of
a sampler declares which it reads, with defaults). Per-site options take a number (the same for
every site) or a dict ``{"x": ..., "n": ...}``. Numbers become float32 arrays, so the driver's
jitted step traces them: sweeping a value, or writing 1 instead of 1.0, never recompiles.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import jax.numpy as jnp

__all__ = ["VOCABULARY", "PER_SITE", "prepare_options"]

VOCABULARY = {
    "guidance_weight": "weight of the guidance term per site (DPS zeta, PiGDM w, Algorithm 1 "
    "lambda/mu, pseudo-inverse lambda/kappa, proximal lambda); number >= 0 or {site: number}",
    "covariance": "PiGDM's covariance of x_0 given x_t: 'tweedie' (exact for Gaussian priors) "
    "or 'scalar' (PiGDM's r_t^2)",
    "prior_variance": "the 'scalar' covariance's per-element variance v of each site's prior: "
    "r_t^2 = v s_t^2 / (a_t^2 v + s_t^2), exact for N(m, v I); 1 is PiGDM's (unit-variance "
    "data); number > 0 or {site: number}",
    "cg_tolerance": "relative and absolute tolerance of conjugate-gradient solves, > 0",
    "cg_max_steps": "iteration limit of conjugate-gradient solves, integer >= 1",
    "eta": "DDIM's stochasticity in [0, 1]: 0 deterministic, 1 ancestral (DDPM)",
    "signal_to_noise": "Langevin corrector's signal-to-noise ratio (score_sde's step rule), > 0",
    "corrector_steps": "Langevin corrector moves per time step, integer >= 1",
    "step_size": "annealed Langevin step at noise level s_t is step_size * s_t^2, > 0",
    "steps_per_level": "annealed Langevin moves per noise level, integer >= 1",
}
"""Every option name any sampler reads, with its meaning."""

PER_SITE = frozenset({"guidance_weight", "prior_variance"})
CHOICES = {"covariance": ("tweedie", "scalar")}
COUNTS = frozenset({"cg_max_steps", "corrector_steps", "steps_per_level"})
POSITIVE = frozenset({"cg_tolerance", "prior_variance", "signal_to_noise", "step_size"})
UNIT_INTERVAL = frozenset({"eta"})


def _check_number(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"option {name!r} must be a number. Got {value!r}.")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"option {name!r} must be finite. Got {value!r}.")
    if name in COUNTS and not (value >= 1 and value.is_integer()):
        raise ValueError(f"option {name!r} must be an integer >= 1. Got {value!r}.")
    if name in POSITIVE and not value > 0:
        raise ValueError(f"option {name!r} must be > 0. Got {value!r}.")
    if name in UNIT_INTERVAL and not 0 <= value <= 1:
        raise ValueError(f"option {name!r} must be in [0, 1]. Got {value!r}.")
    if value < 0:
        raise ValueError(f"option {name!r} must be >= 0. Got {value!r}.")
    return value


def prepare_options(
    sampler_name: str,
    defaults: Mapping[str, Any],
    options: Mapping[str, Any] | None,
    latent_names: Iterable[str],
) -> dict[str, Any]:
    """Validate ``options`` against the options a sampler reads and fill in its defaults.

    Returns a dict of float32 arrays (per-site options as ``{site: array}``) and strings.
    An unknown or irrelevant option is an error that lists the valid ones.
    """
    options = dict(options or {})
    latent_names = tuple(latent_names)
    unknown = sorted(set(options) - set(defaults))
    if unknown:
        valid = ", ".join(sorted(defaults)) or "none"
        raise ValueError(
            f"sampler {sampler_name!r} does not take option(s) {unknown}. Valid options: {valid}."
        )
    prepared = {}
    for name, default in defaults.items():
        value = options.get(name, default)
        if name in CHOICES:
            if value not in CHOICES[name]:
                raise ValueError(f"option {name!r} must be one of {CHOICES[name]}. Got {value!r}.")
            prepared[name] = value
        elif name in PER_SITE:
            if not isinstance(value, Mapping):
                value = dict.fromkeys(latent_names, value)
            extra = sorted(set(value) - set(latent_names))
            if extra:
                raise ValueError(
                    f"option {name!r} has sites {extra} that the model does not have. "
                    f"The model's sites: {list(latent_names)}."
                )
            prepared[name] = {
                site: jnp.asarray(_check_number(name, value.get(site, default)), jnp.float32)
                for site in latent_names
            }
        else:
            prepared[name] = jnp.asarray(_check_number(name, value), jnp.float32)
    return prepared
