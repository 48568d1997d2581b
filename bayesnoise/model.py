"""Build the NumPyro model  x ~ prior_x;  n ~ prior_n;  y ~ likelihood(A(x) + B(n)).

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

from bayesnoise.priors.base import AbstractScorePrior
from bayesnoise.priors.distribution import ScorePriorDistribution

__all__ = ["joint_model", "JointModel", "LIKELIHOODS"]

LIKELIHOODS = ("gaussian", "poisson")


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


def _check_measurement_std(measurement_std) -> float | jax.Array:
    """``measurement_std`` as a float (a number) or a float32 array, every element finite > 0."""
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


def joint_model(
    signal_prior: AbstractScorePrior,
    noise_prior: AbstractScorePrior | None = None,
    *,
    signal_operator: Callable | None = None,
    noise_operator: Callable | None = None,
    measurement_std: float = 0.01,
    likelihood: str = "gaussian",
    photon_rate: float | None = None,
) -> Callable:
    """The NumPyro model of y = A(x) + B(n) + noise.

    Parameters
    ----------
    signal_prior, noise_prior : score priors of x and n. Without ``noise_prior`` the model is the
        single-prior (Gaussian-noise) problem y = A(x) + N(0, measurement_std^2).
    signal_operator, noise_operator : A and B (callables on one signal; default identity).
    measurement_std : sigma of the Gaussian likelihood: a number, or an array broadcastable to
        the observation shape; finite and > 0 (every element).
    likelihood : ``"gaussian"`` or ``"poisson"``. The Poisson model is DPS's shot-noise
        approximation (DPS eq. 19): y ~ Normal(A(x) + B(n), sqrt(y / photon_rate)), i.e. the
        residual weighted by 1 / y, with counts y * photon_rate.
    photon_rate : counts per unit intensity (Poisson only).

    Returns
    -------
    A :class:`JointModel`: call it as the NumPyro model
    ``model(observation=None, diffusion_time=0.0)``.
    """
    if likelihood not in LIKELIHOODS:
        raise ValueError(f"likelihood must be one of {LIKELIHOODS}. Got likelihood={likelihood!r}.")
    measurement_std = _check_measurement_std(measurement_std)
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
        photon_rate=photon_rate,
        observation_shape=observation_shape,
    )


def _identity(signal):
    return signal


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

    @property
    def num_measurements(self) -> int:
        return math.prod(self.observation_shape)

    def __call__(self, observation=None, diffusion_time=0.0):
        x = numpyro.sample("x", ScorePriorDistribution(self.signal_prior, diffusion_time))
        predicted = self.signal_operator(x)
        if self.noise_prior is not None:
            n = numpyro.sample("n", ScorePriorDistribution(self.noise_prior, diffusion_time))
            predicted = predicted + self.noise_operator(n)
        if self.likelihood == "gaussian":
            scale = self.measurement_std
        else:
            counts = predicted if observation is None else observation
            scale = jnp.sqrt(jnp.maximum(counts, 1.0 / self.photon_rate) / self.photon_rate)
        observation_dist = dist.Normal(predicted, scale).to_event(len(self.observation_shape))
        numpyro.sample("y", observation_dist, obs=observation)
