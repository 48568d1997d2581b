"""End to end: the README's main command on the Gaussian toy, with a short run."""

import json
import re
from pathlib import Path

import numpy as np
import pytest
import xarray as xr

from bayesnoise.cli import main


def test_sample_writes_posterior_summary_and_report(tmp_path):
    out = tmp_path / "toy"
    code = main(
        ["sample", "models/gaussian_toy.py", "--steps", "40", "--chains", "2", "--draws", "3"]
        + ["--out", str(out)]
    )
    assert code == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_trajectories"] == 6 and summary["num_diverged"] == 0
    assert summary["metrics"]["x"]["psnr_posterior_mean_db"] > 10
    calibration = summary["metrics"]["x"]["calibration"]  # truth from simulate(): coverage
    assert calibration["num_draws"] == 6 and 0 <= calibration["coverage_central_50"] <= 1
    assert calibration["reliability"]["nominal"][4] == 0.5
    assert "x_calibration.png" in (out / "report.html").read_text()
    tree = xr.open_datatree(out / "posterior.nc", engine="h5netcdf")
    assert tree["posterior"]["x"].shape == (2, 3, 16, 16, 1)
    assert np.all(np.isfinite(tree["posterior"]["x"]))
    html = (out / "report.html").read_text()
    assert "x_mean.png" in html and (out / "n_std.png").is_file()
    assert not list(out.glob("*.tmp"))


@pytest.mark.slow
def test_train_writes_a_loadable_checkpoint(tmp_path):
    """`bayesnoise train` on a tiny .npy dataset writes a checkpoint that loads as a prior."""
    from bayesnoise.checkpoints import load_score_prior

    images = np.random.default_rng(0).uniform(size=(40, 8, 8, 1)).astype(np.float32)
    np.save(tmp_path / "images.npy", images)
    out = tmp_path / "prior.eqx"
    code = main(
        ["train", str(tmp_path / "images.npy"), "--out", str(out), "--steps", "3"]
        + ["--batch-size", "8"]
    )
    assert code == 0
    prior = load_score_prior(out)
    assert prior.shape == (8, 8, 1)
    assert np.all(np.isfinite(prior.score(images[0], 0.5)))


def test_sample_scores_vector_latents_with_rmse(tmp_path):
    """Compressed sensing: the noise lives on a measurement vector, scored by RMSE not PSNR."""
    model_file = tmp_path / "cs_model.py"
    model_file.write_text(
        "import jax\nimport numpy as np\nimport bayesnoise as bn\n"
        "sde = bn.VPSDE()\n"
        "signal = bn.GaussianPrior((8, 8, 1), sde, mean=0.5, variance=0.04)\n"
        "noise = bn.GaussianPrior((16,), sde, variance=0.01)\n"
        "A = bn.operators.random_gaussian_matrix((8, 8, 1), 16, key=jax.random.key(0))\n"
        "model = bn.joint_model(signal, noise, signal_operator=A, measurement_std=0.01)\n"
        "def simulate(seed=0):\n"
        "    x = np.full((8, 8, 1), 0.5, np.float32)\n"
        "    n = np.zeros(16, np.float32)\n"
        "    return np.asarray(A(x)) + n, {'x': x, 'n': n}\n"
    )
    out = tmp_path / "run"
    assert main(["sample", str(model_file), "--steps", "20", "--out", str(out)]) == 0
    metrics = json.loads((out / "summary.json").read_text())["metrics"]
    assert "psnr_posterior_mean_db" in metrics["x"]
    assert metrics["n"]["rmse_posterior_mean"] < 0.5


