"""`bayesnoise train` on a folder of image files: a loadable prior, an honest header, resuming
where it stopped, and one clear message (exit code 2) for each kind of bad folder."""

import re

import equinox as eqx
import imageio.v3 as iio
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from bayesnoise.checkpoints import load_checkpoint, load_score_prior, read_header
from bayesnoise.cli import main
from bayesnoise.training import load_training_data, make_optimizer

TINY = ["--preset", "tiny", "--batch-size", "4", "--warmup-steps", "2", "--quiet"]


def write_images(
    folder, count=16, size=(12, 12), channels=1, dtype=np.uint8, start=0, suffix="png"
):
    """``count`` images with a bright square on a dark ground, half of them in a subfolder."""
    rng = np.random.default_rng(start)
    top = np.iinfo(dtype).max
    for index in range(start, start + count):
        image = np.zeros((*size, channels), dtype)
        row, col = rng.integers(0, size[0] - 4), rng.integers(0, size[1] - 4)
        image[row : row + 4, col : col + 4] = top
        path = folder / ("sub" if index % 2 else "") / f"image_{index:02d}.{suffix}"
        path.parent.mkdir(parents=True, exist_ok=True)
        iio.imwrite(path, image[..., 0] if channels == 1 else image)
    return folder


@pytest.fixture(autouse=True, scope="module")
def rbg_keys():
    """Keys of the rbg kind while these tests run: threefry compiles slowly for the many
    weight shapes a network's initialisation splits keys for (10 s of a 25 s test)."""
    previous = jax.config.jax_default_prng_impl
    jax.config.update("jax_default_prng_impl", "rbg")
    yield
    jax.config.update("jax_default_prng_impl", previous)


def train(data, out, *extra):
    return main(["train", str(data), "--out", str(out), *TINY, *extra])


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return write_images(tmp_path_factory.mktemp("images"))


