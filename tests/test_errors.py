"""Bad input gets one clear error each (CONVENTIONS 6), and nothing is left half-written."""

import jax
import numpy as np
import pytest
from gaussian_problems import SDE

import bayesnoise as bn
from bayesnoise import operators
from bayesnoise.cli import main

PRIOR = bn.GaussianPrior((4, 4, 1), SDE, variance=0.5)
MODEL = bn.joint_model(PRIOR, bn.sinusoidal_noise_prior((4, 4, 1), 0.1, SDE), measurement_std=0.1)
GOOD_Y = np.zeros((4, 4, 1), np.float32)


def test_nan_in_observation():
    bad = GOOD_Y.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="observation must be finite. Got 1 NaN or infinite"):
        bn.sample(MODEL, bad, progress=False)


def test_observation_shape_differs_from_the_operator_output():
    with pytest.raises(ValueError, match=r"observation must have the model's observation shape"):
        bn.sample(MODEL, np.zeros((5, 4)), progress=False)


def test_operator_input_shape_differs_from_the_prior():
    with pytest.raises(ValueError, match=r"signal_operator must take signals of the prior's shape"):
        bn.joint_model(PRIOR, signal_operator=operators.Identity((3, 3, 1)))


def test_signal_and_noise_outputs_must_agree():
    matrix = operators.random_gaussian_matrix((4, 4, 1), 8, key=jax.random.key(0))
    with pytest.raises(ValueError, match="must map to the same observation shape"):
        bn.joint_model(PRIOR, PRIOR, signal_operator=matrix)


@pytest.mark.parametrize(
    ("sigma", "error", "message"),
    [
        (0.0, ValueError, r"measurement_std must be finite and > 0. Got 0.0"),
        (-1.0, ValueError, r"measurement_std must be finite and > 0. Got -1.0"),
        (float("nan"), ValueError, r"measurement_std must be finite and > 0. Got nan"),
        (float("inf"), ValueError, r"measurement_std must be finite and > 0. Got inf"),
        (np.float32(-0.5), ValueError, r"measurement_std must be finite and > 0. Got .*-0.5"),
        (
            np.array([[0.1, 0.0], [np.inf, 0.2]]),
            ValueError,
            r"finite and > 0 in every element. Got 2 of 4 elements that are not \(first: 0.0\)",
        ),
        (np.array([]), ValueError, r"finite and > 0 in every element. Got 0 of 0"),
        (True, TypeError, r"measurement_std must be a number or an array of numbers. Got bool"),
        ("0.1", TypeError, r"measurement_std must be a number or an array of numbers. Got str"),
        (np.array(["a"]), TypeError, r"measurement_std must hold real numbers. Got dtype <U1"),
    ],
)
def test_measurement_std_must_be_finite_and_positive(sigma, error, message):
    with pytest.raises(error, match=message):
        bn.joint_model(PRIOR, measurement_std=sigma)


def test_measurement_std_accepts_positive_arrays():
    per_pixel = np.full((4, 4, 1), 0.1)
    assert bn.joint_model(PRIOR, measurement_std=per_pixel).observation_shape == (4, 4, 1)


@pytest.mark.parametrize("rate", [0.0, float("inf"), float("nan"), None, True])
def test_photon_rate_must_be_finite_and_positive(rate):
    with pytest.raises(ValueError, match=r"photon_rate must be a positive number, and finite"):
        bn.joint_model(PRIOR, likelihood="poisson", photon_rate=rate)


def test_priors_must_share_an_sde():
    other = bn.GaussianPrior((4, 4, 1), bn.VESDE(), variance=0.5)
    with pytest.raises(ValueError, match="must be diffused by the same SDE"):
        bn.joint_model(PRIOR, other)


def test_unknown_sampler_lists_the_known_ones():
    with pytest.raises(ValueError, match=r"sampler must be one of \['annealed_langevin', "):
        bn.sample(MODEL, GOOD_Y, sampler="nuts", progress=False)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_chains": 0}, "num_chains must be a positive integer"),
        ({"num_steps": 2.5}, "num_steps must be a positive integer"),
        ({"start_time": 1.5}, r"start_time must be in \(0, 1\]"),
        ({"loop": "fori"}, "loop must be one of"),
        ({"seed": -1}, r"seed must be an integer in \[0, 2\*\*32\)"),
        ({"seed": 1.5}, r"seed must be an integer in \[0, 2\*\*32\)"),
    ],
)
def test_bad_driver_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        bn.sample(MODEL, GOOD_Y, progress=False, **kwargs)


def test_gaussian_prior_checks_its_covariance():
    with pytest.raises(ValueError, match=r"covariance must have shape \(prod\(shape\)"):
        bn.GaussianPrior((2, 2), SDE, covariance=np.eye(3))
    with pytest.raises(ValueError, match="covariance must be positive definite"):
        bn.GaussianPrior((2,), SDE, covariance=np.array([[1.0, 2.0], [2.0, 1.0]]))


def test_model_file_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        bn.load_model(tmp_path / "absent.py")


def test_model_file_without_model(tmp_path):
    path = tmp_path / "empty_model.py"
    path.write_text("x = 1\n")
    with pytest.raises(ValueError, match="must define a top-level function named 'model'"):
        bn.load_model(path)


def test_model_file_raising_on_import(tmp_path):
    path = tmp_path / "broken_model.py"
    path.write_text("raise KeyError('no weights here')\n")
    with pytest.raises(RuntimeError, match="raised KeyError on import: 'no weights here'"):
        bn.load_model(path)


def test_cli_unwritable_output_leaves_nothing(tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    observation = tmp_path / "y.npy"
    np.save(observation, GOOD_Y)
    code = main(
        ["sample", "models/gaussian_toy.py", "--observation", str(observation)]
        + ["--out", str(blocker / "run")]
    )
    assert code == 2
    assert "output directory" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "y.npy"]


def test_cli_bad_observation_shape_writes_nothing(tmp_path, capsys):
    observation = tmp_path / "y.npy"
    np.save(observation, np.zeros((3, 3)))
    out = tmp_path / "run"
    code = main(
        ["sample", "models/gaussian_toy.py", "--observation", str(observation)]
        + ["--out", str(out)]
    )
    assert code == 2
    error = capsys.readouterr().err
    assert "--observation" in error and "must have the model's observation shape" in error
    assert "Got (3, 3)" in error
    assert list(out.iterdir()) == []