def test_sample_with_an_unknown_parameter_in_defaults_and_truth(tmp_path):
    """A model file whose defaults hold a ParameterUpdate and whose truth holds alpha: the
    summary records the update, scores alpha, and the report leaves alpha out of its images."""
    model_file = tmp_path / "mixing_model.py"
    model_file.write_text(
        "import numpy as np\nimport numpyro.distributions as dist\nimport bayesnoise as bn\n"
        "from bayesnoise.parameters import ParameterUpdate\n"
        "from bayesnoise.rescaling import RescalingMove, mixing_gains\n"
        "sde = bn.VPSDE()\n"
        "signal = bn.GaussianPrior((8, 8, 1), sde, mean=0.5, variance=0.04)\n"
        "noise = bn.GaussianPrior((8, 8, 1), sde, variance=0.01)\n"
        "model = bn.joint_model(signal, noise, mixing=dist.Beta(2.0, 2.0))\n"
        "defaults = {'parameter_update': ParameterUpdate(rescaling=RescalingMove(mixing_gains))}\n"
        "def simulate(seed=0):\n"
        "    x, n = np.full((8, 8, 1), 0.5, np.float32), np.zeros((8, 8, 1), np.float32)\n"
        "    return 0.7 * x + 0.3 * n, {'x': x, 'n': n, 'alpha': np.float32(0.3)}\n"
    )
    out = tmp_path / "run"
    arguments = ["sample", str(model_file), "--steps", "5", "--chains", "1", "--draws", "2"]
    assert main([*arguments, "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert "RescalingMove" in summary["settings"]["parameter_update"]
    assert "rmse_posterior_mean" in summary["metrics"]["alpha"]
    assert (out / "report.html").is_file() and not (out / "alpha_truth.png").exists()


# Bad inputs: one clear message naming the option and the file, exit code 2, no traceback.


def _never_sample(*args, **kwargs):
    raise AssertionError("bn.sample must not be called for bad input")


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"must be a NumPy .npy file \(written by numpy.save\); it could not be read"),
        (b"0.1 0.2\n0.3 0.4\n", r"must be a NumPy .npy file"),
        ("truncated", r"must be a NumPy .npy file"),
        ("npz", r"must hold one array. Got an .npz archive with 2: \['x', 'y'\]"),
        ("int16", r"must be floating .* Got dtype int16: signed integers have no single mapping"),
        ("missing", r"no such file"),
    ],
    ids=["empty", "text", "truncated", "npz", "int16", "missing"],
)
@pytest.mark.parametrize("option", ["--observation", "--truth"])
def test_bad_input_files_exit_2_with_one_message(
    tmp_path, capsys, monkeypatch, option, content, message
):
    import bayesnoise

    monkeypatch.setattr(bayesnoise, "sample", _never_sample)
    good = tmp_path / "good.npy"
    np.save(good, np.zeros((16, 16, 1), np.float32))
    bad = tmp_path / "bad.npy"
    if content == "truncated":
        np.save(bad, np.zeros((16, 16, 1), np.float32))
        bad.write_bytes(bad.read_bytes()[:200])
    elif content == "npz":
        np.savez(bad, x=np.zeros((16, 16, 1)), y=np.zeros((16, 16, 1)))
        bad = tmp_path / "bad.npy.npz"
    elif content == "int16":
        np.save(bad, np.zeros((16, 16, 1), np.int16))
    elif content != "missing":
        bad.write_bytes(content)
    files = {"--observation": good, "--truth": good, option: bad}
    code = main(
        ["sample", "models/gaussian_toy.py", "--out", str(tmp_path / "run")]
        + ["--observation", str(files["--observation"]), "--truth", str(files["--truth"])]
    )
    assert code == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error and error.count("\n") == 1
    assert f"error: {option} '{bad}'" in error
    assert re.search(message, error), error
    assert list((tmp_path / "run").iterdir()) == []


@pytest.mark.parametrize(
    ("truth_shape", "message"),
    [
        ((16, 16, 3), r"--truth must have the model's signal shape \(16, 16, 1\): \(16, 16, 1\). "),
        ((2, 16, 16, 1), r"Got \(2, 16, 16, 1\) \(the observation has shape \(16, 16, 1\)\)"),
    ],
)
def test_truth_shape_is_checked_before_sampling(
    tmp_path, capsys, monkeypatch, truth_shape, message
):
    import bayesnoise

    monkeypatch.setattr(bayesnoise, "sample", _never_sample)
    np.save(tmp_path / "y.npy", np.zeros((16, 16, 1), np.float32))
    np.save(tmp_path / "x.npy", np.zeros(truth_shape, np.float32))
    code = main(
        ["sample", "models/gaussian_toy.py", "--observation", str(tmp_path / "y.npy")]
        + ["--truth", str(tmp_path / "x.npy"), "--out", str(tmp_path / "run")]
    )
    assert code == 2
    assert re.search(message, capsys.readouterr().err)


