"""Priors known through their diffused scores: analytic Gaussians and score networks."""

from bayesnoise.priors.base import AbstractScorePrior
from bayesnoise.priors.gaussian import GaussianPrior
from bayesnoise.priors.score_net import ScoreNetPrior
from bayesnoise.priors.sinusoidal import (
    sample_sinusoidal_noise,
    sinusoidal_noise_prior,
    sinusoidal_std,
)

__all__ = [
    "AbstractScorePrior",
    "GaussianPrior",
    "ScoreNetPrior",
    "sample_sinusoidal_noise",
    "sinusoidal_noise_prior",
    "sinusoidal_std",
]
