"""What the paper compares against, behind one call shape.

Every baseline is ``reconstruct(observation, problem, **hyper) -> x_hat``: ``observation`` a
batch ``(num_images, *observation_shape)``, ``problem`` a :class:`LinearProblem` (y = A x + B n
with n's mean and std), ``x_hat`` a float32 batch ``(num_images, *signal_shape)`` in ``[0, 1]``.

- :func:`bm3d_denoise`, :func:`nl_means_denoise`: denoisers, for A and B the identity or a
  scale (the mixing is undone first, :func:`denoising_input`);
- :func:`wavelet_lasso` (and the reference :func:`minimum_norm`): any linear A;
- :func:`gaussian_noise_diffusion`: the learned signal prior with Gaussian noise;
- :func:`csgm`: the GAN baseline (CSGM, the method paper's eq. 9) with the shipped Fashion-MNIST
  DCGAN (:func:`load_generator`); any linear A on 28 x 28 x 1 signals;
- :func:`flow_map`: Whang et al.'s MAP with two normalizing flows (eq. 8; :func:`load_flow`), any
  linear A on images, B the identity or a scale; ``noise_flow="gaussian"`` for Gaussian noise
  of known moments (sinusoidal noise, compressed sensing).
"""

from bayesnoise.baselines.bm3d_denoise import bm3d_denoise
from bayesnoise.baselines.flow import GaussianNoiseDensity, ImageFlow, flow_map, load_flow
from bayesnoise.baselines.gan import csgm, load_generator
from bayesnoise.baselines.gaussian_diffusion import gaussian_noise_diffusion
from bayesnoise.baselines.nl_means import nl_means_denoise
from bayesnoise.baselines.problem import LinearProblem, check_observation, denoising_input
from bayesnoise.baselines.wavelet_lasso import (
    dense_matrix,
    minimum_norm,
    wavelet_lasso,
    wavelet_synthesis_matrix,
)

__all__ = [
    "LinearProblem",
    "check_observation",
    "denoising_input",
    "bm3d_denoise",
    "nl_means_denoise",
    "wavelet_lasso",
    "minimum_norm",
    "wavelet_synthesis_matrix",
    "dense_matrix",
    "gaussian_noise_diffusion",
    "csgm",
    "load_generator",
    "flow_map",
    "load_flow",
    "ImageFlow",
    "GaussianNoiseDensity",
]
