"""Low-rank Gaussian priors (stripes, moiré): exact scores against GaussianPrior's dense ones,
and the noise generators against the covariance the priors assume."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gaussian_problems import SDE

import bayesnoise as bn
from bayesnoise.priors import moire_factor, stripe_factor

STRIPES = {"column_std": 0.3, "pixel_std": 0.05, "row_gain": 1.0 + 0.3 * np.sin(np.arange(6))}
MOIRE = {"frequencies": [[0.11, 0.23], [-0.19, 0.07]], "amplitudes": [0.2, 0.1], "pixel_std": 0.05}


def low_rank_priors():
    return [
        bn.stripe_noise_prior((6, 5, 1), sde=SDE, **STRIPES),
        bn.moire_noise_prior((6, 5), sde=SDE, **MOIRE),
        bn.LowRankGaussianPrior((7,), SDE, np.arange(14.0).reshape(7, 2) / 10, 0.2, mean=0.3),
    ]


@pytest.mark.parametrize("time", [0.01, 0.3, 0.9])
@pytest.mark.parametrize("index", range(3))
def test_low_rank_score_and_density_match_the_dense_gaussian(index, time, key):
    prior = low_rank_priors()[index]
    dense = bn.GaussianPrior(
        prior.shape, SDE, mean=prior.mean, covariance=np.asarray(prior.covariance_matrix())
    )
    x = jax.random.normal(key, prior.shape)
    np.testing.assert_allclose(prior.score(x, time), dense.score(x, time), rtol=2e-3, atol=1e-3)
    np.testing.assert_allclose(prior.log_prob(x, time), dense.log_prob(x, time), rtol=1e-4)
    np.testing.assert_allclose(
        jax.grad(prior.log_prob)(x, time), prior.score(x, time), rtol=1e-3, atol=1e-4
    )


def test_low_rank_draws_have_the_diffused_covariance(key):
    prior = low_rank_priors()[2]
    draws = jax.vmap(lambda k: prior.sample(k, 0.3))(jax.random.split(key, 20_000))
    a_t, s_t = SDE.marginal_mean_coefficient(0.3), SDE.marginal_std(0.3)
    expected = a_t**2 * prior.covariance_matrix() + s_t**2 * jnp.eye(7)
    np.testing.assert_allclose(np.cov(np.asarray(draws).T), expected, atol=0.05 * expected.max())
    np.testing.assert_allclose(draws.mean(0), a_t * 0.3, atol=0.05)


@pytest.mark.parametrize(
    ("sample", "factor", "pixel_std"),
    [
        (
            lambda key: bn.sample_stripe_noise(key, (6, 5, 1), num_samples=40_000, **STRIPES),
            stripe_factor((6, 5, 1), STRIPES["column_std"], STRIPES["row_gain"]),
            STRIPES["pixel_std"],
        ),
        (
            lambda key: bn.sample_moire_noise(key, (6, 5), num_samples=40_000, **MOIRE),
            moire_factor((6, 5), MOIRE["frequencies"], MOIRE["amplitudes"]),
            MOIRE["pixel_std"],
        ),
    ],
    ids=["stripes", "moire"],
)
def test_generated_noise_has_the_prior_covariance(sample, factor, pixel_std, key):
    draws = np.asarray(sample(key)).reshape(40_000, -1)
    expected = factor @ factor.T + pixel_std**2 * np.eye(len(factor))
    standard_error = np.sqrt(
        (expected**2 + np.outer(np.diag(expected), np.diag(expected))) / 40_000
    )
    z = (np.cov(draws.T) - expected) / standard_error
    assert np.abs(z).max() < 5.0


def test_stripe_factor_is_one_scaled_column_per_pattern():
    factor = stripe_factor((3, 2, 1), 0.5, row_gain=[1.0, 2.0, 3.0]).reshape(3, 2, 2)
    np.testing.assert_allclose(factor[:, 0, 0], [0.5, 1.0, 1.5])
    np.testing.assert_allclose(factor[:, 1, 0], 0.0)


def test_structured_noise_errors():
    with pytest.raises(ValueError, match=r"factor must have shape \(prod\(shape\), k\)=\(4, k\)"):
        bn.LowRankGaussianPrior((4,), SDE, np.ones((3, 1)), pixel_std=0.1)
    with pytest.raises(ValueError, match="pixel_std must be a positive finite number"):
        bn.LowRankGaussianPrior((4,), SDE, np.ones((4, 1)), pixel_std=0.0)
    with pytest.raises(ValueError, match=r"row_gain must be a finite array of shape \(height,\)"):
        bn.stripe_noise_prior((4, 3), 0.1, 0.01, SDE, row_gain=[1.0, 2.0])
    with pytest.raises(ValueError, match="column_std must be a positive number"):
        bn.stripe_noise_prior((4, 3), -0.1, 0.01, SDE)
    with pytest.raises(ValueError, match=r"frequencies must have shape \(K, 2\)"):
        bn.moire_noise_prior((4, 3), [0.1, 0.2], [0.1], 0.01, SDE)
    with pytest.raises(ValueError, match="amplitudes must be"):
        bn.moire_noise_prior((4, 3), [[0.1, 0.2]], [0.1, 0.2], 0.01, SDE)
    with pytest.raises(ValueError, match=r"shape must be \(height, width\)"):
        bn.sample_stripe_noise(jax.random.key(0), (4,), 0.1, 0.01)
