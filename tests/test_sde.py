"""SDE marginals against their defining ODEs, time grids, and Euler–Maruyama's weak order."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import bayesnoise as bn
from bayesnoise.samplers.base import Guided, no_solve_info
from bayesnoise.samplers.integrators.euler_maruyama import euler_maruyama_move

SDES = [bn.VPSDE(0.1, 7.0), bn.VPSDE(), bn.SubVPSDE(), bn.VESDE(0.01, 50.0), bn.SimpleSDE(25.0)]


@pytest.mark.parametrize("sde", SDES, ids=lambda s: type(s).__name__)
def test_marginal_moments_solve_their_odes(sde):
    """a_t' = f(t) a_t and (s_t^2)' = 2 f(t) s_t^2 + g(t)^2, with a_0 = 1 and s_0 = 0."""
    times = jnp.linspace(0.05, 0.95, 7)
    mean_rate = jax.vmap(jax.grad(sde.marginal_mean_coefficient))(times)
    variance_rate = jax.vmap(jax.grad(lambda t: sde.marginal_std(t) ** 2))(times)
    a_t = jax.vmap(sde.marginal_mean_coefficient)(times)
    s_t = jax.vmap(sde.marginal_std)(times)
    f_t = jax.vmap(sde.drift_coefficient)(times)
    g_t = jax.vmap(sde.diffusion)(times)
    np.testing.assert_allclose(mean_rate, f_t * a_t, rtol=1e-3, atol=1e-5)
    np.testing.assert_allclose(variance_rate, 2 * f_t * s_t**2 + g_t**2, rtol=2e-3)
    assert float(sde.marginal_mean_coefficient(0.0)) == pytest.approx(1.0)
    assert float(sde.marginal_std(0.0)) == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize("sde", SDES[2:], ids=lambda s: type(s).__name__)
def test_prior_matches_the_marginal_at_time_one(sde):
    spread = float(sde.marginal_std(1.0))
    assert sde.prior_std() == pytest.approx(spread, rel=0.01)


def test_vp_paper_settings():
    """The paper's VP SDE (0.1, 7.0) leaves a_1 = exp(-1.775) of the data at t = 1."""
    assert float(bn.VPSDE(0.1, 7.0).marginal_mean_coefficient(1.0)) == pytest.approx(
        np.exp(-0.25 * 6.9 - 0.05), rel=1e-5
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"beta_min": 1.0, "beta_max": 0.5}, "beta_min and beta_max must satisfy"),
    ],
)
def test_vp_rejects_bad_betas(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bn.VPSDE(**kwargs)


def test_ve_and_simple_reject_bad_parameters():
    with pytest.raises(ValueError, match="sigma_min and sigma_max must satisfy"):
        bn.VESDE(1.0, 0.5)
    with pytest.raises(ValueError, match="sigma must be greater than 1"):
        bn.SimpleSDE(0.5)


@pytest.mark.parametrize("spacing", ["uniform", "quadratic"])
def test_time_grid(spacing):
    grid = np.asarray(bn.time_grid(10, 0.8, spacing=spacing))
    assert grid.shape == (11,)
    assert grid[0] == pytest.approx(0.8) and grid[-1] == pytest.approx(0.0, abs=1e-7)
    assert np.all(np.diff(grid) < 0)
    if spacing == "uniform":
        np.testing.assert_allclose(np.diff(grid), -0.08, rtol=1e-5)


def test_time_grid_errors():
    with pytest.raises(ValueError, match="num_steps must be a positive integer"):
        bn.time_grid(0)
    with pytest.raises(ValueError, match="Times must satisfy"):
        bn.time_grid(5, start_time=1.5)
    with pytest.raises(ValueError, match="spacing must be one of"):
        bn.time_grid(5, spacing="cosine")


@pytest.mark.slow
def test_euler_maruyama_has_weak_order_one(key):
    """Reverse EM with the exact score of N(0.5, 0.25): the error of the sampled variance
    falls like the step (slope of log error against log step ~ 1, as Diffrax tests orders)."""
    sde = bn.VPSDE()
    prior = bn.GaussianPrior((1,), sde, mean=0.5, variance=0.25)
    num_samples = 1_000_000

    def run(num_steps, key):
        grid = bn.time_grid(num_steps)
        start_key, key = jax.random.split(key)
        # start from the exact marginal at t = 1, so only the integration error remains
        x = jax.vmap(lambda k: prior.sample(k, 1.0))(jax.random.split(start_key, num_samples))

        def step(x, inputs):
            time, next_time, step_key = inputs
            keys = jax.random.split(step_key, num_samples)

            def move(x, k):
                scores = {"x": prior.score(x, time)}
                guided = Guided({"x": x}, scores, {"x": 0.0}, no_solve_info(0.0))
                return euler_maruyama_move(k, guided, time, next_time, sde)

            return jax.vmap(move)(x, keys)["x"], None

        keys = jax.random.split(key, num_steps)
        x, _ = jax.lax.scan(step, x, (grid[:-1], grid[1:], keys))
        return x

    steps = [24, 48, 96, 192]
    errors = [abs(float(jnp.var(run(n, key))) - 0.25) for n in steps]
    slope = np.polyfit(np.log(1.0 / np.array(steps)), np.log(errors), 1)[0]
    assert 0.8 < slope < 1.25, f"errors {errors}, slope {slope:.2f}"


def test_sample_prior_draws_the_gaussian_prior(key):
    """Unconditional reverse diffusion of an analytic prior reproduces its moments."""
    from bayesnoise.samplers.prior_draws import sample_prior

    prior = bn.GaussianPrior((3,), bn.VPSDE(), mean=0.5, variance=jnp.array([0.04, 0.25, 1.0]))
    draws = np.asarray(sample_prior(prior, key, 4000, num_steps=100))
    np.testing.assert_allclose(draws.mean(0), 0.5, atol=4 * np.sqrt(1.0 / 4000))
    np.testing.assert_allclose(draws.var(0), [0.04, 0.25, 1.0], rtol=4 * np.sqrt(2 / 4000))
