"""A Gaussian toy with a closed-form posterior: smooth images under sinusoidal noise.

    x ~ N(0.5, Sigma_x)   16x16 images, squared-exponential covariance (std 0.2, length 2 px)
    n ~ sinusoidal noise   row std proportional to exp(sin(2 pi k / 16)), average std 0.2
    y = x + n + N(0, 0.01^2)

Both priors are analytic, so the exact posterior is known (bayesnoise.reference) and the same
model runs under NumPyro's NUTS. ``simulate`` makes the embedded example.
"""

import jax
import numpy as np

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

model = bn.joint_model(signal_prior, noise_prior, measurement_std=0.01)

defaults = {"sampler": "pigdm", "num_steps": 300, "num_chains": 4, "num_draws": 8}


def simulate(seed: int = 0):
    """An observation drawn from the model, and the signal and noise that made it."""
    key_x, key_n, key_y = jax.random.split(jax.random.key(seed), 3)
    x = signal_prior.sample(key_x, 0.0)
    n = noise_prior.sample(key_n, 0.0)
    y = x + n + 0.01 * jax.random.normal(key_y, SHAPE)
    return np.asarray(y), {"x": np.asarray(x), "n": np.asarray(n)}
