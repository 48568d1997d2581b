"""The README's path for a newcomer, on small generated images: train a prior on a folder of
PNGs, swap it into a model file, denoise a PNG of one's own with it."""

import json

import imageio.v3 as iio
import numpy as np
from test_training_folder import write_images

from bayesnoise.cli import main


def test_train_on_a_folder_swap_the_prior_and_denoise_a_png(tmp_path):
    images = write_images(tmp_path / "my_clean_images", count=12, size=(12, 12))
    prior = tmp_path / "my_prior.eqx"
    train = ["train", str(images), "--glob", "*.png", "--resolution", "12", "--channels", "1"]
    quick = ["--preset", "tiny", "--batch-size", "4", "--warmup-steps", "1", "--quiet"]
    assert main([*train, *quick, "--steps", "2", "--out", str(prior)]) == 0

    model_file = tmp_path / "my_denoise.py"
    model_file.write_text(
        "import bayesnoise as bn\n"
        "from bayesnoise.checkpoints import load_score_prior\n"
        f"signal_prior = load_score_prior({str(prior)!r})\n"
        "noise_prior = bn.sinusoidal_noise_prior((12, 12, 1), average_std=0.1, "
        "sde=signal_prior.sde)\n"
        "model = bn.joint_model(signal_prior, noise_prior, measurement_std=0.01)\n"
        "defaults = {'sampler': 'ddim_pigdm', 'num_steps': 3, 'num_chains': 1, 'num_draws': 2,\n"
        "            'start_time': 0.5, 'sampler_options': {'covariance': 'scalar'}}\n"
    )
    noisy = np.clip(np.random.default_rng(0).uniform(0, 1, (12, 12)) * 255, 0, 255)
    iio.imwrite(tmp_path / "y.png", noisy.astype(np.uint8))
    out = tmp_path / "runs" / "mine"
    sample = ["sample", str(model_file), "--observation", str(tmp_path / "y.png")]
    assert main([*sample, "--save-images", "--quiet", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["num_diverged"] < summary["num_trajectories"]
    mean = iio.imread(out / "x_posterior_mean.png")
    assert mean.shape[:2] == (12, 12) and mean.dtype == np.uint8
