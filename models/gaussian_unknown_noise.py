"""The Gaussian toy of ``models/gaussian_toy.py`` with an unknown measurement std:

    x ~ N(0.5, Sigma_x); n ~ sinusoidal noise; sigma ~ HalfNormal(0.05); y = x + n + N(0, sigma^2)

sigma is a forward-model parameter (site ``"sigma"``) sampled jointly with (x, n).
``simulate(seed)`` draws sigma from U(0.01, 0.05) as well as x and n.
"""

import jax
import numpy as np
import numpyro.distributions as dist

import bayesnoise as bn

SHAPE = (16, 16, 1)
sde = bn.VPSDE(beta_min=0.1, beta_max=20.0)


def squared_exponential_covariance(shape, std, length):
    rows, cols = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    points = np.stack([rows.ravel(), cols.ravel()], axis=1)
    distance2 = np.sum((points[:, None] - points[None]) ** 2, axis=-1)
    return std**2 * np.exp(-0.5 * distance2 / length**2) + 1e-4 * np.eye(len(points))


signal_prior = bn.GaussianPrior(
    SHAPE, sde, mean=0.5, covariance=squared_exponential_covariance(SHAPE, 0.2, 2.0)
)
noise_prior = bn.sinusoidal_noise_prior(SHAPE, average_std=0.2, sde=sde)

model = bn.joint_model(signal_prior, noise_prior, measurement_std=dist.HalfNormal(0.05))

defaults = {"sampler": "pigdm", "num_steps": 300, "num_chains": 4, "num_draws": 8}


def simulate(seed: int = 0):
    """An observation drawn from the model with sigma ~ U(0.01, 0.05), and its truth."""
    key_x, key_n, key_y = jax.random.split(jax.random.key(seed), 3)
    sigma = np.float32(np.random.default_rng(seed).uniform(0.01, 0.05))
    x = signal_prior.sample(key_x, 0.0)
    n = noise_prior.sample(key_n, 0.0)
    y = x + n + sigma * jax.random.normal(key_y, SHAPE)
    return np.asarray(y), {"x": np.asarray(x), "n": np.asarray(n), "sigma": sigma}
