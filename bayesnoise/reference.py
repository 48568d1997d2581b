"""Exact references for linear-Gaussian models: the closed-form posterior and NUTS.

With x ~ N(m_x, S_x), n ~ N(m_n, S_n), y = A x + B n + N(0, Sigma_y) and S = A S_x A^T +
B S_n B^T + Sigma_y:  E[x|y] = m_x + S_x A^T S^-1 (y - A m_x - B m_n),
Cov[x|y] = S_x - S_x A^T S^-1 A S_x (and the same for n with B, S_n), and the evidence
p(y) = N(y; A m_x + B m_n, S). With a scalar forward-model parameter theta, each of these holds
given theta, so p(theta | y) is p(theta) p(y | theta) normalised by quadrature over theta.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.handlers as handlers
from numpyro.infer import MCMC, NUTS

from bayesnoise.priors.gaussian import GaussianPrior
from bayesnoise.target import _sample_sites, posterior_target

__all__ = ["gaussian_posterior", "nuts_posterior", "parameter_posterior_by_quadrature"]


def gaussian_posterior(model, observation) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{site: (posterior mean, posterior covariance)} over flattened signals, in float64."""
    return _gaussian_posterior_and_evidence(model, observation)[0]


def _gaussian_posterior_and_evidence(model, observation):
    target = posterior_target(model)
    for name, prior in target.priors.items():
        if not isinstance(prior, GaussianPrior):
            raise TypeError(f"site {name!r} must have a GaussianPrior. Got {type(prior).__name__}.")
    zeros = {name: jnp.zeros(shape) for name, shape in target.latent_shapes.items()}
    flat_y = np.asarray(observation, np.float64).ravel()
    jacobians = jax.jacfwd(target.predicted_observation)(zeros)
    offset = np.asarray(target.predicted_observation(zeros), np.float64).ravel()
    operators, means, covariances = {}, {}, {}
    for name, prior in target.priors.items():
        operators[name] = np.asarray(jacobians[name], np.float64).reshape(flat_y.size, -1)
        means[name] = np.asarray(prior.mean, np.float64).ravel()
        covariances[name] = np.asarray(prior.covariance_matrix(), np.float64)
    noise_variance = np.asarray(
        target.observation_distribution(zeros, jnp.asarray(observation)).variance, np.float64
    ).ravel()
    predicted = offset + sum(operators[k] @ means[k] for k in operators)
    total = np.diag(noise_variance) + sum(
        operators[k] @ covariances[k] @ operators[k].T for k in operators
    )
    innovation = np.linalg.solve(total, flat_y - predicted)
    result = {}
    for name in operators:
        gain = covariances[name] @ operators[name].T
        mean = means[name] + gain @ innovation
        covariance = covariances[name] - gain @ np.linalg.solve(total, gain.T)
        result[name] = (mean, covariance)
    log_evidence = -0.5 * (
        flat_y.size * np.log(2 * np.pi)
        + np.linalg.slogdet(total)[1]
        + (flat_y - predicted) @ innovation
    )
    return result, log_evidence


def parameter_posterior_by_quadrature(model, observation, name, grid):
    """p(theta | y) of a scalar forward-model parameter on ``grid``, and the latents' moments.

    Parameters
    ----------
    model : a linear-Gaussian model (Gaussian priors, linear operators) with the site ``name``.
    observation : y.
    name : the parameter's site name.
    grid : equally spaced values of theta covering its posterior.

    Returns
    -------
    ``(probabilities, moments)``: the posterior probability of each grid cell, and
    ``{site: (mean, variance)}`` of each latent under the mixture over theta, with
    ``moments[name]`` the (mean, variance) of theta itself.
    """
    grid = np.asarray(grid, np.float64)
    prior = _sample_sites(model)[name]["fn"]
    log_weights, conditionals = [], []
    for value in grid:
        conditioned = handlers.condition(model, data={name: jnp.asarray(value, jnp.float32)})
        moments, log_evidence = _gaussian_posterior_and_evidence(conditioned, observation)
        log_prior = float(prior.log_prob(jnp.asarray(value, jnp.float32)))
        log_weights.append(log_prior + log_evidence)
        conditionals.append(moments)
    log_weights = np.asarray(log_weights)
    probabilities = np.exp(log_weights - log_weights.max())
    probabilities /= probabilities.sum()
    result = {}
    for site in conditionals[0]:
        means = np.stack([moments[site][0] for moments in conditionals])
        variances = np.stack([np.diag(moments[site][1]) for moments in conditionals])
        mean = probabilities @ means
        result[site] = (mean, probabilities @ (variances + means**2) - mean**2)
    theta_mean = probabilities @ grid
    result[name] = (theta_mean, probabilities @ grid**2 - theta_mean**2)
    return probabilities, result


def nuts_posterior(model, observation, *, num_samples=2000, num_warmup=1000, seed=0):
    """NUTS draws {site: (num_samples, *shape)} of the same NumPyro model at diffusion time 0."""
    mcmc = MCMC(NUTS(model), num_warmup=num_warmup, num_samples=num_samples, progress_bar=False)
    # NumPyro's NUTS mixes int32 and float32 internally: allow standard promotion for it.
    with jax.numpy_dtype_promotion("standard"):
        mcmc.run(jax.random.key(seed), observation=jnp.asarray(observation), diffusion_time=0.0)
    return {name: np.asarray(value) for name, value in mcmc.get_samples().items()}
