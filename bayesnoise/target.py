"""What the samplers need from a NumPyro model, derived through ``numpyro.infer.util``.

The samplers never see a hand-written likelihood: prior scores are the gradients of the model's
latent log-densities at diffusion time t, and the likelihood (its mean A(x) + B(n), variance and
log-density) is read off the model's observed site ``"y"``.

Latent sites that are not score priors (e.g. ``alpha = numpyro.sample("alpha", dist.Beta(2, 2))``)
are *forward-model parameters* theta: the target records their names and shapes, and
substitutes their current (constrained) values into every call of the model, so the samplers
see p_t(x, n | y, theta) with theta fixed; :mod:`bayesnoise.parameters` updates theta.

A prior whose score also reads the observation (``prior.needs_observation``, e.g. a
:class:`~bayesnoise.priors.ConditionalScoreNetPrior`) gets it the same way: the driver binds each
trajectory's y with :meth:`PosteriorTarget.with_observation`, and every call of the model then
runs under an effect handler that replaces such a site's prior by ``prior.with_observation(y)``.
Models without such priors are untouched.

A :class:`PosteriorTarget` is an Equinox module: when the model is one too (what
:func:`bayesnoise.joint_model` returns), its networks, operators and Gaussian moments are array
leaves, so the driver's ``eqx.filter_jit`` takes them as inputs (never compiled-in constants)
and two models of equal shapes share one compilation.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro.handlers as handlers
from numpyro.distributions.transforms import biject_to
from numpyro.infer.util import log_density, log_likelihood
from numpyro.primitives import Messenger

from bayesnoise.priors.distribution import ScorePriorDistribution
from bayesnoise.sde import AbstractSDE

__all__ = ["PosteriorTarget", "posterior_target", "OBSERVED_SITE"]

OBSERVED_SITE = "y"


class PosteriorTarget(eqx.Module):
    """The diffused posterior p_t(x, n | y) of a model, as pure functions of a position pytree.

    A *position* is a dict ``{"x": ..., "n": ...}`` (just ``{"x": ...}`` for single-prior
    models) of unbatched signals. ``parameter_values`` holds the forward-model parameters'
    constrained values, substituted into the model (empty for models without parameters).
    """

    model: Callable
    sde: AbstractSDE
    latent_names: tuple[str, ...] = eqx.field(static=True)
    latent_shape_items: tuple[tuple[str, tuple[int, ...]], ...] = eqx.field(static=True)
    observation_shape: tuple[int, ...] = eqx.field(static=True)
    parameter_shape_items: tuple[tuple[str, tuple[int, ...]], ...] = eqx.field(
        static=True, default=()
    )
    parameter_values: dict = eqx.field(default_factory=dict)
    observation_sites: tuple[str, ...] = eqx.field(static=True, default=())
    bound_observation: jax.Array | None = None

    @property
    def latent_shapes(self) -> dict[str, tuple[int, ...]]:
        return dict(self.latent_shape_items)

    @property
    def parameter_names(self) -> tuple[str, ...]:
        """The forward-model parameters: latent sites without a score prior."""
        return tuple(name for name, _ in self.parameter_shape_items)

    @property
    def parameter_shapes(self) -> dict[str, tuple[int, ...]]:
        return dict(self.parameter_shape_items)

    @property
    def parameter_transforms(self) -> dict:
        """``biject_to(support)`` of each parameter: unconstrained -> constrained values."""
        sites = _sample_sites(self.model)
        return {name: biject_to(sites[name]["fn"].support) for name in self.parameter_names}

    @property
    def priors(self) -> dict:
        """The score prior of each latent site (traced off the model)."""
        sites = _sample_sites(self.model)
        return {name: sites[name]["fn"].prior for name in self.latent_names}

    @property
    def conditioned_model(self) -> Callable:
        """The model with the parameters fixed at ``parameter_values`` and, when bound, the
        observation given to the priors that need it."""
        model = self.model
        if self.bound_observation is not None:
            model = _bind_observation(model, self.observation_sites, self.bound_observation)
        if not self.parameter_values:
            return model
        return handlers.substitute(model, data=self.parameter_values)

    def with_observation(self, observation) -> PosteriorTarget:
        """The same target with ``observation`` (one unbatched y) bound into the priors whose
        score reads it (``prior.needs_observation``); unchanged when there are none."""
        if not self.observation_sites:
            return self
        return dataclasses.replace(self, bound_observation=observation)

    def with_parameters(self, parameter_values: dict) -> PosteriorTarget:
        """The same target with the parameters fixed at ``parameter_values`` (constrained)."""
        if not self.parameter_names:
            return self
        return dataclasses.replace(self, parameter_values=dict(parameter_values))

    def _kwargs(self, observation, diffusion_time):
        return {"observation": observation, "diffusion_time": diffusion_time}

    def prior_log_density(self, position, diffusion_time):
        """sum over latent sites of log p_t(site); its gradient is the prior score."""
        hidden = [OBSERVED_SITE, *self.parameter_names]
        prior_only = handlers.block(self.conditioned_model, hide=hidden)
        placeholder = jnp.zeros(self.observation_shape)
        kwargs = self._kwargs(placeholder, diffusion_time)
        return log_density(prior_only, (), kwargs, position)[0]

    def prior_score(self, position, diffusion_time):
        """grad log p_t(position): each site's prior score at diffusion time t."""
        return jax.grad(self.prior_log_density)(position, diffusion_time)

    def log_likelihood(self, position, observation):
        """log p(observation | position), summed over measurements."""
        per_site = log_likelihood(
            self.conditioned_model, position, batch_ndims=0, **self._kwargs(observation, 0.0)
        )
        return jnp.sum(per_site[OBSERVED_SITE])

    def observation_distribution(self, position, observation):
        """The distribution of y given the position (mean A(x) + B(n), variance)."""
        kwargs = self._kwargs(observation, 0.0)
        trace = log_density(self.conditioned_model, (), kwargs, position)[1]
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


