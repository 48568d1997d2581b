"""Deblurring through stripe noise with an unknown blur width: y = K_w * x + n_stripes + eps.

``models/deblur_stripes.py`` (shipped Fashion-MNIST signal prior, analytic stripe-noise prior,
Gaussian point-spread function, periodic boundaries) with the PSF's standard deviation w
unknown: ``w ~ LogNormal(0, 0.25)`` (median 1 pixel, 90% of its mass in 0.66-1.51), site
``"blur_width"``, sampled jointly with (x, n) (:mod:`bayesnoise.parameters`). The model is a
plain NumPyro function, the way a user writes one for an operator that depends on a parameter.
``simulate(seed)`` blurs shipped test image ``seed`` with w ~ U(0.7, 1.4) drawn from ``seed``.
"""

from pathlib import Path

import jax
import numpy as np
import numpyro
import numpyro.distributions as dist

import bayesnoise as bn
from bayesnoise.data import load_testset
from bayesnoise.model_file import load_model_file

_known_width = load_model_file(Path(__file__).with_name("deblur_stripes.py"))
SHAPE = _known_width.SHAPE
KERNEL_SIZE = 7  # 3 pixels either side of the centre: 3 widths at w = 1, 2.1 at w = 1.4
MEASUREMENT_STD = 0.01
WIDTH_PRIOR = dist.LogNormal(0.0, 0.25)
PARAMETER = "blur_width"
signal_prior = _known_width.signal_prior
noise_prior = _known_width.noise_prior


def blur(width):
    """The forward operator K_w: a 7 x 7 Gaussian PSF of std ``width`` pixels, by FFT."""
    return bn.operators.FFTBlur(SHAPE, bn.operators.gaussian_kernel(KERNEL_SIZE, width))


def model(observation=None, diffusion_time=0.0):
    width = numpyro.sample(PARAMETER, WIDTH_PRIOR)
    x = numpyro.sample("x", bn.ScorePriorDistribution(signal_prior, diffusion_time))
    n = numpyro.sample("n", bn.ScorePriorDistribution(noise_prior, diffusion_time))
    predicted = blur(width)(x) + n
    numpyro.sample("y", dist.Normal(predicted, MEASUREMENT_STD).to_event(3), obs=observation)


def fixed_model(width: float):
    """The same model with the blur width known (a number): the reference runs."""
    return bn.joint_model(
        signal_prior, noise_prior, signal_operator=blur(width), measurement_std=MEASUREMENT_STD
    )


# The sampler of models/deblur_stripes.py (DDIM steps with joint DPS from t0 = 0.4) with 50
# steps instead of 25: the width's updates ride on the diffusion steps.
defaults = {
    "sampler": "ddim_dps",
    "num_steps": 50,
    "num_chains": 2,
    "num_draws": 2,
    "start_time": 0.4,
    "sampler_options": {"guidance_weight": 2.0, "eta": 1.0},
}


def simulate(seed: int = 0):
    """Shipped test image ``seed`` (0-99) blurred with w ~ U(0.7, 1.4) and fresh stripes."""
    width = np.float32(np.random.default_rng(seed).uniform(0.7, 1.4))
    x = load_testset()["fashion"][seed % 100]
    n = np.asarray(
        bn.sample_stripe_noise(
            jax.random.key(seed),
            SHAPE,
            _known_width.COLUMN_STD,
            _known_width.PIXEL_STD,
            _known_width.ROW_GAIN,
        )
    )
    y = np.asarray(blur(width)(x)) + n
    return y.astype(np.float32), {"x": x, "n": n, PARAMETER: width}
