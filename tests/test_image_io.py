"""Image files: the value rule by dtype, the (H, W, C) layout, round trips, clear errors."""

import struct
import sys
import zlib

import imageio.v3 as iio
import numpy as np
import pytest
import tifffile

from bayesnoise.image_io import fit_shape, read_image, write_image

RNG = np.random.default_rng(0)


def _integers(shape, dtype):
    return RNG.integers(0, np.iinfo(dtype).max, shape, endpoint=True).astype(dtype)


@pytest.mark.parametrize(
    ("suffix", "shape", "dtype"),
    [
        (".png", (6, 5), np.uint8),
        (".png", (6, 5), np.uint16),
        (".png", (6, 5, 3), np.uint8),
        (".png", (6, 5, 4), np.uint8),
        (".tif", (6, 5), np.uint16),
        (".tiff", (6, 5, 3), np.uint16),
        (".tif", (6, 5, 2), np.uint8),
    ],
)
def test_integer_images_are_divided_by_their_range_channel_last(tmp_path, suffix, shape, dtype):
    raw = _integers(shape, dtype)
    path = tmp_path / f"image{suffix}"
    if suffix == ".png":
        iio.imwrite(path, raw)
    else:
        tifffile.imwrite(path, raw)
    image = read_image(path)
    assert image.bit_depth == np.iinfo(dtype).bits
    assert image.values.dtype == np.float32
    expected = raw / np.iinfo(dtype).max
    np.testing.assert_allclose(image.values, expected if raw.ndim == 3 else expected[..., None])


def test_float_tiff_and_npy_are_taken_as_they_are(tmp_path):
    values = RNG.uniform(-0.1, 1.1, (6, 5, 1)).astype(np.float32)
    tifffile.imwrite(tmp_path / "float.tif", values[..., 0])
    np.save(tmp_path / "float.npy", values)
    np.savez(tmp_path / "one.npz", y=values)
    for name in ("float.tif", "float.npy", "one.npz"):
        image = read_image(tmp_path / name)
        assert image.bit_depth is None
        np.testing.assert_array_equal(image.values, values)


def test_bilevel_png_reads_as_zeros_and_ones(tmp_path):
    from PIL import Image

    Image.fromarray(np.eye(4, dtype=bool)).save(tmp_path / "mask.png")
    image = read_image(tmp_path / "mask.png")
    np.testing.assert_array_equal(image.values, np.eye(4, dtype=np.float32)[..., None])
    assert image.bit_depth == 8


def test_jpeg_is_read_as_8_bit(tmp_path):
    iio.imwrite(tmp_path / "photo.jpg", np.full((8, 8, 3), 128, np.uint8))
    image = read_image(tmp_path / "photo.jpg")
    assert image.values.shape == (8, 8, 3) and image.bit_depth == 8
    np.testing.assert_allclose(image.values, 128 / 255, atol=2 / 255)


def test_fits_cube_is_moved_channel_last(tmp_path):
    fits = pytest.importorskip("astropy.io.fits")
    cube = RNG.uniform(0, 1, (3, 6, 5)).astype(">f4")  # FITS order: (channels, height, width)
    fits.PrimaryHDU(cube).writeto(tmp_path / "cube.fits")
    image = read_image(tmp_path / "cube.fits")
    np.testing.assert_array_equal(image.values, np.moveaxis(cube, 0, -1).astype(np.float32))
    raw = _integers((6, 5), np.uint16)
    fits.PrimaryHDU(raw).writeto(tmp_path / "grey.fits")  # stored as int16 with BZERO = 32768
    image = read_image(tmp_path / "grey.fits")
    assert image.bit_depth == 16
    np.testing.assert_allclose(image.values, raw[..., None] / 65535)


def test_fits_without_astropy_names_the_extra(tmp_path, monkeypatch):
    (tmp_path / "a.fits").write_bytes(b"SIMPLE  =                    T")
    monkeypatch.setitem(sys.modules, "astropy", None)
    monkeypatch.setitem(sys.modules, "astropy.io", None)
    with pytest.raises(ImportError, match=r"reading FITS needs astropy.*bayesnoise\[fits\]"):
        read_image(tmp_path / "a.fits")


