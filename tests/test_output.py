"""The DataTree follows ArviZ's conventions, so arviz-stats and arviz-plots work unchanged."""

import matplotlib
import numpy as np
import pytest
from gaussian_problems import SDE, observation_of
from test_contracts import JOINT

import bayesnoise as bn

VECTOR = bn.joint_model(
    bn.GaussianPrior((3,), SDE, mean=0.2, variance=0.3),
    bn.GaussianPrior((3,), SDE, variance=0.01),
    measurement_std=0.05,
)


def sample(model, observation, **kwargs):
    settings = {"num_chains": 2, "num_draws": 4, "num_steps": 6, "progress": False}
    return bn.sample(model, observation, **(settings | kwargs))


@pytest.fixture(scope="module")
def image_tree():
    return sample(JOINT, np.stack([observation_of(JOINT, seed) for seed in range(2)]))


def test_named_dimensions_shared_by_x_n_and_y(image_tree):
    event = ("height", "width", "channel")
    for name in ("x", "n"):
        assert image_tree.posterior[name].dims == ("chain", "draw", "image", *event)
    assert image_tree.observed_data["y"].dims == ("image", *event)
    assert image_tree.posterior_predictive["y"].dims == ("chain", "draw", "image", *event)
    assert sample(VECTOR, np.zeros(3, np.float32)).posterior["x"].dims == (
        "chain",
        "draw",
        "element",
    )


def test_latents_of_other_sizes_get_their_own_dimension_names():
    model = bn.joint_model(
        bn.GaussianPrior((4, 3, 1), SDE, mean=0.2, variance=0.3),
        bn.GaussianPrior((5,), SDE, variance=0.01),
        signal_operator=bn.operators.random_gaussian_matrix((4, 3, 1), 5, key=_key()),
        measurement_std=0.05,
    )
    tree = sample(model, np.zeros(5, np.float32))
    assert tree.posterior["x"].dims[2:] == ("height", "width", "channel")
    assert tree.posterior["n"].dims[2:] == ("element",)
    assert tree.observed_data["y"].dims == ("element",)


def _key():
    import jax

    return jax.random.key(0)


def test_sample_stats_use_arviz_names(image_tree):
    stats = image_tree.sample_stats
    assert stats["diverging"].dims == ("chain", "draw", "image")
    assert stats["diverging"].dtype == bool
    np.testing.assert_array_equal(stats["diverged"], stats["diverging"])  # former name


def test_constant_data_holds_the_measurement_std_and_time_grid(image_tree):
    constant = image_tree.constant_data
    np.testing.assert_allclose(constant["measurement_std"], 0.05)
    assert constant["measurement_std"].dims == image_tree.observed_data["y"].dims
    np.testing.assert_allclose(constant["time_grid"][[0, -1]], [1.0, 0.0])


def test_posterior_predictive_is_the_prediction_plus_the_likelihood_noise():
    """y = x + n + eps: y_rep - (x + n) has the measurement std."""
    tree = sample(JOINT, observation_of(JOINT), num_chains=4, num_draws=25)
    predicted = tree.posterior["x"] + tree.posterior["n"]
    noise = np.asarray(tree.posterior_predictive["y"] - predicted)
    assert np.std(noise) == pytest.approx(0.05, rel=0.1)
    assert abs(np.mean(noise)) < 5 * 0.05 / np.sqrt(noise.size)


def test_diverged_draws_are_nan_in_the_posterior_predictive():
    tree = sample(
        JOINT,
        observation_of(JOINT),
        sampler="data_consistency",
        sampler_options={"guidance_weight": 1e6},
    )
    assert np.isnan(np.asarray(tree.posterior_predictive["y"])).all()


def test_arviz_plots_draws_from_a_sampled_tree(tmp_path):
    """Smoke: arviz-plots imports with the installed matplotlib and draws a PPC and a
    posterior plot from the DataTree as it comes (Agg backend)."""
    matplotlib.use("Agg")
    import arviz_plots

    tree = sample(VECTOR, np.array([0.1, 0.5, 0.3], np.float32))
    arviz_plots.plot_dist(tree, var_names=["x"], backend="matplotlib")
    plot = arviz_plots.plot_ppc_dist(tree, num_samples=8, backend="matplotlib")
    plot.savefig(tmp_path / "ppc.png")
    assert (tmp_path / "ppc.png").stat().st_size > 0