def test_truth_needs_an_observation(tmp_path, capsys, monkeypatch):
    import bayesnoise

    monkeypatch.setattr(bayesnoise, "sample", _never_sample)
    np.save(tmp_path / "x.npy", np.zeros((16, 16, 1), np.float32))
    code = main(
        ["sample", "models/gaussian_toy.py", "--truth", str(tmp_path / "x.npy")]
        + ["--out", str(tmp_path / "run")]
    )
    assert code == 2
    assert "--truth needs --observation" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("dtype", "scale"), [(np.uint8, 255), (np.uint16, 65535), (np.float64, 1), (np.float16, 1)]
)
def test_integer_observations_are_scaled_by_their_range(tmp_path, monkeypatch, dtype, scale):
    """uint8 / uint16 images reach the sampler in [0, 1]; floats as they are."""
    import bayesnoise

    received = {}

    def capture(model, observation, **kwargs):
        received["observation"] = observation
        raise RuntimeError("stop before sampling")

    monkeypatch.setattr(bayesnoise, "sample", capture)
    raw = np.linspace(0, scale, 256).reshape(16, 16, 1).astype(dtype)
    np.save(tmp_path / "y.npy", raw)
    code = main(
        ["sample", "models/gaussian_toy.py", "--observation", str(tmp_path / "y.npy")]
        + ["--out", str(tmp_path / "run")]
    )
    assert code == 2
    assert received["observation"].dtype == np.float32
    np.testing.assert_allclose(received["observation"], raw.astype(np.float64) / scale, rtol=1e-6)


def _write_plain_netcdf(path):
    xr.Dataset({"a": ("i", np.arange(3.0))}).to_netcdf(path, engine="h5netcdf")


def _write_tree_without_stats(path):
    xr.DataTree.from_dict(
        {"/posterior": xr.Dataset({"x": (("chain", "draw", "i"), np.zeros((1, 2, 3)))})}
    ).to_netcdf(path, engine="h5netcdf")


@pytest.mark.parametrize(
    ("write", "message"),
    [
        (
            _write_plain_netcdf,
            r"is not a posterior written by `bayesnoise sample`: .* Got no group",
        ),
        (_write_tree_without_stats, r"Got no group observed_data \(groups: \['posterior'\]\)"),
        (lambda path: path.write_text("not netcdf"), r"must be a netCDF-4 file written by"),
        (lambda path: None, r"no such file"),
    ],
    ids=["plain_netcdf", "missing_groups", "text", "missing"],
)
def test_report_on_a_foreign_file_exits_2(tmp_path, capsys, write, message):
    path = tmp_path / "other.nc"
    write(path)
    code = main(["report", str(path), "--out", str(tmp_path / "report")])
    assert code == 2
    error = capsys.readouterr().err
    assert "Traceback" not in error and f"posterior '{path}'" in error
    assert re.search(message, error), error


def test_train_passes_checkpoint_every(tmp_path, monkeypatch):
    import bayesnoise.train

    received = {}
    monkeypatch.setattr(
        bayesnoise.train, "train_from_config", lambda *args, **kwargs: received.update(kwargs)
    )
    out = str(tmp_path / "prior.eqx")
    assert main(["train", "sine", "--out", out, "--checkpoint-every", "50"]) == 0
    assert received["checkpoint_every"] == 50


def test_every_trajectory_diverged_writes_the_outputs_and_exits_1(tmp_path, capsys):
    """With --truth and no usable draw the run used to write nothing; now every output shows
    the divergence and the command fails with one message."""
    np.save(tmp_path / "y.npy", np.full((16, 16, 1), 0.5, np.float32))
    np.save(tmp_path / "x.npy", np.full((16, 16, 1), 0.5, np.float32))
    out = tmp_path / "run"
    code = main(
        ["sample", "models/gaussian_toy.py", "--observation", str(tmp_path / "y.npy")]
        + ["--truth", str(tmp_path / "x.npy"), "--sampler", "data_consistency"]
        + ["--options", '{"guidance_weight": 1e6}', "--steps", "4", "--chains", "2"]
        + ["--draws", "2", "--out", str(out)]
    )
    assert code == 1
    error = capsys.readouterr().err
    assert error.count("error:") == 1 and "Traceback" not in error  # after tqdm's progress
    assert re.search(r"error: every trajectory diverged \(4 of 4; divergence bound 100\)", error)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_diverged"] == 4 and summary["metrics"]["x"] is None
    assert "All 4 draws of x diverged" in (out / "report.html").read_text()
    tree = xr.open_datatree(out / "posterior.nc", engine="h5netcdf")
    assert bool(tree["sample_stats"]["diverging"].all())


