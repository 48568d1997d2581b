"""Samplers as integrator x guidance compositions (see :mod:`bayesnoise.samplers.base`).

``SAMPLERS`` holds the named compositions; ``sampler("ddim", guidance="dps")`` builds any other.
"""

from bayesnoise.samplers import guidance, integrators
from bayesnoise.samplers.base import (
    AbstractGuidance,
    AbstractIntegrator,
    Guided,
    SamplerState,
    StepInfo,
)
from bayesnoise.samplers.options import VOCABULARY
from bayesnoise.samplers.registry import DESCRIPTIONS, SAMPLERS, get_sampler, sampler
from bayesnoise.samplers.sampler import Sampler

__all__ = [
    "SAMPLERS",
    "DESCRIPTIONS",
    "VOCABULARY",
    "Sampler",
    "sampler",
    "get_sampler",
    "SamplerState",
    "StepInfo",
    "Guided",
    "AbstractGuidance",
    "AbstractIntegrator",
    "guidance",
    "integrators",
]
