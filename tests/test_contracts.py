"""Contract tests over the sampler registry (CONVENTIONS 8): no recompilation, pytree positions,
batch shapes, determinism, and the python loop and lax.scan drivers agreeing."""

import numpy as np
import pytest
from gaussian_problems import SDE, observation_of

import bayesnoise as bn
from bayesnoise.inference import TRACE_COUNTS, _initial_positions
from bayesnoise.samplers import SAMPLERS

OPTIONS = {
    "pigdm": {},
    "predictor_corrector": {},
    "annealed_langevin": {"steps_per_level": 2},
    "dps": {"guidance_weight": {"x": 0.3}},
    "data_consistency": {"guidance_weight": 0.5},
    "pseudo_inverse": {"guidance_weight": 0.5},
    "ddim_dps": {"guidance_weight": 0.3, "eta": 0.5},
    "ddim_pigdm": {"eta": 0.5},
    "ddpm_pigdm": {},
    "diffpir": {"eta": 0.5},
    "heun_pigdm": {},
    "heun_proximal": {},
}
SIGNAL = bn.GaussianPrior((4, 3, 1), SDE, mean=0.2, variance=0.3)
JOINT = bn.joint_model(
    SIGNAL, bn.sinusoidal_noise_prior((4, 3, 1), 0.1, SDE, period=4.0), measurement_std=0.05
)
SINGLE = bn.joint_model(SIGNAL, measurement_std=0.1)


def run(model, observation, sampler, **kwargs):
    settings = {"num_chains": 2, "num_draws": 3, "num_steps": 6, "seed": 0, "progress": False}
    settings.update(kwargs)
    return bn.sample(
        model, observation, sampler=sampler, sampler_options=OPTIONS[sampler], **settings
    )


def test_registry_is_complete():
    assert set(OPTIONS) == set(SAMPLERS)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_no_recompilation_on_second_call(sampler):
    observation = observation_of(JOINT)
    run(JOINT, observation, sampler)
    before = TRACE_COUNTS[sampler]
    run(JOINT, observation + 0.1, sampler, seed=1)  # new data and seed: same compiled step
    assert TRACE_COUNTS[sampler] == before


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_joint_shapes_for_images_and_chains(sampler):
    observations = np.stack([observation_of(JOINT, seed) for seed in range(3)])
    tree = run(JOINT, observations, sampler)
    for name in ("x", "n"):
        assert tree.posterior[name].shape == (2, 3, 3, 4, 3, 1)
        assert np.all(np.isfinite(tree.posterior[name]))
    assert tree.observed_data["y"].shape == (3, 4, 3, 1)
    assert tree.sample_stats["diverging"].shape == (2, 3, 3)
    assert tree.sample_stats["residual_norm_trace"].shape == (2, 3, 3, 6)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_single_prior_position(sampler):
    """Without a noise prior the position is {"x"}: the Gaussian-noise baseline."""
    tree = run(SINGLE, observation_of(SINGLE), sampler)
    assert list(tree.posterior.data_vars) == ["x"]
    assert tree.posterior["x"].shape == (2, 3, 4, 3, 1)


@pytest.mark.parametrize("sampler", sorted(SAMPLERS))
def test_same_seed_same_samples_and_loop_equals_scan(sampler):
    observation = observation_of(JOINT)
    first = run(JOINT, observation, sampler, loop="python")
    again = run(JOINT, observation, sampler, loop="python")
    scanned = run(JOINT, observation, sampler, loop="scan")
    other = run(JOINT, observation, sampler, loop="python", seed=7)
    x = np.asarray(first.posterior["x"])
    np.testing.assert_array_equal(x, np.asarray(again.posterior["x"]))
    np.testing.assert_allclose(x, np.asarray(scanned.posterior["x"]), rtol=1e-4, atol=1e-5)
    assert not np.allclose(x, np.asarray(other.posterior["x"]))


def test_start_from_intermediate_time_is_the_diffused_observation(key):
    """SDEdit / CCDF: at t0 < 1 each site starts at a_t0 * guess + s_t0 * z, where the guess is
    the minimum-norm solution of x + n = y, i.e. y / 2 for each."""
    observation = observation_of(JOINT)
    target = bn.target.posterior_target(JOINT)
    positions = _initial_positions(target, key, observation[None], 4000, 0.3)
    a_t, s_t = SDE.marginal_mean_coefficient(0.3), SDE.marginal_std(0.3)
    for name in ("x", "n"):
        draws = np.asarray(positions[name][0])
        np.testing.assert_allclose(draws.mean(0), a_t * observation / 2, atol=5 * s_t / 63)
        np.testing.assert_allclose(draws.std(0), s_t, rtol=0.1)
    tree = bn.sample(JOINT, observation, start_time=0.3, num_steps=20, progress=False)
    predicted = np.asarray(tree.posterior["x"]) + np.asarray(tree.posterior["n"])
    assert float(np.mean(np.abs(predicted - observation))) < 0.1


def test_divergent_trajectory_is_reported_not_averaged():
    """A step size that blows up marks trajectories diverged and their draws NaN."""
    observation = observation_of(JOINT)
    tree = bn.sample(
        JOINT,
        observation,
        sampler="data_consistency",
        sampler_options={"guidance_weight": {"x": 1e6, "n": 1e6}},
        num_chains=2,
        num_draws=2,
        num_steps=6,
        progress=False,
    )
    diverged = np.asarray(tree.sample_stats["diverging"])
    assert diverged.all()
    assert np.isnan(np.asarray(tree.posterior["x"])).all()
    assert bn.summarize(tree)["num_diverged"] == 4
