"""summarize: the headline diagnostics of independent draws, R-hat/ESS only as secondary."""

import math

import arviz_base
import numpy as np
import pytest

from bayesnoise.diagnostics import summarize


def tree_of(x, diverging=None, failures=None):
    """A DataTree shaped like bn.sample's: x of (chain, draw, element)."""
    diverging = np.zeros(x.shape[:2], bool) if diverging is None else diverging
    stats = {"diverging": diverging, "residual_norm": np.ones(x.shape[:2])}
    if failures is not None:
        stats["solver_failures"] = failures
    return arviz_base.from_dict(
        {"posterior": {"x": x}, "sample_stats": stats},
        dims={"x": ["element"]},
        attrs={"posterior": {"divergence_bound": 100.0}},
    )


def iid(shape, seed=0, sd=2.0):
    return sd * np.random.default_rng(seed).standard_normal(shape)


def test_monte_carlo_errors_of_independent_draws():
    summary = summarize(tree_of(iid((4, 100, 50))))
    x = summary["x"]
    assert x["num_draws_used"] == 400 and x["num_elements"] == 50
    assert x["mcse_mean_median"] == pytest.approx(2.0 / math.sqrt(400), rel=0.1)
    # Gaussian draws: se(sd) = sd / sqrt(2 N)
    assert x["mcse_sd_median"] == pytest.approx(2.0 / math.sqrt(800), rel=0.2)
    assert x["mcse_mean_max"] >= x["mcse_mean_median"]


def test_split_check_passes_for_one_posterior_and_flags_disagreeing_halves():
    draws = iid((4, 100, 50))
    assert summarize(tree_of(draws))["x"]["split_check"]["fraction_beyond_threshold"] == 0.0
    draws[2:] += 3.0  # the second half of the draws comes from another distribution
    check = summarize(tree_of(draws))["x"]["split_check"]
    assert check["fraction_beyond_threshold"] > 0.9
    assert check["draws_per_half"] == [200, 200]
    assert check["threshold_z"] == pytest.approx(3.29, abs=0.01)  # Phi^-1(1 - 0.05 / 100)


def test_diverged_draws_are_counted_and_left_out():
    draws = iid((2, 4, 3))
    diverging = np.zeros((2, 4), bool)
    diverging[1, 1:] = True
    draws[diverging] = np.nan
    failures = np.zeros((2, 4), np.int32)
    failures[0, 0] = 3
    summary = summarize(tree_of(draws, diverging, failures))
    assert summary["num_diverged"] == 3 and summary["x"]["num_draws_used"] == 5
    assert summary["num_trajectories_with_solver_failures"] == 1
    assert summary["divergence_bound"] == 100.0
    assert math.isfinite(summary["x"]["mcse_mean_max"])


def test_rhat_and_ess_are_only_a_labelled_secondary_block():
    summary = summarize(tree_of(iid((4, 10, 3))))
    assert not {"rhat_max", "ess_bulk_min"} & set(summary["x"])
    secondary = summary["dependent_draw_diagnostics"]
    assert secondary["note"].startswith("R-hat and ESS measure the mixing of dependent")
    assert set(secondary["x"]) == {"rhat_median", "rhat_max", "ess_bulk_min", "ess_tail_min"}
