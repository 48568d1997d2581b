"""End to end: the README's main command on the Gaussian toy, with a short run."""

import json

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
