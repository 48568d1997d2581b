"""What the kernels need from a NumPyro model, derived through ``numpyro.infer.util``.

The kernels never see a hand-written likelihood: prior scores are the gradients of the model's
latent log-densities at diffusion time t, and the likelihood (its mean A(x) + B(n), variance and
log-density) is read off the model's observed site ``"y"``.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpyro.handlers as handlers
from numpyro.infer.util import log_density, log_likelihood

from bayesnoise.priors.distribution import ScorePriorDistribution

__all__ = ["PosteriorTarget", "posterior_target"]

OBSERVED_SITE = "y"


class PosteriorTarget:
    """The diffused posterior p_t(x, n | y) of a model, as pure functions of a position pytree.

    A *position* is a dict ``{"x": ..., "n": ...}`` (just ``{"x": ...}`` for single-prior
    models) of unbatched signals.
    """

    def __init__(self, model: Callable):
        self.model = model
        sites = _inspect_sites(model)
        latent = {name: site for name, site in sites.items() if name != OBSERVED_SITE}
        if OBSERVED_SITE not in sites:
            raise ValueError(
                f"model must have an observed sample site named {OBSERVED_SITE!r}. "
                f"Got sites {sorted(sites)}."
            )
        for name, site in latent.items():
            if not isinstance(site["fn"], ScorePriorDistribution):
                raise ValueError(
                    f"latent site {name!r} must be a ScorePriorDistribution. "
                    f"Got {type(site['fn']).__name__}."
                )
        self.latent_names = tuple(latent)
        self.priors = {name: site["fn"].prior for name, site in latent.items()}
        self.latent_shapes = {name: tuple(prior.shape) for name, prior in self.priors.items()}
        self.observation_shape = tuple(sites[OBSERVED_SITE]["fn"].shape())
        self.sde = next(iter(self.priors.values())).sde

    def _kwargs(self, observation, diffusion_time):
        return {"observation": observation, "diffusion_time": diffusion_time}

    def prior_log_density(self, position, diffusion_time):
        """sum over latent sites of log p_t(site); its gradient is the prior score."""
        prior_only = handlers.block(self.model, hide=[OBSERVED_SITE])
        placeholder = jnp.zeros(self.observation_shape)
        kwargs = self._kwargs(placeholder, diffusion_time)
        return log_density(prior_only, (), kwargs, position)[0]

    def prior_score(self, position, diffusion_time):
        """grad log p_t(position): each site's prior score at diffusion time t."""
        return jax.grad(self.prior_log_density)(position, diffusion_time)

    def log_likelihood(self, position, observation):
        """log p(observation | position), summed over measurements."""
        per_site = log_likelihood(
            self.model, position, batch_ndims=0, **self._kwargs(observation, 0.0)
        )
        return jnp.sum(per_site[OBSERVED_SITE])

    def observation_distribution(self, position, observation):
        """The distribution of y given the position (mean A(x) + B(n), variance)."""
        kwargs = self._kwargs(observation, 0.0)
        trace = log_density(self.model, (), kwargs, position)[1]
        return trace[OBSERVED_SITE]["fn"]

    def predicted_observation(self, position):
        """A(x) + B(n): the mean of y given the position."""
        placeholder = jnp.zeros(self.observation_shape)
        return self.observation_distribution(position, placeholder).mean

    def tweedie_denoise(self, position, diffusion_time):
        """E[x_0 | x_t] = (x_t + s_t^2 score(x_t, t)) / a_t per site (DPS eq. 11).

        Returns the denoised position and the prior scores it used.
        """
        a_t = self.sde.marginal_mean_coefficient(diffusion_time)
        s_t = self.sde.marginal_std(diffusion_time)
        scores = self.prior_score(position, diffusion_time)
        denoised = jax.tree.map(lambda x, score: (x + s_t**2 * score) / a_t, position, scores)
        return denoised, scores


def _inspect_sites(model):
    """Trace the model once with zeros for every site to learn its sites and shapes."""

    def zeros(site):
        return jnp.zeros(site["fn"].shape())

    substituted = handlers.substitute(handlers.seed(model, 0), substitute_fn=zeros)
    trace = handlers.trace(substituted).get_trace(observation=None, diffusion_time=1.0)
    return {name: site for name, site in trace.items() if site["type"] == "sample"}


@functools.lru_cache(maxsize=64)
def posterior_target(model: Callable) -> PosteriorTarget:
    """The (cached) target of a model function: one per model, so compiled samplers are reused."""
    return PosteriorTarget(model)
