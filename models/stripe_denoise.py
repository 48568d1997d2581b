"""Removing stripe noise: y = x + n_stripes, Fashion-MNIST signals.

Stripes are the fixed-pattern noise of push-broom sensors and CMOS column amplifiers: every
column gets its own random offset, o_j ~ N(0, 0.15^2), scaled along the column by a smooth
row gain g_i = 1 + 0.25 cos(2 pi i / 28) (the sensor's uneven response), plus white noise of
std 0.02: n[i, j] = g_i o_j + e[i, j]. The noise prior is analytic (a low-rank Gaussian, one
pattern per column, exact diffused score; ``bn.stripe_noise_prior``), the signal prior the
shipped Fashion-MNIST network.

Measured (analyses/real_noise.py, README "Model files for real noise"): PSNR 31.8 dB on
the 100 test images (input 16.4 dB), 31.4 dB on 100 held-out ones; 21.9 dB with a white-noise
prior of the same per-pixel variance.
"""

import jax
import numpy as np

import bayesnoise as bn
from bayesnoise import assets
from bayesnoise.checkpoints import load_score_prior
from bayesnoise.data import load_testset

SHAPE = (28, 28, 1)
COLUMN_STD = 0.15
PIXEL_STD = 0.02
ROW_GAIN = 1.0 + 0.25 * np.cos(2 * np.pi * np.arange(SHAPE[0]) / SHAPE[0])

signal_prior = load_score_prior(assets.path("fashion_unet.eqx"))
noise_prior = bn.stripe_noise_prior(SHAPE, COLUMN_STD, PIXEL_STD, signal_prior.sde, ROW_GAIN)

model = bn.joint_model(signal_prior, noise_prior, measurement_std=0.01)

defaults = {
    "sampler": "ddim_pigdm",
    "num_steps": 25,
    "num_chains": 2,
    "num_draws": 2,
    "start_time": 0.4,
    "sampler_options": {"covariance": "scalar", "guidance_weight": 4.0, "eta": 1.0},
}


def observe(x, seed: int):
    """The observation of signal ``x`` with a fresh draw of stripe noise seeded by ``seed``:
    ``(y, n)``."""
    n = np.asarray(
        bn.sample_stripe_noise(jax.random.key(seed), SHAPE, COLUMN_STD, PIXEL_STD, ROW_GAIN)
    )
    return (x + n).astype(np.float32), n


def simulate(seed: int = 0):
    """Shipped Fashion-MNIST test image ``seed`` (0-99) plus a fresh draw of stripe noise."""
    x = load_testset()["fashion"][seed % 100]
    y, n = observe(x, seed)
    return y, {"x": x, "n": n}
