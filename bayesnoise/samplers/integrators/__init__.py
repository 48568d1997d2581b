"""Integrators: move (x, n) from t to t_next given the guidance's scores, one file each."""

from bayesnoise.samplers.integrators.ddim import DDIM
from bayesnoise.samplers.integrators.euler_maruyama import EulerMaruyama
from bayesnoise.samplers.integrators.heun import Heun
from bayesnoise.samplers.integrators.langevin import AnnealedLangevin, PredictorCorrector

INTEGRATORS = {
    "euler_maruyama": EulerMaruyama,
    "ddim": DDIM,
    "heun": Heun,
    "predictor_corrector": PredictorCorrector,
    "annealed_langevin": AnnealedLangevin,
}
"""Integrator classes by name."""

__all__ = [
    "INTEGRATORS",
    "EulerMaruyama",
    "DDIM",
    "Heun",
    "PredictorCorrector",
    "AnnealedLangevin",
]
