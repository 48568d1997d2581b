"""The stray check (bayesnoise/stray.py): the ELBO against a Gaussian's exact log density, the
flagging rule, and what bn.sample records and leaves out."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import pytest
from gaussian_problems import PROBLEMS, SDE, observation_of
from test_rescaling import isotropic_model

import bayesnoise as bn
from bayesnoise.stray import (
    StrayCheck,
    end_point_log_density,
    fiber_log_volume,
    prior_log_density_bound,
    strays,
)
from bayesnoise.target import posterior_target


def test_bound_differences_match_the_gaussian_log_density():
    """With exact scores the ELBO is tight: between two points its differences are those of
    log N(0, v I), within Monte Carlo error (common random numbers, many keys)."""
    target = posterior_target(isotropic_model())
    keys = jax.random.split(jax.random.key(0), 2)
    near = {
        "x": 0.45 * jax.random.normal(keys[0], (16,)),
        "n": 0.22 * jax.random.normal(keys[1], (16,)),
    }
    far = jax.tree.map(lambda value: 2.0 * value, near)
    exact = target.prior_log_density(near, 0.0) - target.prior_log_density(far, 0.0)

    check = StrayCheck(num_times=64)

    def difference(key):
        bounds = [prior_log_density_bound(target, p, key, check) for p in (near, far)]
        return sum(bounds[0].values()) - sum(bounds[1].values())

    differences = np.asarray(jax.vmap(difference)(jax.random.split(jax.random.key(1), 64)))
    standard_error = differences.std(ddof=1) / np.sqrt(differences.size)
    assert float(exact) > 20  # a clear difference to resolve
    assert abs(differences.mean() - float(exact)) < 4 * standard_error + 0.01 * float(exact)


def test_end_point_density_adds_the_parameter_prior_and_the_fiber_volume():
    target = posterior_target(isotropic_model())
    position = {"x": jnp.full(16, 0.1), "n": jnp.full(16, -0.1)}
    key, check = jax.random.key(2), StrayCheck(num_times=8)
    bounds = prior_log_density_bound(target, position, key, check)
    for alpha in (0.3, 0.6):
        total = end_point_log_density(target, position, {"alpha": jnp.asarray(alpha)}, key, check)
        beta_2_2 = math.log(6 * alpha * (1 - alpha))
        volume = -8 * math.log((1 - alpha) ** 2 + alpha**2)  # det(J J^T)^(-1/2), d = 16
        np.testing.assert_allclose(total, sum(bounds.values()) + beta_2_2 + volume, rtol=1e-5)


def test_fiber_volume_of_general_operators():
    """-1/2 log det((1 - alpha)^2 A A^T + alpha^2 B B^T) for matrices A, B (8 x 16)."""
    keys = jax.random.split(jax.random.key(3), 3)
    a, b = (jax.random.normal(key, (8, 16)) / 4 for key in keys[:2])
    prior = bn.GaussianPrior((16,), SDE, variance=0.1)
    model = bn.joint_model(
        prior,
        prior,
        signal_operator=lambda x: a @ x,
        noise_operator=lambda n: b @ n,
        mixing=dist.Beta(2.0, 2.0),
    )
    target = posterior_target(model)
    position = {"x": jax.random.normal(keys[2], (16,)), "n": jnp.zeros(16)}
    for alpha in (0.2, 0.7):
        gram = (1 - alpha) ** 2 * a @ a.T + alpha**2 * b @ b.T
        expected = -0.5 * np.linalg.slogdet(np.asarray(gram, dtype=np.float64))[1]
        volume = fiber_log_volume(target, position, {"alpha": jnp.asarray(alpha)})
        np.testing.assert_allclose(volume, expected, rtol=1e-4)


def test_fiber_volume_refuses_a_jacobian_too_large_to_form():
    target = posterior_target(isotropic_model(size=8192))
    position = {"x": jnp.zeros(8192), "n": jnp.zeros(8192)}
    with pytest.raises(ValueError, match="forms the Jacobian of the forward model densely"):
        fiber_log_volume(target, position, {"alpha": jnp.asarray(0.5)})
    # bn.sample refuses before it samples
    with pytest.raises(ValueError, match="forms the Jacobian of the forward model densely"):
        bn.sample(
            isotropic_model(size=8192),
            np.zeros(8192, np.float32),
            stray_check=StrayCheck(),
            num_steps=2,
            progress=False,
        )


def test_known_parameters_leave_the_fiber_volume_out():
    """Without parameters the volume is a constant: the density is the priors' ELBOs alone."""
    signal = bn.GaussianPrior((16,), SDE, variance=0.2)
    noise = bn.GaussianPrior((16,), SDE, variance=0.05)
    target = posterior_target(bn.joint_model(signal, noise, mixing=0.3))
    position = {"x": jnp.full(16, 0.1), "n": jnp.full(16, -0.1)}
    key, check = jax.random.key(2), StrayCheck(num_times=8)
    bounds = prior_log_density_bound(target, position, key, check)
    total = end_point_log_density(target, position, {}, key, check)
    np.testing.assert_allclose(total, sum(bounds.values()), rtol=1e-6)