@pytest.fixture(scope="module")
def uninterrupted(folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("uninterrupted") / "prior.eqx"
    assert train(folder, out, "--steps", "3", "--glob", "*.png") == 0
    return out


def test_training_on_a_folder_writes_a_prior_whose_header_records_the_folder(folder, uninterrupted):
    prior = load_score_prior(uninterrupted)
    assert prior.shape == (12, 12, 1)
    assert np.all(np.isfinite(prior.score(jnp.full((12, 12, 1), 0.5), 0.5)))
    header = read_header(uninterrupted)
    data, training = header["data"], header["training"]
    assert data["source"] == "folder" and data["folder"] == str(folder)
    assert data["glob"] == "*.png" and data["num_images"] == 16
    assert data["num_train"] == 15 and data["num_heldout"] == 1  # the last 10 % of the files
    assert data["channels"] == 1 and data["resolution"] == [12, 12]
    assert data["fit"].startswith("centre crop to the target's aspect ratio")
    assert training["preset"] == "tiny" and training["finished"] is True
    assert training["steps"] == 3 and training["batch_size"] == 4
    assert (training["grad_clip"], training["warmup_steps"]) == (1.0, 2)
    assert (training["adam_eps"], training["min_time"]) == (1e-8, 1e-3)
    assert header["architecture"]["hyperparameters"]["channels"] == [8]


def test_a_stopped_run_resumes_to_the_same_weights(folder, uninterrupted, tmp_path):
    out = tmp_path / "prior.eqx"
    assert train(folder, out, "--steps", "2", "--glob", "*.png") == 0
    assert read_header(out)["training"]["steps"] == 2
    assert read_header(tmp_path / "prior.eqx.state")["step"] == 2
    assert train(folder, out, "--steps", "3", "--glob", "*.png") == 0
    assert read_header(out)["training"]["steps"] == 3
    resumed, _ = load_checkpoint(out)
    reference, _ = load_checkpoint(uninterrupted)
    leaves = [jax.tree.leaves(eqx.filter(net, eqx.is_array)) for net in (resumed, reference)]
    for a, b in zip(*leaves, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-6)


def test_sixteen_bit_colour_tiffs_are_scaled_by_dtype_and_turned_grey(tmp_path):
    write_images(tmp_path, count=4, channels=3, dtype=np.uint16, suffix="tif")
    colour = load_training_data(str(tmp_path))
    assert colour.train.shape == (4, 12, 12, 3) and colour.heldout is None
    assert colour.train.max() == 1.0 and colour.train.min() == 0.0
    grey = load_training_data(str(tmp_path), channels=1, resolution=8)
    assert grey.train.shape == (4, 8, 8, 1)
    assert grey.info["channels"] == 1 and grey.info["resolution"] == [8, 8]


def test_random_crops(tmp_path):
    write_images(tmp_path, count=3)
    crops = load_training_data(str(tmp_path), resolution=(8, 6), fit="random-crop",
                               crops_per_image=5)  # fmt: skip
    assert crops.train.shape == (15, 8, 6, 1)
    assert crops.info["fit"].startswith("random crops") and "5 per image" in crops.info["fit"]


def test_optimizer_uses_clipping_warmup_and_eps():
    params = {"w": jnp.zeros(1)}
    grads = {"w": jnp.full(1, 1e-6)}

    def first_update(**settings):
        optimizer = make_optimizer(learning_rate=1.0, **settings)
        with jax.numpy_dtype_promotion("standard"):
            updates, _ = optimizer.update(grads, optimizer.init(params), params)
        return float(updates["w"][0])

    assert first_update(warmup_steps=0) == pytest.approx(-1.0, rel=0.02)
    assert first_update(warmup_steps=10) == 0.0  # the warm-up starts at a learning rate of 0
    assert first_update(warmup_steps=0, adam_eps=1e-3) == pytest.approx(-1e-3, rel=0.01)
    assert first_update(warmup_steps=0, grad_clip=1e-9) == pytest.approx(
        -1 / 11, rel=1e-3
    )  # 1e-9 / (1e-9 + 1e-8)
    assert isinstance(make_optimizer(), optax.GradientTransformation)


# Bad folders: exit code 2 and one message naming the argument, what was expected, what came.


def _error(capsys):
    error = capsys.readouterr().err
    assert "Traceback" not in error and error.startswith("bayesnoise train: error: ")
    return error


def test_empty_folder(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert train(tmp_path / "empty", tmp_path / "prior.eqx") == 2
    assert re.search(r"dataset folder '.*empty' must hold image files .* Got none", _error(capsys))


def test_glob_matching_nothing(tmp_path, capsys):
    write_images(tmp_path, count=2)
    assert train(tmp_path, tmp_path / "prior.eqx", "--glob", "*.tif") == 2
    assert "must hold files matching glob='*.tif' (searched recursively). Got none." in _error(
        capsys
    )


def test_unreadable_image(tmp_path, capsys):
    write_images(tmp_path, count=2)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    assert train(tmp_path, tmp_path / "prior.eqx") == 2
    assert re.search(r"image file '.*broken\.png' could not be read", _error(capsys))


def test_grey_and_colour_images_mixed(tmp_path, capsys):
    write_images(tmp_path, count=2)
    write_images(tmp_path, count=2, channels=3, start=2)
    assert train(tmp_path, tmp_path / "prior.eqx") == 2
    error = _error(capsys)
    assert "channels must be the same for every image, or be given" in error
    assert re.search(r"Got 1 for '.*image_00\.png' and 3 for '.*image_02\.png'", error)


def test_colour_asked_of_grey_images(tmp_path, capsys):
    write_images(tmp_path, count=2)
    assert train(tmp_path, tmp_path / "prior.eqx", "--channels", "3") == 2
    assert "channels=3 needs colour images. Got 2 grey image(s)" in _error(capsys)


def test_sizes_differ_without_resolution(tmp_path, capsys):
    write_images(tmp_path, count=2)
    write_images(tmp_path, count=2, size=(16, 20), start=2)
    assert train(tmp_path, tmp_path / "prior.eqx") == 2
    assert re.search(r"resolution must be the same .* Got 12x12 for .* 16x20 for", _error(capsys))


def test_no_such_folder(tmp_path, capsys):
    assert train(tmp_path / "missing", tmp_path / "prior.eqx") == 2
    error = _error(capsys)
    assert re.search(r"dataset must be one of .*, a folder of images or a \.npy/\.npz file", error)
    assert re.search(r"Got dataset='.*missing' \(no such folder\)", error)


def test_bad_resolution_text(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        train(tmp_path, tmp_path / "prior.eqx", "--resolution", "12by12")
    assert exit_info.value.code == 2
    assert "--resolution: expected a positive size N or HEIGHTxWIDTH" in capsys.readouterr().err


def test_preset_and_architecture_disagree(tmp_path, capsys):
    write_images(tmp_path, count=2)
    assert train(tmp_path, tmp_path / "prior.eqx", "--architecture", "ncsnv2") == 2
    assert "architecture must be the preset's: preset 'tiny' is a 'unet' network" in _error(capsys)


def test_array_file_with_other_channels(tmp_path, capsys):
    np.savez(tmp_path / "stack.npz", images=np.zeros((4, 8, 8, 1), np.float32), labels=np.zeros(4))
    assert train(tmp_path / "stack.npz", tmp_path / "p.eqx", "--array-key", "images",
                 "--channels", "3") == 2  # fmt: skip
    assert re.search(r"channels must match the images of dataset '.*stack\.npz', which have 1. "
                     r"Got channels=3\.", _error(capsys))  # fmt: skip
