"""A registry of linear-Gaussian problems whose posterior is known in closed form."""

import jax
import jax.numpy as jnp
import numpy as np

import bayesnoise as bn
from bayesnoise import operators

SDE = bn.VPSDE(beta_min=0.1, beta_max=20.0)


def _smooth_covariance(size, std, length):
    points = np.arange(size)
    distance2 = (points[:, None] - points[None]) ** 2
    return std**2 * np.exp(-0.5 * distance2 / length**2) + 1e-3 * np.eye(size)


def coloured_denoising():
    """y = x + n + eps with a smooth signal prior and AR(1)-coloured noise, d = 8."""
    signal = bn.GaussianPrior((8,), SDE, mean=0.5, covariance=_smooth_covariance(8, 0.3, 2.0))
    lags = np.abs(np.arange(8)[:, None] - np.arange(8)[None])
    noise = bn.GaussianPrior((8,), SDE, covariance=0.04 * 0.7**lags)
    return bn.joint_model(signal, noise, measurement_std=0.05)


def compressed_sensing():
    """y = A x + n + eps with a random Gaussian A of 6 x 12 (m < d) and diagonal noise."""
    signal = bn.GaussianPrior((12,), SDE, covariance=_smooth_covariance(12, 0.5, 1.5))
    matrix = operators.random_gaussian_matrix((12,), 6, key=jax.random.key(3))
    noise = bn.GaussianPrior((6,), SDE, variance=jnp.linspace(0.01, 0.09, 6))
    return bn.joint_model(signal, noise, signal_operator=matrix, measurement_std=0.05)


def masked_sinusoidal():
    """y = M x + n + eps: inpainting a 4 x 4 image under sinusoidal row noise."""
    signal = bn.GaussianPrior((4, 4, 1), SDE, mean=0.2, variance=0.25)
    mask = np.ones((4, 4, 1), dtype=np.float32)
    mask[1, 1:3] = 0.0
    noise = bn.sinusoidal_noise_prior((4, 4, 1), average_std=0.1, sde=SDE, period=4.0)
    return bn.joint_model(
        signal, noise, signal_operator=operators.Mask(jnp.asarray(mask)), measurement_std=0.05
    )


PROBLEMS = {
    "coloured_denoising": coloured_denoising(),
    "compressed_sensing": compressed_sensing(),
    "masked_sinusoidal": masked_sinusoidal(),
}


def observation_of(model, seed=0):
    """y drawn from the model's prior predictive at diffusion time 0."""
    target = bn.target.posterior_target(model)
    keys = jax.random.split(jax.random.key(seed), len(target.priors) + 1)
    position = {
        name: prior.sample(key, 0.0)
        for (name, prior), key in zip(target.priors.items(), keys[1:], strict=True)
    }
    predicted = target.predicted_observation(position)
    return np.asarray(predicted + 0.05 * jax.random.normal(keys[0], predicted.shape))