class _bind_observation(Messenger):
    """Replace the prior of each site in ``sites`` by ``prior.with_observation(observation)``."""

    def __init__(self, fn, sites, observation):
        self.sites, self.observation = sites, observation
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] == "sample" and msg["name"] in self.sites:
            prior_distribution = msg["fn"]
            msg["fn"] = ScorePriorDistribution(
                prior_distribution.prior.with_observation(self.observation),
                prior_distribution.diffusion_time,
            )


def _sample_sites(model):
    """Trace the model once to learn its sites and shapes: zeros for the signals and y, a
    prior draw (seed 0) for forward-model parameters, conditioned values kept."""

    def zeros(site):
        if isinstance(site["fn"], ScorePriorDistribution) or site["name"] == OBSERVED_SITE:
            return jnp.zeros(site["fn"].shape())
        return None

    substituted = handlers.substitute(handlers.seed(model, 0), substitute_fn=zeros)
    trace = handlers.trace(substituted).get_trace(observation=None, diffusion_time=1.0)
    return {name: site for name, site in trace.items() if site["type"] == "sample"}


def _default_parameter_value(site):
    """The prior mean where finite, else the constrained image of 0 (before any update)."""
    distribution = site["fn"]
    try:
        mean = jnp.broadcast_to(distribution.mean, distribution.shape())
    except NotImplementedError:
        mean = jnp.full(distribution.shape(), jnp.nan)
    fallback = biject_to(distribution.support)(jnp.zeros(distribution.shape()))
    return jnp.where(jnp.isfinite(mean), mean, fallback).astype(jnp.float32)


def posterior_target(model: Callable) -> PosteriorTarget:
    """The target of a NumPyro model whose observed site is named ``"y"``.

    Latent sites with a :class:`ScorePriorDistribution` are the diffused signals (x, n); every
    other latent site is a forward-model parameter, fixed at its prior mean until
    :meth:`PosteriorTarget.with_parameters` sets it. Sites conditioned on (observed) are
    constants.
    """
    sites = _sample_sites(model)
    if OBSERVED_SITE not in sites:
        raise ValueError(
            f"model must have an observed sample site named {OBSERVED_SITE!r}. "
            f"Got sites {sorted(sites)}."
        )
    unobserved = {
        name: site
        for name, site in sites.items()
        if name != OBSERVED_SITE and not site["is_observed"]
    }
    latent = {
        name: site
        for name, site in unobserved.items()
        if isinstance(site["fn"], ScorePriorDistribution)
    }
    if not latent:
        raise ValueError(
            "model must have at least one latent site with a ScorePriorDistribution. "
            f"Got sites {sorted(sites)}."
        )
    parameters = {name: site for name, site in unobserved.items() if name not in latent}
    for name, site in parameters.items():
        if site["fn"].support.is_discrete:
            raise ValueError(
                f"forward-model parameter {name!r} must have a continuous support. "
                f"Got {type(site['fn']).__name__} with support {site['fn'].support}."
            )
    priors = {name: site["fn"].prior for name, site in latent.items()}
    return PosteriorTarget(
        model=model,
        sde=next(iter(priors.values())).sde,
        latent_names=tuple(latent),
        latent_shape_items=tuple((name, tuple(prior.shape)) for name, prior in priors.items()),
        observation_shape=tuple(sites[OBSERVED_SITE]["fn"].shape()),
        parameter_shape_items=tuple(
            (name, tuple(site["fn"].shape())) for name, site in parameters.items()
        ),
        parameter_values={
            name: _default_parameter_value(site) for name, site in parameters.items()
        },
        observation_sites=tuple(name for name, prior in priors.items() if prior.needs_observation),
    )
