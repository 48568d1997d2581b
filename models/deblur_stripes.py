"""Deblurring through stripe noise: y = K * x + n_stripes, Fashion-MNIST signals.

A push-broom or line-scan camera out of focus: the image is blurred by a Gaussian point-spread
function (std 1 pixel, 5 x 5, periodic boundaries: ``bn.operators.FFTBlur``) and then picks up
the sensor's column offsets (``models/stripe_denoise.py``'s stripes: o_j ~ N(0, 0.15^2), row
gain 1 + 0.25 cos(2 pi i / 28), white noise 0.02). Analytic stripe prior (exact score), shipped
Fashion-MNIST signal prior.

Measured (analyses/real_noise.py, README "Model files for real noise"): PSNR 22.3 dB on
the 100 test images (input 14.5 dB), 22.0 dB on 100 held-out ones; 18.6 dB with a white-noise
prior of the same per-pixel variance.
"""

import jax
import numpy as np

import bayesnoise as bn
from bayesnoise import assets
from bayesnoise.checkpoints import load_score_prior
from bayesnoise.data import load_testset

SHAPE = (28, 28, 1)
BLUR_STD = 1.0
COLUMN_STD = 0.15
PIXEL_STD = 0.02
ROW_GAIN = 1.0 + 0.25 * np.cos(2 * np.pi * np.arange(SHAPE[0]) / SHAPE[0])

signal_prior = load_score_prior(assets.path("fashion_unet.eqx"))
noise_prior = bn.stripe_noise_prior(SHAPE, COLUMN_STD, PIXEL_STD, signal_prior.sde, ROW_GAIN)
blur = bn.operators.FFTBlur(SHAPE, bn.operators.gaussian_kernel(5, BLUR_STD))

model = bn.joint_model(signal_prior, noise_prior, signal_operator=blur, measurement_std=0.01)

defaults = {
    "sampler": "ddim_dps",
    "num_steps": 25,
    "num_chains": 2,
    "num_draws": 2,
    "start_time": 0.4,
    "sampler_options": {"guidance_weight": 2.0, "eta": 1.0},
}


def observe(x, seed: int):
    """The observation of signal ``x``, blurred, with a fresh draw of stripe noise seeded by
    ``seed``: ``(y, n)``."""
    n = np.asarray(
        bn.sample_stripe_noise(jax.random.key(seed), SHAPE, COLUMN_STD, PIXEL_STD, ROW_GAIN)
    )
    return (np.asarray(blur(x)) + n).astype(np.float32), n


def simulate(seed: int = 0):
    """Shipped Fashion-MNIST test image ``seed`` (0-99), blurred, plus fresh stripe noise."""
    x = load_testset()["fashion"][seed % 100]
    y, n = observe(x, seed)
    return y, {"x": x, "n": n}
