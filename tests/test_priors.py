"""Priors: exact Gaussian scores, the sinusoidal profile, and the network wrapper carried into
NumPyro (log-density gradient = score, Hessian through the network)."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gaussian_problems import SDE, observation_of
from test_posterior import assert_matches_gaussian, draws

import bayesnoise as bn
from bayesnoise.reference import gaussian_posterior


class GaussianScaledScore(eqx.Module):
    """A tiny 'network' predicting s_t * score of N(mean, variance I): a wrapper test double."""

    mean: jax.Array
    log_variance: jax.Array

    def __call__(self, x, t):
        a_t, s_t = SDE.marginal_mean_coefficient(t), SDE.marginal_std(t)
        variance = jnp.exp(self.log_variance)
        return -s_t * (x - a_t * self.mean) / (a_t**2 * variance + s_t**2)


def network_prior(shape, mean, variance):
    network = GaussianScaledScore(jnp.full(shape, mean), jnp.log(jnp.asarray(variance)))
    return bn.ScoreNetPrior(network=network, sde=SDE, shape=shape)


@pytest.mark.parametrize("time", [0.01, 0.3, 0.9])
def test_gaussian_score_is_the_gradient_of_its_log_density(time, key):
    covariance = np.array([[1.0, 0.4, 0.1], [0.4, 0.5, 0.2], [0.1, 0.2, 0.3]])
    for prior in [
        bn.GaussianPrior((3,), SDE, mean=0.3, covariance=covariance),
        bn.GaussianPrior((3,), SDE, mean=-0.2, variance=jnp.array([0.1, 1.0, 2.0])),
    ]:
        x = jax.random.normal(key, (3,))
        np.testing.assert_allclose(
            jax.grad(prior.log_prob)(x, time), prior.score(x, time), rtol=1e-4, atol=1e-5
        )


def test_sinusoidal_std_profile():
    std = np.asarray(bn.sinusoidal_std((32, 4, 1), average_std=0.2))
    rows = std[:, 0, 0]
    np.testing.assert_allclose(std.mean(), 0.2, rtol=1e-5)
    expected = np.exp(np.sin(2 * np.pi * np.arange(32) / 16))
    np.testing.assert_allclose(rows / rows[0], expected, rtol=1e-5)


def test_network_prior_carries_its_score_and_hessian_into_numpyro():
    network = network_prior((3,), 0.5, 0.2)
    exact = bn.GaussianPrior((3,), SDE, mean=0.5, variance=0.2)
    distribution = bn.ScorePriorDistribution(network, 0.4)
    x = jnp.array([0.1, -0.3, 0.8])
    assert float(distribution.log_prob(x)) == 0.0  # no closed form: value unknown
    np.testing.assert_allclose(jax.grad(distribution.log_prob)(x), exact.score(x, 0.4), rtol=1e-5)
    hessian_vector = jax.jvp(jax.grad(distribution.log_prob), (x,), (jnp.ones(3),))[1]
    expected = jax.jvp(lambda v: exact.score(v, 0.4), (x,), (jnp.ones(3),))[1]
    np.testing.assert_allclose(hessian_vector, expected, rtol=1e-5)


def test_network_priors_sample_the_exact_posterior():
    """Joint PiGDM with two network priors (whose scores equal Gaussian ones) matches the
    closed-form posterior of the analytic model: the wrapper path is exact end to end."""
    shape = (6,)
    analytic = bn.joint_model(
        bn.GaussianPrior(shape, SDE, mean=0.5, variance=0.2),
        bn.GaussianPrior(shape, SDE, mean=0.0, variance=0.05),
        measurement_std=0.05,
    )
    learned = bn.joint_model(
        network_prior(shape, 0.5, 0.2), network_prior(shape, 0.0, 0.05), measurement_std=0.05
    )
    observation = observation_of(analytic)
    tree = bn.sample(
        learned, observation, num_chains=8, num_draws=128, num_steps=200, seed=4, progress=False
    )
    for name, (mean, covariance) in gaussian_posterior(analytic, observation).items():
        assert_matches_gaussian(draws(tree, name), mean, covariance)


def test_poisson_shot_noise_likelihood_is_exact_under_pigdm():
    """DPS's shot-noise model y ~ N(mean, y / rate) is Gaussian given y: PiGDM stays exact."""
    shape = (5,)
    model = bn.joint_model(
        bn.GaussianPrior(shape, SDE, mean=2.0, variance=0.3),
        bn.GaussianPrior(shape, SDE, mean=0.0, variance=0.1),
        likelihood="poisson",
        photon_rate=20.0,
    )
    observation = np.array([1.5, 2.0, 2.5, 3.0, 0.5], np.float32)
    variance = (
        bn.target.posterior_target(model)
        .observation_distribution(
            {"x": jnp.zeros(shape), "n": jnp.zeros(shape)}, jnp.asarray(observation)
        )
        .variance
    )
    np.testing.assert_allclose(variance, observation / 20.0, rtol=1e-6)
    tree = bn.sample(
        model, observation, num_chains=8, num_draws=128, num_steps=200, seed=5, progress=False
    )
    for name, (mean, covariance) in gaussian_posterior(model, observation).items():
        assert_matches_gaussian(draws(tree, name), mean, covariance)


def test_poisson_needs_a_photon_rate():
    with pytest.raises(ValueError, match="photon_rate must be a positive number"):
        bn.joint_model(bn.GaussianPrior((2,), SDE), likelihood="poisson")
    with pytest.raises(ValueError, match="likelihood must be one of"):
        bn.joint_model(bn.GaussianPrior((2,), SDE), likelihood="laplace")