def test_strays_are_those_beyond_the_tolerance_of_the_best_usable():
    densities = jnp.array([[0.0, -10.0, -200.0, jnp.nan], [5.0, -50.0, -60.0, -70.0]])
    diverged = jnp.array([[False, False, False, False], [True, False, False, False]])
    flagged = np.asarray(strays(densities, diverged, 100.0))
    # image 0: -200 is beyond 100 of 0; a NaN density is beyond any; image 1: the diverged 5
    # is not the best, so -50 is, and nothing is within reach of being a stray
    np.testing.assert_array_equal(
        flagged, [[False, False, True, True], [False, False, False, False]]
    )
    assert not np.any(np.asarray(strays(densities, diverged, math.inf)))


def test_sample_records_densities_and_leaves_strays_out():
    model = PROBLEMS["coloured_denoising"]
    y = np.stack([observation_of(model, seed) for seed in (0, 1)])
    options = dict(sampler="dps", num_chains=2, num_draws=3, num_steps=8, progress=False)
    plain = bn.sample(model, y, **options)
    recorded = bn.sample(model, y, stray_check=StrayCheck(math.inf, num_times=4), **options)
    # an infinite tolerance records the densities and leaves every draw in place
    np.testing.assert_array_equal(plain.posterior["x"], recorded.posterior["x"])
    densities = np.asarray(recorded.sample_stats["end_point_log_density"])
    assert densities.shape == (2, 3, 2) and np.all(np.isfinite(densities))
    assert not recorded.sample_stats["stray"].values.any()

    strict = bn.sample(model, y, stray_check=StrayCheck(1e-3, num_times=4), **options)
    stray = np.asarray(strict.sample_stats["stray"])
    np.testing.assert_array_equal(strict.sample_stats["end_point_log_density"], densities)
    assert np.all((~stray).sum(axis=(0, 1)) == 1)  # only each image's best is within 1e-3 nats
    best = densities.reshape(6, 2).argmax(axis=0)
    np.testing.assert_array_equal(np.flatnonzero(~stray[..., 0].ravel()), [best[0]])
    x = np.asarray(strict.posterior["x"])
    assert np.all(np.isnan(x[stray])) and np.all(np.isfinite(x[~stray]))
    assert np.all(np.isnan(np.asarray(strict.posterior_predictive["y"])[stray]))
    assert strict.posterior.attrs["stray_tolerance"] == pytest.approx(1e-3)
    summary = bn.summarize(strict)
    assert summary["num_strays"] == int(stray.sum()) and summary["num_diverged"] == 0


@pytest.mark.parametrize(
    "arguments, message",
    [
        ({"tolerance": 0.0}, "tolerance must be a positive number"),
        ({"tolerance": "big"}, "tolerance must be a positive number"),
        ({"num_times": 0}, "num_times must be a positive integer"),
        ({"min_time": 1.0}, r"min_time must be a number in \(0, 1\)"),
    ],
)
def test_bad_stray_check_settings_are_refused(arguments, message):
    with pytest.raises(ValueError, match=message):
        StrayCheck(**arguments)


def test_sample_refuses_a_stray_check_of_another_type():
    model = PROBLEMS["coloured_denoising"]
    with pytest.raises(TypeError, match="stray_check must be a bayesnoise.stray.StrayCheck"):
        bn.sample(model, observation_of(model), stray_check=150.0, num_steps=2, progress=False)
