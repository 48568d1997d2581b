"""The evaluation pairs (x, n, y) of the learned-prior models, by split.

- ``validation``: Fashion-MNIST test images 100-131 (not shipped; needs ``apt-get install
  dataset-fashion-mnist``) with held-out MNIST-5k digits 100-131 or fresh noise (seeds
  10 000 + i): hyper-parameters are tuned here;
- ``test``: the model file's ``simulate(i)`` for the 100 shipped images;
- ``heldout``: Fashion-MNIST test images 1000-1099 with held-out digits 500-599 or fresh noise
  (seeds 20 000 + i), not shipped, to check that a figure is not particular to the shipped set.
"""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np

import bayesnoise as bn
from bayesnoise.data import load_fashion_mnist, mnist_5k_split
from bayesnoise.model_file import load_model_file

ROOT = Path(__file__).resolve().parents[1]
MODELS = ["digits_on_fashion", "cs_sine", "sine_denoise"]
# Model files with an ``observe(x, seed) -> (y, n)`` that draws their own noise for any signal.
REAL_NOISE_MODELS = ["stripe_denoise", "moire_denoise", "deblur_stripes"]
SPLITS = {
    "validation": (slice(100, 132), slice(100, 132), 10_000),
    "heldout": (slice(1000, 1100), slice(500, 600), 20_000),
}


def model_module(model_name: str):
    """The loaded model file ``models/<model_name>.py``."""
    return load_model_file(ROOT / "models" / f"{model_name}.py")


def digit_pairs(split: str, num_images: int):
    """The split's first ``num_images`` clothing images x and held-out digits n (validation or
    heldout), each (N, 28, 28, 1) in [0, 1]."""
    if split not in SPLITS:
        raise ValueError(f"split must be validation or heldout. Got {split!r}.")
    fashion_slice, digits_slice, _ = SPLITS[split]
    x = load_fashion_mnist("test")[0][fashion_slice][:num_images]
    n = mnist_5k_split()[1][0][digits_slice][:num_images]
    return x, n


def pairs(model_name: str, split: str, num_images: int):
    """The model file's module and the split's true signals x (N, 28, 28, 1), true noise n
    (N, *noise shape) and observations y."""
    module = model_module(model_name)
    if split == "test":
        simulated = [module.simulate(index) for index in range(num_images)]
        return (
            module,
            np.stack([truth["x"] for _, truth in simulated]),
            np.stack([np.asarray(truth["n"]) for _, truth in simulated]),
            np.stack([y for y, _ in simulated]),
        )
    if split not in SPLITS:
        raise ValueError(f"split must be validation, test or heldout. Got {split!r}.")
    fashion_slice, _, seed_offset = SPLITS[split]
    if model_name == "digits_on_fashion":
        x, n = digit_pairs(split, num_images)
        return module, x, n, (0.5 * x + 0.5 * n).astype(np.float32)
    x = load_fashion_mnist("test")[0][fashion_slice][:num_images]
    if hasattr(module, "observe"):
        observed = [module.observe(image, seed_offset + index) for index, image in enumerate(x)]
        n = np.stack([noise for _, noise in observed]).astype(np.float32)
        return module, x, n, np.stack([y for y, _ in observed]).astype(np.float32)
    keys = [jax.random.key(seed_offset + index) for index in range(len(x))]
    if model_name == "cs_sine":
        n = np.stack([module.noise_std * jax.random.normal(key, (392,)) for key in keys])
        y = np.stack([np.asarray(module.measurement(image)) for image in x]) + n
    else:
        n = np.stack(
            [bn.sample_sinusoidal_noise(key, module.SHAPE, module.AVERAGE_STD) for key in keys]
        )
        y = x + n
    return module, x, n.astype(np.float32), y.astype(np.float32)
