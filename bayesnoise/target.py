"""What the samplers need from a NumPyro model, derived through ``numpyro.infer.util``.

The samplers never see a hand-written likelihood: prior scores are the gradients of the model's
latent log-densities at diffusion time t, and the likelihood (its mean A(x) + B(n), variance and
log-density) is read off the model's observed site ``"y"``.

A :class:`PosteriorTarget` is an Equinox module: when the model is one too (what
:func:`bayesnoise.joint_model` returns), its networks, operators and Gaussian moments are array
leaves, so the driver's ``eqx.filter_jit`` takes them as inputs (never compiled-in constants)
and two models of equal shapes share one compilation.
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro.handlers as handlers
from numpyro.infer.util import log_density, log_likelihood

from bayesnoise.priors.distribution import ScorePriorDistribution
from bayesnoise.sde import AbstractSDE

__all__ = ["PosteriorTarget", "posterior_target", "OBSERVED_SITE"]

OBSERVED_SITE = "y"


class PosteriorTarget(eqx.Module):
    """The diffused posterior p_t(x, n | y) of a model, as pure functions of a position pytree.

    A *position* is a dict ``{"x": ..., "n": ...}`` (just ``{"x": ...}`` for single-prior
    models) of unbatched signals.
    """

    model: Callable
    sde: AbstractSDE
    latent_names: tuple[str, ...] = eqx.field(static=True)
    latent_shape_items: tuple[tuple[str, tuple[int, ...]], ...] = eqx.field(static=True)
    observation_shape: tuple[int, ...] = eqx.field(static=True)

    @property
    def latent_shapes(self) -> dict[str, tuple[int, ...]]:
        return dict(self.latent_shape_items)

    @property
    def priors(self) -> dict:
        """The score prior of each latent site (traced off the model)."""
        return {name: site["fn"].prior for name, site in _latent_sites(self.model).items()}

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

    def denoise(self, position, scores, diffusion_time):
        """Tweedie's E[x_0 | x_t] = (x_t + s_t^2 score(x_t, t)) / a_t per site (DPS eq. 11)."""
        a_t = self.sde.marginal_mean_coefficient(diffusion_time)
        s_t = self.sde.marginal_std(diffusion_time)
        return jax.tree.map(lambda x, score: (x + s_t**2 * score) / a_t, position, scores)

    def tweedie_denoise(self, position, diffusion_time):
        """Tweedie's estimate of every site and the prior scores it used."""
        scores = self.prior_score(position, diffusion_time)
        return self.denoise(position, scores, diffusion_time), scores


def _sample_sites(model):
    """Trace the model once with zeros for every site to learn its sites and shapes."""

    def zeros(site):
        return jnp.zeros(site["fn"].shape())

    substituted = handlers.substitute(handlers.seed(model, 0), substitute_fn=zeros)
    trace = handlers.trace(substituted).get_trace(observation=None, diffusion_time=1.0)
    return {name: site for name, site in trace.items() if site["type"] == "sample"}


def _latent_sites(model):
    return {name: site for name, site in _sample_sites(model).items() if name != OBSERVED_SITE}


def posterior_target(model: Callable) -> PosteriorTarget:
    """The target of a NumPyro model whose latent sites carry score priors and whose observed
    site is named ``"y"``."""
    sites = _sample_sites(model)
    if OBSERVED_SITE not in sites:
        raise ValueError(
            f"model must have an observed sample site named {OBSERVED_SITE!r}. "
            f"Got sites {sorted(sites)}."
        )
    latent = {name: site for name, site in sites.items() if name != OBSERVED_SITE}
    for name, site in latent.items():
        if not isinstance(site["fn"], ScorePriorDistribution):
            raise ValueError(
                f"latent site {name!r} must be a ScorePriorDistribution. "
                f"Got {type(site['fn']).__name__}."
            )
    priors = {name: site["fn"].prior for name, site in latent.items()}
    return PosteriorTarget(
        model=model,
        sde=next(iter(priors.values())).sde,
        latent_names=tuple(latent),
        latent_shape_items=tuple((name, tuple(prior.shape)) for name, prior in priors.items()),
        observation_shape=tuple(sites[OBSERVED_SITE]["fn"].shape()),
    )
