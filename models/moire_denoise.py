"""Removing moiré (periodic interference): y = x + n_moire, Fashion-MNIST signals.

Moiré is the interference of a periodic structure with the sampling grid (screens, scanned
halftones, electrical pick-up): a few 2-D cosines, here at (row, column) frequencies
(0.11, 0.23), (-0.19, 0.07) and (0.31, -0.27) cycles per pixel, each of random phase and
amplitude (cosine and sine coefficients ~ N(0, a_k^2), a = 0.12, 0.08, 0.06), plus white noise
of std 0.02. Its prior is analytic: a stationary Gaussian process with a periodic covariance,
rank 6 plus a diagonal (``bn.moire_noise_prior``, exact diffused score); the signal prior is
the shipped Fashion-MNIST network.

Measured (analyses/real_noise.py, README "Model files for real noise"): PSNR 37.2 dB on
the 100 test images (input 16.8 dB), 36.8 dB on 100 held-out ones; 24.3 dB with a white-noise
prior of the same per-pixel variance.
"""

import jax
import numpy as np

import bayesnoise as bn
from bayesnoise import assets
from bayesnoise.checkpoints import load_score_prior
from bayesnoise.data import load_testset

SHAPE = (28, 28, 1)
FREQUENCIES = [[0.11, 0.23], [-0.19, 0.07], [0.31, -0.27]]
AMPLITUDES = [0.12, 0.08, 0.06]
PIXEL_STD = 0.02

signal_prior = load_score_prior(assets.path("fashion_unet.eqx"))
noise_prior = bn.moire_noise_prior(SHAPE, FREQUENCIES, AMPLITUDES, PIXEL_STD, signal_prior.sde)

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
    """The observation of signal ``x`` with a fresh draw of moiré noise seeded by ``seed``:
    ``(y, n)``."""
    key = jax.random.key(seed)
    n = np.asarray(bn.sample_moire_noise(key, SHAPE, FREQUENCIES, AMPLITUDES, PIXEL_STD))
    return (x + n).astype(np.float32), n


def simulate(seed: int = 0):
    """Shipped Fashion-MNIST test image ``seed`` (0-99) plus a fresh draw of moiré noise."""
    x = load_testset()["fashion"][seed % 100]
    y, n = observe(x, seed)
    return y, {"x": x, "n": n}
