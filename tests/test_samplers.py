"""The sampler redesign's promises: one compilation per shape, one option vocabulary validated
per sampler, compositions, honest evaluation counts, solver reporting, and sharding."""

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from gaussian_problems import SDE, observation_of

import bayesnoise as bn
from bayesnoise.inference import TRACE_COUNTS


def toy(mean=0.2, variance=0.3, noise_std=0.1):
    signal = bn.GaussianPrior((4, 3, 1), SDE, mean=mean, variance=variance)
    noise = bn.sinusoidal_noise_prior((4, 3, 1), noise_std, SDE, period=4.0)
    return bn.joint_model(signal, noise, measurement_std=0.05)


JOINT = toy()


def run(model, sampler="dps", options=None, **kwargs):
    settings = {"num_chains": 2, "num_draws": 2, "num_steps": 4, "seed": 0, "progress": False}
    settings.update(kwargs)
    return bn.sample(
        model, observation_of(JOINT), sampler=sampler, sampler_options=options, **settings
    )


def test_two_models_of_equal_shapes_share_one_compilation():
    """Networks and prior moments are inputs of the jitted step, not compiled-in constants."""
    run(toy(), "pigdm")
    before = TRACE_COUNTS["pigdm"]
    tree = run(toy(mean=0.7, variance=0.05, noise_std=0.3), "pigdm")
    assert TRACE_COUNTS["pigdm"] == before
    assert np.all(np.isfinite(np.asarray(tree.posterior["x"])))


def test_integer_and_float_option_values_do_not_recompile():
    run(JOINT, "ddim_dps", {"guidance_weight": 1, "eta": 0})
    before = TRACE_COUNTS["ddim_dps"]
    run(JOINT, "ddim_dps", {"guidance_weight": 2.5, "eta": 0.5})
    run(JOINT, "ddim_dps", {"guidance_weight": {"x": 3, "n": 0.5}, "eta": 1})
    assert TRACE_COUNTS["ddim_dps"] == before


def test_options_change_the_samples():
    first = np.asarray(run(JOINT, "ddim_dps", {"eta": 0.0}).posterior["x"])
    second = np.asarray(run(JOINT, "ddim_dps", {"eta": 1.0}).posterior["x"])
    assert not np.allclose(first, second)


@pytest.mark.parametrize(
    ("sampler", "options", "message"),
    [
        (
            "dps",
            {"step_sizes": 0.5},
            r"'dps' does not take option\(s\) \['step_sizes'\]. "
            r"Valid options: guidance_weight\.",
        ),
        ("dps", {"eta": 0.5}, r"does not take option\(s\) \['eta'\]"),
        (
            "pigdm",
            {"signal_to_noise": 0.1},
            r"Valid options: cg_max_steps, cg_tolerance, "
            r"covariance, guidance_weight",
        ),
        ("dps", {"guidance_weight": -1.0}, r"'guidance_weight' must be >= 0. Got -1.0"),
        ("dps", {"guidance_weight": {"x": 1.0, "z": 1.0}}, r"sites \['z'\] that the model"),
        ("ddim_dps", {"eta": 2.0}, r"'eta' must be in \[0, 1\]. Got 2.0"),
        ("predictor_corrector", {"corrector_steps": 1.5}, r"integer >= 1. Got 1.5"),
        ("pigdm", {"covariance": "full"}, r"one of \('tweedie', 'scalar'\). Got 'full'"),
        ("pigdm", {"cg_tolerance": float("nan")}, r"'cg_tolerance' must be finite"),
        ("dps", {"guidance_weight": "big"}, r"'guidance_weight' must be a number. Got 'big'"),
    ],
)
def test_options_are_validated_per_sampler(sampler, options, message):
    with pytest.raises((ValueError, TypeError), match=message):
        run(JOINT, sampler, options)


def test_renamed_sampler_says_what_it_became():
    with pytest.raises(ValueError, match=r"'pseudo_inverse'.*Algorithm 1, 'data_consistency'"):
        run(JOINT, "projection")


def test_composition_by_name_equals_the_named_sampler():
    composed = bn.sampler("ddim", guidance="dps")
    first = np.asarray(run(JOINT, composed, {"eta": 0.5}).posterior["x"])
    named = np.asarray(run(JOINT, "ddim_dps", {"eta": 0.5}).posterior["x"])
    np.testing.assert_array_equal(first, named)


def test_bad_compositions_are_refused():
    with pytest.raises(ValueError, match="integrator must be one of"):
        bn.sampler("rk4", guidance="dps")
    with pytest.raises(ValueError, match="guidance must be one of"):
        bn.sampler("ddim", guidance="magic")
    with pytest.raises(ValueError, match="cannot take the data steps of guidance DataConsistency"):
        bn.sampler("heun", guidance="data_consistency")
    with pytest.raises(ValueError, match=r"does not take option\(s\) \['eta'\]"):
        bn.sampler("euler_maruyama", guidance="dps", eta=1.0)


def test_network_evaluation_counts():
    samplers = bn.SAMPLERS
    assert samplers["dps"].network_evaluations(25) == 25
    assert samplers["dps"].vjps(25) == 25
    assert samplers["diffpir"].vjps(25) == 0
    assert samplers["heun_pigdm"].network_evaluations(13) == 25  # last step is Euler
    assert samplers["predictor_corrector"].network_evaluations(10, {"corrector_steps": 2}) == 30
    assert samplers["annealed_langevin"].network_evaluations(10) == 60
    tree = run(JOINT, "heun_pigdm", num_steps=5)
    assert tree.posterior.attrs["network_evaluations_per_prior"] == 9


def test_unconverged_solves_are_reported():
    tree = run(JOINT, "pigdm", {"cg_max_steps": 1, "cg_tolerance": 1e-9})
    assert int(tree.sample_stats["solver_failures"].sum()) > 0
    tree = run(JOINT, "pigdm")
    assert tree.sample_stats["solver_steps_max"].max() > 0


SHARDED_RUN = textwrap.dedent(
    """
    import sys, numpy as np, jax
    sys.path.insert(0, {tests!r})
    from test_samplers import run, JOINT
    from gaussian_problems import observation_of
    import bayesnoise as bn
    assert jax.device_count() == 2
    observations = np.stack([observation_of(JOINT, seed) for seed in range(3)])
    tree = bn.sample(JOINT, observations, sampler="ddim_dps", num_chains=1, num_draws=1,
                     num_steps=4, seed=3, progress=False)
    np.save({out!r}, np.asarray(tree.posterior["x"]))
    """
)


@pytest.mark.parametrize("sampler", ["ddim_dps"])
def test_sharding_over_two_devices_gives_the_same_samples(tmp_path, sampler):
    """3 images x 1 trajectory over 2 (host) devices: padded to 4 rows, same numbers."""
    out = tmp_path / "sharded.npy"
    script = SHARDED_RUN.format(tests=os.path.dirname(__file__), out=str(out))
    environment = {**os.environ, "XLA_FLAGS": "--xla_force_host_platform_device_count=2"}
    subprocess.run([sys.executable, "-c", script], check=True, env=environment, timeout=300)
    observations = np.stack([observation_of(JOINT, seed) for seed in range(3)])
    tree = bn.sample(
        JOINT,
        observations,
        sampler=sampler,
        num_chains=1,
        num_draws=1,
        num_steps=4,
        seed=3,
        progress=False,
    )
    np.testing.assert_allclose(np.load(out), np.asarray(tree.posterior["x"]), rtol=1e-5, atol=1e-6)