def _capture_sample(monkeypatch):
    import bayesnoise

    received = {}

    def capture(model, observation, **kwargs):
        received.update(kwargs)
        raise RuntimeError("stop before sampling")

    monkeypatch.setattr(bayesnoise, "sample", capture)
    return received


def test_another_sampler_gets_only_the_file_options_it_takes(tmp_path, capsys, monkeypatch):
    model_file = tmp_path / "model.py"
    model_file.write_text(
        Path("models/gaussian_toy.py").read_text()
        + '\ndefaults = {"sampler": "predictor_corrector", "num_steps": 5,\n'
        + '    "sampler_options": {"signal_to_noise": 0.1, "guidance_weight": 0.5}}\n'
    )
    received = _capture_sample(monkeypatch)
    main(["sample", str(model_file), "--sampler", "dps", "--out", str(tmp_path / "run")])
    assert received["sampler"] == "dps"
    assert received["sampler_options"] == {"guidance_weight": 0.5}
    printed = capsys.readouterr().out
    assert (
        "--sampler dps differs from the model file's sampler predictor_corrector: dropped its "
        "sampler_options ['signal_to_noise'] (dps does not take them); kept ['guidance_weight']"
    ) in printed
    main(["sample", str(model_file), "--out", str(tmp_path / "run")])  # its own sampler: all
    assert received["sampler_options"] == {"signal_to_noise": 0.1, "guidance_weight": 0.5}


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("{bad", r"--options must be JSON \(an object of sampler options\): Expecting"),
        ("[1]", r"--options must be a JSON object. Got '\[1\]'"),
    ],
)
def test_invalid_options_name_the_option(tmp_path, capsys, monkeypatch, options, message):
    _capture_sample(monkeypatch)
    code = main(["sample", "models/gaussian_toy.py", "--options", options, "--out", str(tmp_path)])
    assert code == 2
    assert re.search(message, capsys.readouterr().err)


# Image files in, posterior images out; --json, --quiet, --version.


def test_png_and_tiff_in_posterior_images_out_with_json_on_stdout(tmp_path, capsys):
    """A 16-bit grey PNG observation and an 8-bit TIFF truth, both 2-D (given C = 1); with
    --json stdout is exactly one JSON document, and --quiet leaves stderr empty."""
    import imageio.v3 as iio
    import tifffile

    rng = np.random.default_rng(0)
    y = rng.uniform(0.3, 0.7, (16, 16))
    iio.imwrite(tmp_path / "y.png", np.round(y * 65535).astype(np.uint16))
    tifffile.imwrite(tmp_path / "x.tif", np.round(y * 255).astype(np.uint8))
    out = tmp_path / "run"
    code = main(
        ["sample", "models/gaussian_toy.py", "--observation", str(tmp_path / "y.png")]
        + ["--truth", str(tmp_path / "x.tif"), "--steps", "10", "--chains", "2", "--draws", "2"]
        + ["--out", str(out), "--save-images", "--json", "--quiet"]
    )
    assert code == 0
    printed = capsys.readouterr()
    assert printed.err == ""
    summary = json.loads(printed.out)  # one document, nothing else
    assert summary["settings"]["num_steps"] == 10 and "x" in summary["metrics"]
    assert summary["images"] == [
        "n_posterior_mean.png", "n_posterior_std.png", "x_posterior_mean.png",
        "x_posterior_std.png",
    ]  # fmt: skip
    mean = iio.imread(out / "x_posterior_mean.png")
    assert mean.dtype == np.uint16 and mean.shape == (16, 16)  # the input's bit depth
    tree = xr.open_datatree(out / "posterior.nc", engine="h5netcdf")
    expected = tree["posterior"]["x"].mean(("chain", "draw")).values[..., 0]
    np.testing.assert_allclose(mean / 65535, np.clip(expected, 0, 1), atol=1 / 65535)


