"""The rescaling move (bayesnoise/rescaling.py): its fiber density in closed form, and that it
leaves the exact joint posterior invariant on a linear-Gaussian problem."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist
import numpyro.handlers as handlers
import pytest
from gaussian_problems import SDE
from test_parameters import simulated, unknown_mixing_model, z_scores

import bayesnoise as bn
from bayesnoise.parameters import ParameterUpdate
from bayesnoise.reference import (
    gaussian_posterior,
    nuts_posterior,
    parameter_posterior_by_quadrature,
)
from bayesnoise.rescaling import RescalingMove, fiber_log_density, mixing_gains, rescale
from bayesnoise.stray import StrayCheck
from bayesnoise.target import posterior_target


def isotropic_model(signal_variance=0.2, noise_variance=0.05, size=16):
    signal = bn.GaussianPrior((size,), SDE, variance=signal_variance)
    noise = bn.GaussianPrior((size,), SDE, variance=noise_variance)
    return bn.joint_model(signal, noise, measurement_std=0.05, mixing=dist.Beta(2.0, 2.0))


def test_fiber_density_matches_its_closed_form():
    """p(alpha') p(c_x x) p(c_n n) |c_x c_n|^d on the logit grid, Gaussian p_t exactly."""
    target = posterior_target(isotropic_model())
    keys = jax.random.split(jax.random.key(0), 3)
    position = {
        "x": 0.4 * jax.random.normal(keys[0], (16,)),
        "n": 0.2 * jax.random.normal(keys[1], (16,)),
    }
    alpha = jnp.asarray(0.4)
    y = (1 - alpha) * position["x"] + alpha * position["n"]
    move = RescalingMove(gains=mixing_gains)
    log_density, grid, scales = fiber_log_density(
        target, position, {"alpha": alpha}, y, keys[2], move
    )

    a_t, s_t = SDE.marginal_mean_coefficient(move.time), SDE.marginal_std(move.time)
    site_keys = dict(zip(position, jax.random.split(keys[2], 2), strict=True))
    expected = dist.Beta(2.0, 2.0).log_prob(grid["alpha"]) + jnp.log(
        grid["alpha"] * (1 - grid["alpha"])
    )
    for site, variance in (("x", 0.2), ("n", 0.05)):
        noised = a_t * position[site] + s_t * jax.random.normal(site_keys[site], (16,))
        expected += -(scales[site] ** 2) * jnp.sum(noised**2) / (2 * (a_t**2 * variance + s_t**2))
        expected += 16 * jnp.log(scales[site])
    centre = move.num_points // 2
    np.testing.assert_allclose(grid["alpha"][centre], alpha, rtol=1e-5)
    np.testing.assert_allclose(
        log_density - log_density[centre], expected - expected[centre], rtol=1e-3, atol=2e-3
    )
    # every grid point keeps the prediction (1 - alpha') x' + alpha' n'
    predictions = (1 - grid["alpha"][:, None]) * scales["x"][:, None] * position["x"] + grid[
        "alpha"
    ][:, None] * scales["n"][:, None] * position["n"]
    np.testing.assert_allclose(predictions, jnp.broadcast_to(y, predictions.shape), atol=1e-5)


@pytest.mark.slow
def test_move_leaves_the_exact_posterior_invariant():
    """NUTS draws of (x, n, alpha), moved: alpha moves, and alpha and x match quadrature as
    well as the NUTS draws themselves do (their autocorrelation inflates the z of x's variance)."""
    model = unknown_mixing_model()
    y, _, _ = simulated(model, seed=1)
    grid = np.linspace(0.0005, 0.9995, 400)
    _, moments = parameter_posterior_by_quadrature(model, y, "alpha", grid)
    draws = nuts_posterior(model, y, num_samples=800, num_warmup=400, seed=2)
    target = posterior_target(model)
    move = RescalingMove(gains=mixing_gains, time=1e-3)  # p_t ~ p_0 for these variances

    def one(x, n, alpha, key):
        return rescale(target, {"x": x, "n": n}, {"alpha": alpha}, jnp.asarray(y), key, move)

    keys = jax.random.split(jax.random.key(3), len(draws["alpha"]))
    moved, parameters = jax.jit(jax.vmap(one))(draws["x"], draws["n"], draws["alpha"], keys)
    assert np.mean(np.asarray(parameters["alpha"]) != np.asarray(draws["alpha"])) > 0.5
    for name, before, after in (
        ("alpha", draws["alpha"], parameters["alpha"]),
        ("x", draws["x"], moved["x"]),
    ):
        z_before = z_scores(np.asarray(before).reshape(len(keys), -1), *moments[name])
        z_after = z_scores(np.asarray(after).reshape(len(keys), -1), *moments[name])
        assert np.max(z_after[0]) < 4, name
        assert np.max(z_after[1]) < max(4.0, np.max(z_before[1]) + 1.0), name


def test_sample_applies_the_move_and_checks_it():
    model = isotropic_model(size=8)
    target = posterior_target(model)
    y = np.full(target.observation_shape, 0.3, np.float32)
    settings = {"num_chains": 1, "num_draws": 4, "num_steps": 5, "progress": False}
    update = ParameterUpdate(rescaling=RescalingMove(gains=mixing_gains))
    tree = bn.sample(model, y, parameter_update=update, **settings)
    plain = bn.sample(model, y, **settings)  # same seed: the same draws before the move
    x, n, alpha = (np.asarray(tree.posterior[name]) for name in ("x", "n", "alpha"))
    assert np.all(np.isfinite(alpha)) and np.all((alpha > 0) & (alpha < 1))
    assert np.all(np.isfinite(x)) and np.all(np.isfinite(n))
    # the move ran: alpha changed, and (1 - alpha) x + alpha n stayed where it was
    plain_x, plain_n, plain_alpha = (
        np.asarray(plain.posterior[name]) for name in ("x", "n", "alpha")
    )
    assert np.any(alpha != plain_alpha)
    np.testing.assert_allclose(
        (1 - alpha[..., None]) * x + alpha[..., None] * n,
        (1 - plain_alpha[..., None]) * plain_x + plain_alpha[..., None] * plain_n,
        atol=1e-4,
    )
    with pytest.raises(TypeError, match="rescaling must be"):
        ParameterUpdate(rescaling=mixing_gains)
    with pytest.raises(ValueError, match="num_points must be an odd integer"):
        RescalingMove(gains=mixing_gains, num_points=40)
    with pytest.raises(ValueError, match="one scalar forward-model parameter"):
        fiber_log_density(
            posterior_target(bn.joint_model(*posterior_target(model).priors.values())),
            {"x": jnp.zeros(8), "n": jnp.zeros(8)},
            {},
            jnp.zeros(8),
            jax.random.key(0),
            RescalingMove(gains=mixing_gains),
        )


def whitened_draws(model, y, alphas, draws):
    """Each draw of x whitened by the closed-form p(x | alpha, y) at its own alpha."""
    whitened = []
    for value, draw in zip(alphas, draws, strict=True):
        known = handlers.condition(model, data={"alpha": float(value)})
        mean, covariance = gaussian_posterior(known, y)["x"]
        whitened.append(np.linalg.solve(np.linalg.cholesky(covariance), draw - mean))
    return np.concatenate(whitened)


def assert_standard_normal(values):
    assert abs(values.mean()) < 4 / np.sqrt(values.size)
    assert abs(values.var() - 1.0) < 4 * np.sqrt(2.0 / values.size)


def test_later_passes_redraw_x_and_n_given_each_trajectorys_alpha():
    """num_passes = 2 without the move: alpha stays pass 1's (same seed) and (x, n) are drawn
    afresh from p(x, n | alpha_i, y) for each trajectory's alpha_i: whitened by that closed-form
    conditional, x's draws are N(0, 1). With plug_in, alpha stays pass 1's too and x's draws
    come from p(x | alpha_hat, y), alpha_hat the mean of alpha's draws."""
    model = unknown_mixing_model()
    y, _, _ = simulated(model, seed=1)
    settings = {"num_chains": 1, "num_draws": 32, "num_steps": 50, "seed": 1, "progress": False}
    one = bn.sample(model, y, **settings)
    one_alpha = np.asarray(one.posterior["alpha"]).ravel()
    evaluations = "network_evaluations_per_prior"
    for update in (ParameterUpdate(num_passes=2), ParameterUpdate(plug_in=True)):
        two = bn.sample(model, y, parameter_update=update, **settings)
        assert two.posterior.attrs[evaluations] == 2 * one.posterior.attrs[evaluations]
        alpha = np.asarray(two.posterior["alpha"]).ravel()
        np.testing.assert_array_equal(alpha, one_alpha)
        x = np.asarray(two.posterior["x"]).reshape(len(alpha), -1)
        assert np.all(np.abs(x - np.asarray(one.posterior["x"]).reshape(x.shape)) > 0)
        if update.plug_in:
            alpha_hat = float(two.constant_data["alpha_plug_in"])
            np.testing.assert_allclose(alpha_hat, one_alpha.mean(), rtol=1e-6)
            alpha = np.full_like(alpha, alpha_hat)
        assert_standard_normal(whitened_draws(model, y, alpha, x))
    with pytest.raises(ValueError, match="num_passes must be a positive integer"):
        ParameterUpdate(num_passes=0)
    with pytest.raises(TypeError, match="plug_in must be True or False"):
        ParameterUpdate(plug_in=1)


def test_between_passes_strays_take_the_alpha_of_a_kept_trajectory():
    """With a stray check, each pass but the last ends with it and every stray takes the alpha
    of a kept trajectory of its image: at a tolerance of 1e-3 nats only each image's best is
    kept, so pass 2 (no move) runs every trajectory at the best alpha of pass 1."""
    model = unknown_mixing_model()
    y = np.stack([simulated(model, seed=seed)[0] for seed in (1, 2)])
    settings = {"num_chains": 2, "num_draws": 3, "num_steps": 10, "seed": 3, "progress": False}
    check = StrayCheck(1e-3, num_times=4)
    one = bn.sample(model, y, stray_check=check, **settings)
    two = bn.sample(
        model, y, stray_check=check, parameter_update=ParameterUpdate(num_passes=2), **settings
    )
    kept = ~np.asarray(one.sample_stats["stray"]).reshape(6, 2)
    assert np.all(kept.sum(axis=0) == 1)
    best = np.asarray(one.posterior["alpha"]).reshape(6, 2)[kept.argmax(axis=0), [0, 1]]
    alpha = np.asarray(two.posterior["alpha"]).reshape(6, 2)
    stray = np.asarray(two.sample_stats["stray"]).reshape(6, 2)
    np.testing.assert_array_equal(np.where(stray, best, alpha), np.broadcast_to(best, (6, 2)))
    assert two.posterior.attrs["resampled_strays"] == [10]
    # plug_in: x at the mean alpha of pass 1's kept trajectories (here each image's best);
    # alpha's draws are pass 1's, left out where pass 1 found strays, x's where the last did
    plug_in = bn.sample(
        model, y, stray_check=check, parameter_update=ParameterUpdate(plug_in=True), **settings
    )
    np.testing.assert_array_equal(np.asarray(plug_in.constant_data["alpha_plug_in"]), best)
    parameter_stray = np.asarray(plug_in.sample_stats["parameter_stray"]).reshape(6, 2)
    np.testing.assert_array_equal(parameter_stray, ~kept)
    assert bn.summarize(plug_in)["num_parameter_strays"] == 10
    # pass 1 is the one-pass run's (same seed), NaN included
    np.testing.assert_array_equal(plug_in.posterior["alpha"], one.posterior["alpha"])
    x_stray = np.asarray(plug_in.sample_stats["stray"]).reshape(6, 2)
    plug_in_x = np.asarray(plug_in.posterior["x"]).reshape(6, 2, -1)
    assert np.all(np.isnan(plug_in_x[x_stray])) and np.all(np.isfinite(plug_in_x[~x_stray]))
    evaluations = "network_evaluations_per_prior"
    assert plug_in.posterior.attrs[evaluations] == 2 * one.posterior.attrs[evaluations]
    # without the check the passes keep each trajectory's own alpha
    unchecked = bn.sample(model, y, parameter_update=ParameterUpdate(num_passes=2), **settings)
    assert len(np.unique(np.asarray(unchecked.posterior["alpha"]))) == 12
    assert "resampled_strays" not in unchecked.posterior.attrs
