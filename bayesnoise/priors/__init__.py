"""Priors known through their diffused scores: analytic Gaussians and score networks."""

from bayesnoise.priors.base import AbstractScorePrior
from bayesnoise.priors.conditional import ConditionalScoreNetPrior
from bayesnoise.priors.gaussian import GaussianPrior
from bayesnoise.priors.low_rank import LowRankGaussianPrior
from bayesnoise.priors.moire import moire_factor, moire_noise_prior, sample_moire_noise
from bayesnoise.priors.score_net import ScoreNetPrior
from bayesnoise.priors.sinusoidal import (
    sample_sinusoidal_noise,
    sinusoidal_noise_prior,
    sinusoidal_std,
)
from bayesnoise.priors.stripes import sample_stripe_noise, stripe_factor, stripe_noise_prior

__all__ = [
    "AbstractScorePrior",
    "ConditionalScoreNetPrior",
    "GaussianPrior",
    "LowRankGaussianPrior",
    "ScoreNetPrior",
    "sample_sinusoidal_noise",
    "sinusoidal_noise_prior",
    "sinusoidal_std",
    "stripe_factor",
    "sample_stripe_noise",
    "stripe_noise_prior",
    "moire_factor",
    "sample_moire_noise",
    "moire_noise_prior",
]