def test_json_sends_human_text_to_stderr(tmp_path, capsys, monkeypatch):
    model_file = tmp_path / "model.py"
    model_file.write_text(
        Path("models/gaussian_toy.py").read_text()
        + '\ndefaults = {"sampler": "predictor_corrector", "sampler_options": '
        + '{"signal_to_noise": 0.1}}\n'
    )
    _capture_sample(monkeypatch)
    main(["sample", str(model_file), "--sampler", "dps", "--json", "--out", str(tmp_path / "r")])
    printed = capsys.readouterr()
    assert printed.out == "" and "dropped its sampler_options ['signal_to_noise']" in printed.err
    main(["sample", str(model_file), "--sampler", "dps", "--quiet", "--out", str(tmp_path / "r")])
    printed = capsys.readouterr()
    assert printed.out == "" and "dropped" not in printed.err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--image-bit-depth", "16"], r"a 16-bit PNG holds one channel .* has 3. Use --image-fo"),
        ([], r"must have the model's observation shape \(16, 16, 1\) \(height, width, channels\)"),
    ],
)
def test_image_shape_and_format_are_checked_before_sampling(
    tmp_path, capsys, monkeypatch, args, message
):
    import imageio.v3 as iio

    _capture_sample(monkeypatch)
    iio.imwrite(tmp_path / "rgb.png", np.zeros((16, 16, 3), np.uint8))
    model_file = "models/gaussian_toy.py"
    if args:  # a colour model, so that only the output format is wrong
        model_file = tmp_path / "colour.py"
        model_file.write_text(
            "import bayesnoise as bn\n"
            "prior = bn.GaussianPrior((16, 16, 3), bn.VPSDE(), mean=0.5, variance=0.04)\n"
            "model = bn.joint_model(prior, prior, measurement_std=0.01)\n"
        )
    code = main(
        ["sample", str(model_file), "--observation", str(tmp_path / "rgb.png")]
        + ["--save-images", "--out", str(tmp_path / "run"), *args]
    )
    assert code == 2
    error = capsys.readouterr().err
    assert re.search(message, error), error
    if not args:
        assert "Got (16, 16, 3). The image has 3 channels and the model takes 1" in error


def test_version_comes_from_the_installed_metadata(capsys):
    from importlib.metadata import version

    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"bayesnoise {version('bayesnoise')}"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "model",
            r"--spread-scale model needs a spread_scale or parameter_spread_scales in model "
            r"file .*gaussian_toy.py",
        ),
        ("-1", r"--spread-scale must be a positive number or 'model'. Got '-1'"),
        ("wide", r"--spread-scale must be a positive number or 'model'. Got 'wide'"),
    ],
)
def test_bad_spread_scale_exits_2_before_sampling(tmp_path, capsys, monkeypatch, value, message):
    import bayesnoise

    monkeypatch.setattr(bayesnoise, "sample", _never_sample)
    code = main(
        ["sample", "models/gaussian_toy.py", "--out", str(tmp_path / "run")]
        + ["--spread-scale", value]
    )
    assert code == 2
    assert re.search(message, capsys.readouterr().err)


def test_spread_scale_rescales_the_draws_and_is_recorded(tmp_path):
    out = tmp_path / "run"
    arguments = ["sample", "models/gaussian_toy.py", "--steps", "10", "--chains", "2"]
    assert main([*arguments, "--spread-scale", "0.5", "--out", str(out)]) == 0
    assert main([*arguments, "--out", str(tmp_path / "plain")]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["spread_scale"] == 0.5
    scaled = xr.open_datatree(out / "posterior.nc", engine="h5netcdf")["posterior"]["x"]
    plain = xr.open_datatree(tmp_path / "plain" / "posterior.nc", engine="h5netcdf")
    np.testing.assert_allclose(
        scaled.std(("chain", "draw")),
        0.5 * plain["posterior"]["x"].std(("chain", "draw")),
        rtol=1e-4,
        atol=1e-7,
    )
