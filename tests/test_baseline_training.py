"""The learned baselines' training scripts resume where they stopped: a run cut in two chunks
(``--resume``) ends with the weights of an unbroken run of the same length (slow: ``pytest -m
slow``), and a resume with other settings or without a saved state is refused."""

import sys
from pathlib import Path

import jax
import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "analyses"))
import train_flows  # noqa: E402
import train_gan  # noqa: E402

from bayesnoise.baselines.flow import load_flow  # noqa: E402
from bayesnoise.baselines.gan import load_generator  # noqa: E402
from bayesnoise.data import FASHION_MNIST_DIRECTORY  # noqa: E402
from bayesnoise.training.resume import batch_indices  # noqa: E402


def test_batches_cover_each_epoch_once_and_differ_between_epochs():
    first = [batch_indices(step, 4, 10, seed=0) for step in range(2)]
    second = [batch_indices(step, 4, 10, seed=0) for step in range(2, 4)]
    assert len(np.unique(np.concatenate(first))) == 8
    assert not np.array_equal(np.concatenate(first), np.concatenate(second))
    np.testing.assert_array_equal(batch_indices(3, 4, 10, 0), second[1])


@pytest.mark.slow  # 25 s: three short training runs of the full DCGAN
@pytest.mark.skipif(
    not (FASHION_MNIST_DIRECTORY / "train-images-idx3-ubyte.gz").is_file(),
    reason="the GAN trains on Fashion-MNIST: apt-get install dataset-fashion-mnist",
)
def test_gan_training_resumed_equals_unbroken(tmp_path):
    common = ["--batch-size", "8", "--save-every", "100", "--minutes", "5"]
    train_gan.main(["--out", str(tmp_path / "cut.eqx"), "--steps", "2", *common])
    train_gan.main(["--out", str(tmp_path / "cut.eqx"), "--steps", "3", "--resume", *common])
    train_gan.main(["--out", str(tmp_path / "whole.eqx"), "--steps", "3", *common])
    latent = jax.random.normal(jax.random.key(1), (100,))
    cut, header = load_generator(tmp_path / "cut.eqx")
    whole = load_generator(tmp_path / "whole.eqx")[0]
    assert header["training"]["steps"] == 3
    np.testing.assert_array_equal(np.asarray(cut(latent)), np.asarray(whole(latent)))


@pytest.mark.slow  # 20 s: three short training runs
def test_flow_training_resumed_equals_unbroken(tmp_path):
    common = ["--which", "noise", "--batch-size", "8", "--eval-every", "100", "--minutes", "5",
              "--num-flow-steps", "2", "--hidden-channels", "8"]  # fmt: skip
    train_flows.main(["--out", str(tmp_path / "cut.eqx"), "--steps", "2", *common])
    train_flows.main(["--out", str(tmp_path / "cut.eqx"), "--steps", "3", "--resume", *common])
    train_flows.main(["--out", str(tmp_path / "whole.eqx"), "--steps", "3", *common])
    image = np.random.default_rng(0).uniform(size=(28, 28, 1)).astype(np.float32)
    cut, header = load_flow(tmp_path / "cut.eqx")
    whole = load_flow(tmp_path / "whole.eqx")[0]
    assert header["training"]["steps"] == 3
    assert float(cut.log_density(image)) == float(whole.log_density(image))


def test_resume_refuses_a_run_with_other_settings(tmp_path):
    out = str(tmp_path / "flow.eqx")
    common = ["--which", "noise", "--batch-size", "8", "--minutes", "5", "--steps", "1",
              "--num-flow-steps", "2", "--hidden-channels", "8"]  # fmt: skip
    train_flows.main(["--out", out, *common])
    with pytest.raises(ValueError, match="learning_rate"):
        train_flows.main(["--out", out, *common, "--resume", "--learning-rate", "0.01"])


def test_resume_without_a_saved_state_names_the_missing_file(tmp_path, capsys):
    with pytest.raises(SystemExit):
        train_gan.main(["--out", str(tmp_path / "g.eqx"), "--resume"])
    assert "g.eqx.state" in capsys.readouterr().err
