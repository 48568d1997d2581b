"""Calibration: the PIT and coverage functions, and simulation-based calibration (Talts et al.)
of the samplers that are exact given exact scores, on the closed-form Gaussian problems."""

import jax
import numpy as np
import pytest
from gaussian_problems import PROBLEMS
from scipy.stats import binom, chisquare
from test_posterior import EXACT_SAMPLERS

import bayesnoise as bn
from bayesnoise.calibration import (
    fit_spread_scale,
    interval_coverage,
    randomised_pit,
    reliability_curve,
    scale_posterior_spread,
    scale_spread,
    truth_ranks,
)


def _calibrated(num_pairs, num_draws, size, draw_std=1.0, seed=0):
    """Pairs whose truth and draws come from the same N(mu, 1) (draw_std = 1: calibrated)."""
    rng = np.random.default_rng(seed)
    means = rng.normal(size=(num_pairs, size))
    truth = means + rng.normal(size=(num_pairs, size))
    draws = means[:, None] + draw_std * rng.normal(size=(num_pairs, num_draws, size))
    return draws, truth


def _binomial_bounds(probability, count, tail=1e-4):
    low, high = binom.interval(1 - tail, count, probability)
    return low / count, high / count


def test_coverage_of_calibrated_draws_is_nominal_for_few_draws():
    """With 4 draws per pair the randomised PIT is still exact (sample quantiles are not)."""
    draws, truth = _calibrated(num_pairs=4000, num_draws=4, size=1)
    pit = np.concatenate(
        [randomised_pit(d, t, seed=i) for i, (d, t) in enumerate(zip(draws, truth, strict=True))]
    )
    for level, observed in zip((0.5, 0.9), interval_coverage(pit, (0.5, 0.9)), strict=True):
        low, high = _binomial_bounds(level, len(pit))
        assert low <= observed <= high, (level, observed)


def test_sample_quantiles_of_few_draws_undercover():
    """The bias the PIT avoids: the 5-95% range of 8 calibrated draws covers far less than 90%."""
    draws, truth = _calibrated(num_pairs=4000, num_draws=8, size=1)
    low, high = np.quantile(draws, [0.05, 0.95], axis=1)
    covered = np.mean((truth >= low) & (truth <= high))
    assert 0.68 < covered < 0.76


def test_overdispersed_draws_overcover_and_the_fitted_scale_undoes_it():
    pairs = list(zip(*_calibrated(num_pairs=300, num_draws=8, size=16, draw_std=2.0), strict=True))
    draws = np.concatenate([d for d, _ in pairs], axis=1)
    truth = np.concatenate([t for _, t in pairs])
    curve = reliability_curve(draws, truth, levels=(0.5, 0.9))
    assert curve["observed"][0] > 0.6 and curve["observed"][1] > 0.95
    scale, coverage = fit_spread_scale(pairs)
    assert 0.4 < scale < 0.62  # the ideal scale is 1/2 (draws twice as wide)
    assert abs(coverage[0] - 0.5) < 0.03 and abs(coverage[1] - 0.9) < 0.03


def test_ties_are_broken_at_random():
    """Clipped pixels (draws and truth all 0) get uniform ranks, not rank 0."""
    ranks = truth_ranks(np.zeros((9, 5000)), np.zeros(5000), seed=1)
    counts = np.bincount(ranks, minlength=10)
    assert chisquare(counts).pvalue > 1e-4


def test_scale_spread_keeps_the_mean():
    draws = np.random.default_rng(0).normal(size=(6, 3))
    scaled = scale_spread(draws, 0.3)
    np.testing.assert_allclose(scaled.mean(0), draws.mean(0), atol=1e-12)
    np.testing.assert_allclose(scaled.std(0), 0.3 * draws.std(0), rtol=1e-12)


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match=r"draws must have shape \(num_draws, \*truth.shape\)"):
        randomised_pit(np.zeros((4, 3)), np.zeros(2))
    with pytest.raises(ValueError, match="levels must be probabilities in"):
        interval_coverage(np.full(5, 0.5), (0.5, 1.0))


# Simulation-based calibration: truth ~ prior, y ~ likelihood, S draws from the sampler; the
# rank of the truth among the draws is uniform on {0..S} per element iff the sampler is exact.
NUM_REPLICATES, NUM_SBC_DRAWS = 400, 19  # 20 rank bins, 20 expected per bin
SBC_CASES = ["pigdm", "ddpm_pigdm", "ddim_pigdm", "heun_pigdm", "predictor_corrector"]


