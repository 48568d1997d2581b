"""Exact references for linear-Gaussian models: the closed-form posterior and NUTS.

With x ~ N(m_x, S_x), n ~ N(m_n, S_n), y = A x + B n + N(0, Sigma_y) and S = A S_x A^T +
B S_n B^T + Sigma_y:  E[x|y] = m_x + S_x A^T S^-1 (y - A m_x - B m_n),
Cov[x|y] = S_x - S_x A^T S^-1 A S_x (and the same for n with B, S_n).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.infer import MCMC, NUTS

from bayesnoise.priors.gaussian import GaussianPrior
from bayesnoise.target import posterior_target

__all__ = ["gaussian_posterior", "nuts_posterior"]


def gaussian_posterior(model, observation) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{site: (posterior mean, posterior covariance)} over flattened signals, in float64."""
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
    return result


def nuts_posterior(model, observation, *, num_samples=2000, num_warmup=1000, seed=0):
    """NUTS draws {site: (num_samples, *shape)} of the same NumPyro model at diffusion time 0."""
    mcmc = MCMC(NUTS(model), num_warmup=num_warmup, num_samples=num_samples, progress_bar=False)
    # NumPyro's NUTS mixes int32 and float32 internally: allow standard promotion for it.
    with jax.numpy_dtype_promotion("standard"):
        mcmc.run(jax.random.key(seed), observation=jnp.asarray(observation), diffusion_time=0.0)
    return {name: np.asarray(value) for name, value in mcmc.get_samples().items()}
