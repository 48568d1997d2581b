"""The model files for real noise load, simulate observations of the model's shapes, and run
their defaults (two steps) to finite draws."""

from pathlib import Path

import jax
import numpy as np
import pytest

import bayesnoise as bn
from bayesnoise.model_file import load_model_file

MODELS = Path(__file__).resolve().parents[1] / "models"
REAL_NOISE_MODELS = ["stripe_denoise", "moire_denoise", "deblur_stripes"]


@pytest.mark.parametrize("name", REAL_NOISE_MODELS)
def test_real_noise_model_file_simulates_and_samples(name):
    module = load_model_file(MODELS / f"{name}.py")
    y, truth = module.simulate(0)
    signal_shape = module.signal_prior.shape
    assert truth["x"].shape == signal_shape
    assert truth["n"].shape == tuple(module.noise_prior.shape)
    assert y.shape == module.model.observation_shape == signal_shape
    assert y.dtype == np.float32
    y_again, truth_again = module.simulate(0)
    np.testing.assert_array_equal(y, y_again)
    assert not np.array_equal(module.simulate(1)[1]["n"], truth["n"])  # fresh noise per seed
    defaults = {k: v for k, v in module.defaults.items() if k not in ("num_steps", "num_chains")}
    tree = bn.sample(
        module.model, y, num_steps=2, num_chains=1, **{**defaults, "num_draws": 2}, progress=False
    )
    for site in ("x", "n"):
        draws = np.asarray(tree.posterior[site])
        assert draws.shape == (1, 2, *signal_shape)
        assert np.isfinite(draws).all()
    # The generator draws what the prior assumes: the noise's log-density is finite.
    assert np.isfinite(float(module.noise_prior.log_prob(truth["n"], jax.numpy.float32(0.0))))
