"""The Poisson–Gaussian likelihood: its Gaussian approximation, DPS on it, its error messages."""

import re

import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from gaussian_problems import SDE

import bayesnoise as bn
from bayesnoise import operators

SHAPE = (4, 3, 1)
GAIN, READ_STD = 0.3, 0.05


def _model(**likelihood):
    signal = bn.GaussianPrior(SHAPE, SDE, mean=0.5, variance=0.25)
    noise = bn.GaussianPrior(SHAPE, SDE, variance=0.01)
    settings = {"likelihood": "poisson_gaussian", "gain": GAIN, "read_std": READ_STD}
    settings.update(likelihood)
    return bn.joint_model(signal, noise, signal_operator=operators.Scale(SHAPE, 2.0), **settings)


def test_log_likelihood_is_the_signal_dependent_normal():
    """log p(y | x, n) = log Normal(y; mu, gain max(mu, 0) + read_std^2), mu = A x + B n."""
    rng = np.random.default_rng(0)
    x, n = (rng.normal(0.2, 0.5, SHAPE).astype(np.float32) for _ in range(2))
    y = rng.normal(0.5, 0.5, SHAPE).astype(np.float32)
    mean = 2.0 * x + n
    assert (mean < 0).any() and (mean > 0).any()  # both sides of the clip
    variance = GAIN * np.maximum(mean, 0.0) + READ_STD**2
    expected = dist.Normal(mean, np.sqrt(variance)).log_prob(y).sum()
    target = bn.target.posterior_target(_model())
    position = {"x": jnp.asarray(x), "n": jnp.asarray(n)}
    np.testing.assert_allclose(target.log_likelihood(position, jnp.asarray(y)), expected, rtol=1e-5)
    likelihood = target.observation_distribution(position, jnp.asarray(y))
    np.testing.assert_allclose(likelihood.variance, variance, rtol=1e-5, atol=1e-7)


def test_approximation_has_the_moments_of_poisson_gaussian_noise():
    """gain Poisson(mu / gain) + N(0, read_std^2) has mean mu and variance gain mu + read^2."""
    rng = np.random.default_rng(1)
    mean = np.array([0.05, 0.5, 2.0])
    draws = GAIN * rng.poisson(mean / GAIN, (20000, 3)) + rng.normal(0, READ_STD, (20000, 3))
    variance = GAIN * mean + READ_STD**2
    z_mean = (draws.mean(0) - mean) / np.sqrt(variance / len(draws))
    assert np.all(np.abs(z_mean) < 4), z_mean
    np.testing.assert_allclose(draws.var(0), variance, rtol=0.05)


def test_dps_on_poisson_gaussian_gives_finite_draws():
    model = bn.joint_model(
        bn.GaussianPrior(SHAPE, SDE, mean=1.0, variance=0.25),
        likelihood="poisson_gaussian",
        gain=0.1,
        read_std=0.05,
    )
    rng = np.random.default_rng(2)
    truth = rng.uniform(0.2, 2.0, SHAPE)
    observation = 0.1 * rng.poisson(truth / 0.1) + rng.normal(0, 0.05, SHAPE)
    tree = bn.sample(
        model,
        observation.astype(np.float32),
        sampler="dps",
        sampler_options={"guidance_weight": {"x": 0.3}},
        num_chains=2,
        num_draws=2,
        num_steps=10,
        progress=False,
    )
    draws = np.asarray(tree.posterior["x"])
    assert draws.shape == (2, 2, *SHAPE)
    assert np.all(np.isfinite(draws))


ERRORS = [
    (
        {"gain": None},
        "gain must be a positive finite number for a poisson_gaussian likelihood. Got gain=None.",
    ),
    (
        {"gain": -1.0},
        "gain must be a positive finite number for a poisson_gaussian likelihood. Got gain=-1.0.",
    ),
    (
        {"read_std": 0.0},
        "read_std must be a positive finite number for a poisson_gaussian likelihood. "
        "Got read_std=0.0.",
    ),
    (
        {"read_std": float("inf")},
        "read_std must be a positive finite number for a poisson_gaussian likelihood. "
        "Got read_std=inf.",
    ),
    (
        {"likelihood": "gaussian", "read_std": 0.1, "gain": None},
        "read_std is an argument of likelihood='poisson_gaussian'. "
        "Got read_std=0.1 with likelihood='gaussian'.",
    ),
    (
        {"photon_rate": 20.0},
        "photon_rate is an argument of likelihood='poisson'. "
        "Got photon_rate=20.0 with likelihood='poisson_gaussian'.",
    ),
    (
        {"measurement_std": dist.HalfNormal(0.1)},
        "measurement_std must be a number for a poisson_gaussian likelihood.",
    ),
]


@pytest.mark.parametrize("arguments, message", ERRORS, ids=range(len(ERRORS)))
def test_error_messages(arguments, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        _model(**arguments)


def test_data_consistency_refuses_a_signal_dependent_variance():
    with pytest.raises(
        ValueError, match="guidance data_consistency .* needs a Gaussian likelihood"
    ):
        bn.sample(
            _model(),
            np.full(SHAPE, 0.5, np.float32),
            sampler="data_consistency",
            num_chains=1,
            num_draws=1,
            num_steps=2,
            progress=False,
        )