def _colour_png_16(path, shape):
    """A 16-bit RGB PNG, written by hand (Pillow cannot write one)."""
    raw = _integers(shape, np.uint16).astype(">u2")
    rows = b"".join(b"\x00" + row.tobytes() for row in raw)

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", shape[1], shape[0], 16, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )  # fmt: skip


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: None, r"image '.*a.png': no such file"),
        (lambda p: p.write_bytes(b"not a png"), r"could not be read as a PNG image"),
        (lambda p: _colour_png_16(p, (4, 5, 3)), r"16-bit colour PNG.*Save it as a 16-bit TIFF"),
        (lambda p: iio.imwrite(p, np.zeros((4, 4), np.int16), extension=".tif"), None),
    ],
    ids=["missing", "damaged", "colour16", "signed"],
)
def test_unreadable_images_raise_one_clear_error(tmp_path, make, message):
    path = tmp_path / "a.png"
    if message is None:  # a signed-integer TIFF: no single mapping to [0, 1]
        path = tmp_path / "a.tif"
        tifffile.imwrite(path, np.zeros((4, 4), np.int16))
        with pytest.raises(TypeError, match=r"Got dtype int16: signed integers have no single"):
            read_image(path, name="--observation 'a.tif'")
        return
    make(path)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        read_image(path)


def test_unknown_format_and_multi_array_npz_are_refused(tmp_path):
    (tmp_path / "y.bmp").write_bytes(b"BM")
    with pytest.raises(ValueError, match=r"ending in one of \[.*'.png'.*\]. Got the ending '.bmp'"):
        read_image(tmp_path / "y.bmp")
    np.savez(tmp_path / "two.npz", a=np.zeros(2), b=np.zeros(2))
    with pytest.raises(ValueError, match=r"must hold one array. Got an .npz archive with 2"):
        read_image(tmp_path / "two.npz")
    tifffile.imwrite(tmp_path / "stack.tif", np.zeros((2, 3, 4, 5), np.uint8))
    with pytest.raises(ValueError, match=r"must be one image.*Got shape \(2, 3, 4, 5\)"):
        read_image(tmp_path / "stack.tif")


def test_fit_shape_adds_one_channel_and_names_both_shapes():
    assert fit_shape(np.zeros((4, 5)), (4, 5, 1), "y").shape == (4, 5, 1)
    assert fit_shape(np.zeros((2, 4, 5, 1)), (4, 5, 1), "y").shape == (2, 4, 5, 1)
    assert fit_shape(np.zeros(7), (7,), "y").shape == (7,)
    with pytest.raises(ValueError, match=r"y must have the model's observation shape \(4, 5, 1\)"):
        fit_shape(np.zeros((5, 4, 1)), (4, 5, 1), "y")


@pytest.mark.parametrize(
    ("suffix", "shape", "bit_depth"),
    [(".png", (6, 5), 8), (".png", (6, 5, 1), 16), (".png", (6, 5, 3), 8), (".tif", (6, 5, 3), 16)],
)
def test_written_images_read_back_within_one_step(tmp_path, suffix, shape, bit_depth):
    values = RNG.uniform(-0.2, 1.2, shape)
    path = write_image(tmp_path / f"mean{suffix}", values, bit_depth)
    assert not list(tmp_path.glob("*.tmp"))
    image = read_image(path)
    assert image.bit_depth == bit_depth
    expected = np.clip(values, 0, 1).reshape(image.values.shape)
    np.testing.assert_allclose(image.values, expected, atol=0.5 / (2**bit_depth - 1) + 1e-7)


def test_write_refuses_what_the_format_cannot_hold(tmp_path):
    with pytest.raises(ValueError, match=r"a 16-bit PNG can hold 1 channel\(s\) at most"):
        write_image(tmp_path / "a.png", np.zeros((4, 4, 3)), 16)
    with pytest.raises(ValueError, match=r"path must end in .png, .tif or .tiff"):
        write_image(tmp_path / "a.jpg", np.zeros((4, 4)), 8)
    with pytest.raises(ValueError, match=r"bit_depth must be 8 or 16. Got bit_depth=12"):
        write_image(tmp_path / "a.png", np.zeros((4, 4)), 12)
    assert list(tmp_path.iterdir()) == []
