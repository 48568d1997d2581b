"""Joint diffusion kernels, one per file, each with init / build_kernel / as_top_level_api."""

from bayesnoise.kernels import (
    annealed_langevin,
    data_consistency,
    dps,
    pigdm,
    predictor_corrector,
    projection,
)
from bayesnoise.kernels.base import DiffusionInfo, DiffusionState

SAMPLERS = {
    "pigdm": pigdm,
    "predictor_corrector": predictor_corrector,
    "annealed_langevin": annealed_langevin,
    "dps": dps,
    "data_consistency": data_consistency,
    "projection": projection,
}
"""Kernel modules by name; ``data_consistency`` is the paper's Algorithm 1."""

__all__ = ["SAMPLERS", "DiffusionInfo", "DiffusionState", *SAMPLERS]
