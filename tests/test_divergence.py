"""Divergence judged by the scale of the problem, and observations float32 cannot hold."""

import numpy as np
import pytest
from gaussian_problems import observation_of
from test_contracts import JOINT

import bayesnoise as bn

RUNAWAY = {"guidance_weight": 3.0}  # Algorithm 1 with lambda = mu = 3: |x| ~ 1.6e3, finite


def run(divergence_bound=None, options=RUNAWAY, observation=None):
    return bn.sample(
        JOINT,
        observation_of(JOINT) if observation is None else observation,
        sampler="data_consistency",
        sampler_options=options,
        num_chains=2,
        num_draws=2,
        num_steps=6,
        progress=False,
        divergence_bound=divergence_bound,
    )


def test_runaway_but_finite_trajectories_are_flagged_by_the_automatic_bound():
    """The former fixed bound (1e6) let |x| ~ 1e3 through on data of scale ~1."""
    lenient = run(divergence_bound=1e6)
    x = np.asarray(lenient.posterior["x"])
    assert not np.asarray(lenient.sample_stats["diverging"]).any()
    assert np.all(np.isfinite(x)) and np.max(np.abs(x)) > 1e3

    tree = run()
    observation = observation_of(JOINT)
    expected = 100.0 * max(1.0, float(np.max(np.abs(observation))))
    assert tree.posterior.attrs["divergence_bound"] == pytest.approx(expected)
    assert np.asarray(tree.sample_stats["diverging"]).all()
    assert np.isnan(np.asarray(tree.posterior["x"])).all()
    assert bn.summarize(tree)["num_diverged"] == 4


def test_healthy_run_is_not_flagged_and_records_its_bound():
    tree = run(options={"guidance_weight": 0.5})
    assert not np.asarray(tree.sample_stats["diverging"]).any()
    assert tree.sample_stats.attrs["divergence_bound"] > 100.0


def test_the_bound_scales_with_the_observation():
    """Data 1e4 times larger: the same sampler is healthy, and the bound follows."""
    tree = run(options={"guidance_weight": 0.5}, observation=1e4 * observation_of(JOINT))
    assert tree.posterior.attrs["divergence_bound"] > 1e5


@pytest.mark.parametrize("bound", [0.0, -1.0, float("inf"), "10"])
def test_bad_divergence_bound_is_refused(bound):
    with pytest.raises(ValueError, match=r"divergence_bound must be a positive finite number"):
        run(divergence_bound=bound)


def test_observation_that_overflows_float32_is_refused():
    """y ~ 1e30: the residual's square overflows and the guidance silently vanished."""
    huge = np.full_like(observation_of(JOINT), 1e30)
    with pytest.raises(
        ValueError,
        match=r"observation must have max \|value\| <= 5\.33e\+15 .* of its 12 values "
        r"overflows float32\)\. Got max \|value\| = 1e\+30",
    ):
        run(observation=huge)