def _prior_predictive(model, num, seed):
    """(truths, observations): num draws of (x, n) from the priors and y from the likelihood."""
    target = bn.target.posterior_target(model)
    keys = jax.random.split(jax.random.key(seed), len(target.priors) + 1)
    truths = {
        name: jax.vmap(lambda k, prior=prior: prior.sample(k, 0.0))(jax.random.split(key, num))
        for (name, prior), key in zip(target.priors.items(), keys[1:], strict=True)
    }
    predicted = jax.vmap(target.predicted_observation)(truths)
    observations = predicted + 0.05 * jax.random.normal(keys[0], predicted.shape)
    return {k: np.asarray(v) for k, v in truths.items()}, np.asarray(observations)


@pytest.mark.slow
@pytest.mark.parametrize("sampler", SBC_CASES)
def test_simulation_based_calibration(sampler):
    model = PROBLEMS["coloured_denoising"]
    truths, observations = _prior_predictive(model, NUM_REPLICATES, seed=5)
    options, num_steps = EXACT_SAMPLERS[sampler]
    tree = bn.sample(
        model,
        observations,
        sampler=sampler,
        sampler_options=options,
        num_chains=1,
        num_draws=NUM_SBC_DRAWS,
        num_steps=num_steps,
        seed=3,
        progress=False,
    )
    assert int(tree.sample_stats["diverging"].sum()) == 0
    num_elements = sum(v[0].size for v in truths.values())
    for name, truth in truths.items():
        draws = np.asarray(tree.posterior[name])[0]  # (draw, replicate, ...)
        ranks = np.stack(
            [truth_ranks(draws[:, r], truth[r], seed=r) for r in range(NUM_REPLICATES)]
        ).reshape(NUM_REPLICATES, -1)
        for element in range(ranks.shape[1]):
            counts = np.bincount(ranks[:, element], minlength=NUM_SBC_DRAWS + 1)
            pvalue = chisquare(counts).pvalue
            assert pvalue > 1e-3 / num_elements, (name, element, counts.tolist())


def test_scale_posterior_spread_keeps_means_and_records_the_scale():
    model = PROBLEMS["coloured_denoising"]
    observation = _prior_predictive(model, 1, seed=0)[1][0]
    tree = bn.sample(model, observation, num_chains=2, num_draws=3, num_steps=5, progress=False)
    scaled = scale_posterior_spread(tree, 0.5)
    for name in ("x", "n"):
        assert scaled.posterior[name].dims == tree.posterior[name].dims
        before, after = np.asarray(tree.posterior[name]), np.asarray(scaled.posterior[name])
        np.testing.assert_allclose(after.mean((0, 1)), before.mean((0, 1)), atol=1e-6)
        np.testing.assert_allclose(after.std((0, 1)), 0.5 * before.std((0, 1)), rtol=1e-5)
    assert bn.summarize(scaled)["spread_scale"] == 0.5
    assert "spread_scale" not in tree.posterior.attrs  # the input is left as it was
    with pytest.raises(ValueError, match="spread scale must be a positive finite number"):
        scale_posterior_spread(tree, 0.0)


def test_scale_posterior_spread_widens_a_forward_model_parameter_only_when_named():
    from test_parameters import simulated, unknown_mixing_model

    model = unknown_mixing_model()
    y, _, _ = simulated(model, seed=1)
    tree = bn.sample(model, y, num_chains=2, num_draws=4, num_steps=5, progress=False)
    alpha = np.asarray(tree.posterior["alpha"])
    unnamed = scale_posterior_spread(tree, 0.5)
    np.testing.assert_array_equal(unnamed.posterior["alpha"], alpha)
    scaled = scale_posterior_spread(tree, 1.0, parameter_scales={"alpha": 2.0})
    widened = np.asarray(scaled.posterior["alpha"])
    np.testing.assert_allclose(widened.mean(), alpha.mean(), rtol=1e-5)
    np.testing.assert_allclose(widened.std(), 2.0 * alpha.std(), rtol=1e-4)
    np.testing.assert_allclose(scaled.posterior["x"], tree.posterior["x"], atol=1e-6)
    assert scaled.posterior.attrs["alpha_spread_scale"] == 2.0
    assert bn.summarize(scaled)["alpha"]["spread_scale"] == 2.0
    with pytest.raises(ValueError, match=r"names \['sigma'\].*Its parameters: \['alpha'\]"):
        scale_posterior_spread(tree, 1.0, parameter_scales={"sigma": 2.0})
    with pytest.raises(ValueError, match="spread scale must be a positive finite number"):
        scale_posterior_spread(tree, 1.0, parameter_scales={"alpha": -1.0})
