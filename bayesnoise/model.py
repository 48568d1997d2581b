"""Build the NumPyro model  x ~ prior_x;  n ~ prior_n;  y ~ likelihood(A(x) + B(n)).

An unknown mixing weight (y = (1 - alpha) A(x) + alpha B(n), site ``"alpha"``) or measurement
std (site ``"sigma"``) is declared by passing a NumPyro distribution as its prior; such sites
are forward-model parameters, sampled jointly with (x, n) (:mod:`bayesnoise.parameters`).

A model is a plain NumPyro function ``model(observation=None, diffusion_time=0.0)``. Latent
sites carry their priors as :class:`ScorePriorDistribution`, whose log-density gradient is the
prior's score at ``diffusion_time``; the observed site is named ``"y"``. With analytic priors
the same function runs under NumPyro's NUTS at ``diffusion_time=0``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as dist
from numpyro.distributions.transforms import biject_to

from bayesnoise.priors.base import AbstractScorePrior
from bayesnoise.priors.distribution import ScorePriorDistribution

__all__ = ["joint_model", "JointModel", "LIKELIHOODS", "MIXING_SITE", "MEASUREMENT_STD_SITE"]

LIKELIHOODS = ("gaussian", "poisson", "poisson_gaussian")
MIXING_SITE = "alpha"
MEASUREMENT_STD_SITE = "sigma"


def _check_scalar_prior(name: str, prior: dist.Distribution, support_name: str, inside):
    """A scalar NumPyro distribution whose support lies in ``inside`` (checked on 0.5, 1.0)."""
    if prior.batch_shape or prior.event_shape:
        raise ValueError(
            f"{name} must be a scalar distribution. Got batch_shape={prior.batch_shape}, "
            f"event_shape={prior.event_shape}."
        )
    support = prior.support
    if support.is_discrete or not all(
        bool(inside(value)) for value in biject_to(support)(jnp.array([-3.0, 0.0, 3.0]))
    ):
        raise ValueError(
            f"{name} must be a continuous distribution on {support_name}. "
            f"Got {type(prior).__name__} with support {support}."
        )
    return prior


def _check_mixing(mixing, noise_prior):
    if mixing is None:
        return None
    if noise_prior is None:
        raise ValueError("mixing needs a noise_prior (y = (1 - alpha) A(x) + alpha B(n)).")
    if isinstance(mixing, dist.Distribution):
        return _check_scalar_prior("mixing", mixing, "[0, 1]", lambda a: (a >= 0) & (a <= 1))
    if isinstance(mixing, bool) or not isinstance(mixing, int | float) or not 0 <= mixing <= 1:
        raise ValueError(
            f"mixing must be a number in [0, 1] or a NumPyro distribution. Got {mixing!r}."
        )
    return jnp.asarray(mixing, dtype=jnp.float32)


def _check_operator(name: str, operator: Callable, prior: AbstractScorePrior) -> tuple:
    input_shape = getattr(operator, "input_shape", None)
    if input_shape is not None and tuple(input_shape) != tuple(prior.shape):
        raise ValueError(
            f"{name} must take signals of the prior's shape {tuple(prior.shape)}. "
            f"Got an operator with input_shape={tuple(input_shape)}."
        )
    try:
        output = jax.eval_shape(operator, jax.ShapeDtypeStruct(prior.shape, jnp.float32))
    except Exception as error:
        raise ValueError(
            f"{name} could not be applied to a signal of the prior's shape {prior.shape}: {error}"
        ) from error
    return tuple(output.shape)


def _check_measurement_std(measurement_std) -> float | jax.Array | dist.Distribution:
    """``measurement_std`` as a float (a number) or a float32 array, every element finite > 0,
    or a scalar distribution on (0, inf) (an unknown std)."""
    if isinstance(measurement_std, dist.Distribution):
        return _check_scalar_prior(
            "measurement_std", measurement_std, "(0, inf)", lambda value: value > 0
        )
    if isinstance(measurement_std, bool) or not isinstance(
        measurement_std, int | float | np.generic | np.ndarray | jax.Array
    ):
        raise TypeError(
            "measurement_std must be a number or an array of numbers. "
            f"Got {type(measurement_std).__name__}: {measurement_std!r}."
        )
    values = np.asarray(measurement_std)
    if not (np.issubdtype(values.dtype, np.integer) or np.issubdtype(values.dtype, np.floating)):
        raise TypeError(f"measurement_std must hold real numbers. Got dtype {values.dtype}.")
    bad = ~(np.isfinite(values) & (values > 0))
    if values.ndim == 0:
        if bad:
            raise ValueError(f"measurement_std must be finite and > 0. Got {measurement_std!r}.")
        return float(values)
    if values.size == 0 or bad.any():
        first = f" (first: {values[bad].flat[0]})" if bad.any() else ""
        raise ValueError(
            "measurement_std must be finite and > 0 in every element. "
            f"Got {int(bad.sum())} of {values.size} elements that are not{first}."
        )
    return jnp.asarray(values, dtype=jnp.float32)


def _check_positive_number(name: str, value, likelihood: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float | np.integer | np.floating)
        or not (math.isfinite(value) and value > 0)
    ):
        raise ValueError(
            f"{name} must be a positive finite number for a {likelihood} likelihood. "
            f"Got {name}={value!r}."
        )
    return float(value)


def _check_likelihood(likelihood, measurement_std, photon_rate, gain, read_std) -> dict:
    """The likelihood's own arguments, validated: ``photon_rate`` (poisson), ``gain`` and
    ``read_std`` (poisson_gaussian); given for another likelihood, they are an error."""
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}. Got likelihood={likelihood!r}.")
    if likelihood != "gaussian" and isinstance(measurement_std, dist.Distribution):
        raise ValueError(f"measurement_std must be a number for a {likelihood} likelihood.")
    if likelihood == "poisson" and not (
        isinstance(photon_rate, int | float)
        and not isinstance(photon_rate, bool)
        and math.isfinite(photon_rate)
        and photon_rate > 0
    ):
        raise ValueError(
            "photon_rate must be a positive number, and finite, for a poisson likelihood. "
            f"Got {photon_rate!r}."
        )
    owners = {"photon_rate": "poisson", "gain": "poisson_gaussian", "read_std": "poisson_gaussian"}
    given = {"photon_rate": photon_rate, "gain": gain, "read_std": read_std}
    for name, value in given.items():
        if value is not None and owners[name] != likelihood:
            raise ValueError(
                f"{name} is an argument of likelihood={owners[name]!r}. "
                f"Got {name}={value!r} with likelihood={likelihood!r}."
            )
    if likelihood == "poisson_gaussian":
        gain = _check_positive_number("gain", gain, likelihood)
        read_std = _check_positive_number("read_std", read_std, likelihood)
    return {"photon_rate": photon_rate, "gain": gain, "read_std": read_std}


def joint_model(
    signal_prior: AbstractScorePrior,
    noise_prior: AbstractScorePrior | None = None,
    *,
    signal_operator: Callable | None = None,
    noise_operator: Callable | None = None,
    measurement_std: float | dist.Distribution = 0.01,
    likelihood: str = "gaussian",
    photon_rate: float | None = None,
    gain: float | None = None,
    read_std: float | None = None,
    mixing: float | dist.Distribution | None = None,
) -> Callable:
    """The NumPyro model of y = A(x) + B(n) + noise.

    Parameters
    ----------
    signal_prior, noise_prior : score priors of x and n. Without ``noise_prior`` the model is the
        single-prior (Gaussian-noise) problem y = A(x) + N(0, measurement_std^2).
    signal_operator, noise_operator : A and B (callables on one signal; default identity).
    measurement_std : sigma of the Gaussian likelihood: a number, or an array broadcastable to
        the observation shape; finite and > 0 (every element). A scalar NumPyro distribution
        on (0, inf), e.g. ``dist.HalfNormal(0.05)``, makes it unknown: site ``"sigma"``.
    likelihood : ``"gaussian"``, ``"poisson"`` or ``"poisson_gaussian"``. The Poisson model is
        DPS's shot-noise approximation (DPS eq. 19): y ~ Normal(A(x) + B(n), sqrt(y /
        photon_rate)), i.e. the residual weighted by 1 / y, with counts y * photon_rate.
        The Poisson–Gaussian model (microscopy, low light) is shot noise with a gain plus
        Gaussian read noise, y = gain Poisson(mu / gain) + N(0, read_std^2) with
        mu = A(x) + B(n), replaced by its differentiable Gaussian approximation of the same
        mean and variance, y ~ Normal(mu, sqrt(gain max(mu, 0) + read_std^2)): the variance
        depends on the signal (clipped at mu = 0; the mean is not clipped, so the gradient
        still pulls a negative mu up). Guidances that hold the likelihood's variance fixed in a
        solve (pigdm, proximal) evaluate it at Tweedie's estimate, a plug-in approximation;
        dps and data_consistency differentiate through it.
    photon_rate : counts per unit intensity (poisson only).
    gain, read_std : the intensity per detected photon (y and mu in the same units) and the
        std of the read noise, both finite and > 0 (poisson_gaussian only; ``measurement_std``
        is not used then).
    mixing : alpha in y = (1 - alpha) A(x) + alpha B(n): a number in [0, 1], or a scalar
        NumPyro distribution on [0, 1], e.g. ``dist.Beta(2, 2)``, for an unknown one (site
        ``"alpha"``). None (default): y = A(x) + B(n).

    Returns
    -------
    A :class:`JointModel`: call it as the NumPyro model
    ``model(observation=None, diffusion_time=0.0)``.
    """
    likelihood_arguments = _check_likelihood(
        likelihood, measurement_std, photon_rate, gain, read_std
    )
    measurement_std = _check_measurement_std(measurement_std)
    mixing = _check_mixing(mixing, noise_prior)
    signal_operator = signal_operator or _identity
    observation_shape = _check_operator("signal_operator", signal_operator, signal_prior)
    if noise_prior is not None:
        noise_operator = noise_operator or _identity
        noise_output_shape = _check_operator("noise_operator", noise_operator, noise_prior)
        if noise_output_shape != observation_shape:
            raise ValueError(
                "signal_operator and noise_operator must map to the same observation shape. "
                f"Got {observation_shape} and {noise_output_shape}."
            )
        if not eqx.tree_equal(signal_prior.sde, noise_prior.sde):
            raise ValueError(
                "signal_prior and noise_prior must be diffused by the same SDE. "
                f"Got {signal_prior.sde} and {noise_prior.sde}."
            )
    return JointModel(
        signal_prior=signal_prior,
        noise_prior=noise_prior,
        signal_operator=signal_operator,
        noise_operator=noise_operator,
        measurement_std=measurement_std,
        likelihood=likelihood,
        observation_shape=observation_shape,
        mixing=mixing,
        **likelihood_arguments,
    )


def _poisson_gaussian_std(mean, gain, read_std):
    """sqrt(gain max(mean, 0) + read_std^2): the std of gain Poisson(mean / gain) +
    N(0, read_std^2), whose variance is gain^2 (mean / gain) + read_std^2."""
    return jnp.sqrt(gain * jnp.maximum(mean, 0.0) + read_std**2)


def _identity(signal):
    return signal


def _value_or_site(name, value_or_prior):
    """A fixed value as it is; a distribution becomes the latent site ``name``."""
    if isinstance(value_or_prior, dist.Distribution):
        return numpyro.sample(name, value_or_prior)
    return value_or_prior


class JointModel(eqx.Module):
    """The NumPyro model of y = A(x) + B(n) + noise, as a callable Equinox module.

    Calling it runs the plain NumPyro model ``model(observation=None, diffusion_time=0.0)``.
    Being a module, its priors' networks and operators' arrays are pytree leaves: a jitted
    sampler takes them as inputs, so models of equal shapes share one compilation.
    """

    signal_prior: AbstractScorePrior
    noise_prior: AbstractScorePrior | None
    signal_operator: Callable
    noise_operator: Callable | None
    measurement_std: Any
    likelihood: str = eqx.field(static=True)
    photon_rate: float | None
    observation_shape: tuple[int, ...] = eqx.field(static=True)
    mixing: Any = None
    gain: float | None = None
    read_std: float | None = None

    @property
    def num_measurements(self) -> int:
        return math.prod(self.observation_shape)

    def __call__(self, observation=None, diffusion_time=0.0):
        x = numpyro.sample("x", ScorePriorDistribution(self.signal_prior, diffusion_time))
        predicted = self.signal_operator(x)
        if self.noise_prior is not None:
            n = numpyro.sample("n", ScorePriorDistribution(self.noise_prior, diffusion_time))
            if self.mixing is None:
                predicted = predicted + self.noise_operator(n)
            else:
                alpha = _value_or_site(MIXING_SITE, self.mixing)
                predicted = (1.0 - alpha) * predicted + alpha * self.noise_operator(n)
        if self.likelihood == "gaussian":
            scale = _value_or_site(MEASUREMENT_STD_SITE, self.measurement_std)
        elif self.likelihood == "poisson_gaussian":
            scale = _poisson_gaussian_std(predicted, self.gain, self.read_std)
        else:
            counts = predicted if observation is None else observation
            scale = jnp.sqrt(jnp.maximum(counts, 1.0 / self.photon_rate) / self.photon_rate)
        observation_dist = dist.Normal(predicted, scale).to_event(len(self.observation_shape))
        numpyro.sample("y", observation_dist, obs=observation)
