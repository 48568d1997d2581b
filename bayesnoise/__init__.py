"""bayesnoise: joint posterior sampling of a signal and structured noise with two diffusion priors.

For y = A(x) + B(n) + eps it samples p(x, n | y) with one score prior for x and one for n,
coupled only through the likelihood of y (Stevens et al., "Removing Structured Noise with
Diffusion Models").
"""

from bayesnoise import operators, samplers, target  # noqa: F401  (public submodules)
from bayesnoise.diagnostics import summarize
from bayesnoise.inference import sample
from bayesnoise.model import JointModel, joint_model
from bayesnoise.model_file import load_model
from bayesnoise.output import save_datatree
from bayesnoise.priors import (
    AbstractScorePrior,
    ConditionalScoreNetPrior,
    GaussianPrior,
    LowRankGaussianPrior,
    ScoreNetPrior,
    moire_noise_prior,
    sample_moire_noise,
    sample_sinusoidal_noise,
    sample_stripe_noise,
    sinusoidal_noise_prior,
    sinusoidal_std,
    stripe_noise_prior,
)
from bayesnoise.priors.distribution import ScorePriorDistribution
from bayesnoise.samplers import SAMPLERS, Sampler, sampler
from bayesnoise.samplers.prior_draws import sample_prior
from bayesnoise.sde import VESDE, VPSDE, AbstractSDE, SimpleSDE, SubVPSDE, time_grid

__all__ = [
    "AbstractSDE",
    "VPSDE",
    "SubVPSDE",
    "VESDE",
    "SimpleSDE",
    "time_grid",
    "AbstractScorePrior",
    "GaussianPrior",
    "ScoreNetPrior",
    "ConditionalScoreNetPrior",
    "ScorePriorDistribution",
    "sinusoidal_noise_prior",
    "sinusoidal_std",
    "sample_sinusoidal_noise",
    "LowRankGaussianPrior",
    "stripe_noise_prior",
    "sample_stripe_noise",
    "moire_noise_prior",
    "sample_moire_noise",
    "joint_model",
    "JointModel",
    "sampler",
    "Sampler",
    "SAMPLERS",
    "sample_prior",
    "load_model",
    "sample",
    "summarize",
    "save_datatree",
    "samplers",
    "operators",
]
