"""Image files in and out: observations from PNG/JPEG/TIFF/FITS/NumPy, posterior images back.

One layout and one value rule, whatever the format:

- **Layout** ``(height, width, channels)``, channel-last; a 2-D image gets ``channels = 1``.
  FITS cubes are stored ``(channels, height, width)`` and are moved channel-last.
- **Values** are mapped to the model's range by dtype, as
  :func:`bayesnoise.data.observation_from_array` does: unsigned integers are divided by their
  dtype's maximum (``uint8`` by 255, ``uint16`` by 65 535), floating values are taken as
  already in the model's range (``[0, 1]`` for the shipped priors), signed integers are
  refused (no single mapping). A 1-bit image reads as 0 and 1; a palette PNG as its colours.

Writing is the inverse: values are clipped to ``[0, 1]`` and rounded to 8 or 16 bits, PNG or
TIFF by the file's extension, atomically (:func:`bayesnoise.atomic.atomic_path`).
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from bayesnoise.atomic import atomic_path
from bayesnoise.data import observation_from_array

__all__ = ["ImageData", "read_image", "fit_shape", "write_image", "READ_SUFFIXES"]

_PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg")
_TIFF_SUFFIXES = (".tif", ".tiff")
_FITS_SUFFIXES = (".fits", ".fit", ".fts")
_NUMPY_SUFFIXES = (".npy", ".npz")
READ_SUFFIXES = _PILLOW_SUFFIXES + _TIFF_SUFFIXES + _FITS_SUFFIXES + _NUMPY_SUFFIXES
"""File endings :func:`read_image` reads (case-insensitive)."""


class ImageData(NamedTuple):
    """An image read from a file, in the model's units."""

    values: np.ndarray
    """``float32``, ``(height, width, channels)`` for image files; as stored for NumPy files."""
    bit_depth: int | None
    """8 or 16 for an 8- or 16-bit integer source, ``None`` for floating values."""


def read_image(path: str | Path, name: str | None = None) -> ImageData:
    """Read an observation (or a ground truth) from an image or NumPy file.

    Parameters
    ----------
    path : str or Path
        ``.png``, ``.jpg``/``.jpeg`` (Pillow, via imageio), ``.tif``/``.tiff`` (tifffile),
        ``.fits``/``.fit``/``.fts`` (astropy, ``pip install bayesnoise[fits]``), ``.npy``, or
        ``.npz`` holding exactly one array.
    name : str, optional
        What the file is, for error messages (e.g. ``"--observation 'y.png'"``).

    Returns
    -------
    ImageData
        ``values`` (``float32``, mapped by dtype as the module docstring states) and the
        source's ``bit_depth``.

    Examples
    --------
    >>> image = read_image("photo.png")  # uint8 (H, W, 3) -> float32 in [0, 1]
    >>> image.values.shape, image.bit_depth
    ((64, 64, 3), 8)
    """
    path = Path(path)
    source = name or f"image {str(path)!r}"
    if not path.is_file():
        raise FileNotFoundError(f"{source}: no such file.")
    suffix = path.suffix.lower()
    if suffix in _NUMPY_SUFFIXES:
        array = _read_numpy(path, source)
    elif suffix in _PILLOW_SUFFIXES + _TIFF_SUFFIXES:
        array = _with_channels(_read_raster(path, suffix, source), source)
    elif suffix in _FITS_SUFFIXES:
        array = _read_fits(path, source)
    else:
        raise ValueError(
            f"{source} must be an image or array file ending in one of {list(READ_SUFFIXES)}. "
            f"Got the ending {path.suffix!r}."
        )
    if array.dtype == np.bool_:  # a 1-bit (bilevel) image: False -> 0, True -> 1
        array = array.astype(np.uint8) * np.uint8(255)
    bit_depth = {np.dtype(np.uint8): 8, np.dtype(np.uint16): 16}.get(array.dtype)
    return ImageData(observation_from_array(array, name=source), bit_depth)


def fit_shape(values: np.ndarray, expected: tuple[int, ...], name: str) -> np.ndarray:
    """``values`` in the model's ``expected`` shape (one image) or a batch of such images.

    A 2-D array gets a channel axis when the model's images have one channel; anything else
    that does not match is an error naming both shapes.
    """
    expected = tuple(expected)
    if values.shape[-len(expected) :] != expected and values.shape + (1,) == expected:
        values = values[..., None]
    single = values.shape == expected
    batch = values.ndim == len(expected) + 1 and values.shape[1:] == expected
    if not (single or batch):
        hint = ""
        if len(expected) == 3 and values.ndim == 3 and values.shape[:2] == expected[:2]:
            hint = (
                f" The image has {values.shape[2]} channels and the model takes "
                f"{expected[2]}: convert it (e.g. to grey) before sampling."
            )
        raise ValueError(
            f"{name} must have the model's observation shape {expected} (height, width, "
            f"channels), or (N, *{expected}) for a batch. Got {values.shape}.{hint}"
        )
    return values


def write_image(path: str | Path, values: np.ndarray, bit_depth: int = 8) -> Path:
    """Write ``values`` (in ``[0, 1]``, ``(H, W)`` or ``(H, W, C)``) as an 8- or 16-bit image.

    PNG or TIFF by the extension of ``path``. Values are clipped to ``[0, 1]`` and NaN is written
    as 0, then scaled to the integer range and rounded. PNG takes 1-4 channels at 8 bits and
    one channel at 16 bits (Pillow's limit); TIFF takes any number of channels.

    Returns
    -------
    Path
        ``path``.
    """
    import imageio.v3 as iio
    import tifffile

    path = Path(path)
    suffix = path.suffix.lower()
    if bit_depth not in (8, 16):
        raise ValueError(f"bit_depth must be 8 or 16. Got bit_depth={bit_depth!r}.")
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 3 and values.shape[2] == 1:
        values = values[..., 0]
    if values.ndim not in (2, 3):
        raise ValueError(f"values must have shape (H, W) or (H, W, C). Got {values.shape}.")
    channels = 1 if values.ndim == 2 else values.shape[2]
    if suffix == ".png" and (channels > 4 or (bit_depth == 16 and channels > 1)):
        raise ValueError(
            f"a {bit_depth}-bit PNG can hold {'4' if bit_depth == 8 else '1'} channel(s) at "
            f"most (Pillow's limit); got {channels}. Write a .tif instead."
        )
    if suffix not in (".png",) + _TIFF_SUFFIXES:
        raise ValueError(f"path must end in .png, .tif or .tiff. Got {str(path)!r}.")
    dtype = np.uint8 if bit_depth == 8 else np.uint16
    scale = np.iinfo(dtype).max
    integers = np.round(np.clip(np.nan_to_num(values, nan=0.0), 0.0, 1.0) * scale).astype(dtype)
    with atomic_path(path) as temporary:
        if suffix == ".png":
            iio.imwrite(temporary, integers, extension=".png")
        else:
            tifffile.imwrite(temporary, integers)
    return path


def _read_numpy(path: Path, source: str) -> np.ndarray:
    """The one array in a ``.npy`` file or a one-array ``.npz`` archive."""
    kind = "NumPy .npy file (written by numpy.save)"
    if path.suffix.lower() == ".npz":
        kind = "NumPy .npz archive (written by numpy.savez)"
    try:
        loaded = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as error:
        raise ValueError(
            f"{source} must be a {kind}; it could not be read as one "
            f"({type(error).__name__}: {error})."
        ) from error
    if isinstance(loaded, np.ndarray):
        return loaded
    with loaded:
        keys = list(loaded.keys())
        if len(keys) != 1:
            raise ValueError(
                f"{source} must hold one array. Got an .npz archive with {len(keys)}: {keys}; "
                "save the one to use with numpy.save."
            )
        try:
            return loaded[keys[0]]
        except (ValueError, OSError, EOFError) as error:
            raise ValueError(f"{source}: array {keys[0]!r} could not be read ({error}).") from error


def _read_raster(path: Path, suffix: str, source: str) -> np.ndarray:
    """PNG/JPEG through Pillow (imageio), TIFF through tifffile; the stored dtype is kept."""
    import imageio.v3 as iio
    import tifffile

    if suffix == ".png":
        header = path.read_bytes()[:26]
        if len(header) == 26 and header[24] == 16 and header[25] != 0:
            raise ValueError(
                f"{source} is a 16-bit colour PNG, which Pillow can only read reduced to 8 "
                "bits. Save it as a 16-bit TIFF instead."
            )
    try:
        if suffix in _TIFF_SUFFIXES:
            return np.asarray(tifffile.imread(path))
        # from bytes: imageio leaves the file open when Pillow rejects it (a ResourceWarning)
        return np.asarray(iio.imread(path.read_bytes(), extension=suffix))
    except Exception as error:  # Pillow and tifffile raise many types for a damaged file
        raise ValueError(
            f"{source} could not be read as a {suffix[1:].upper()} image "
            f"({type(error).__name__}: {error})."
        ) from error


def _read_fits(path: Path, source: str) -> np.ndarray:
    """The primary (or first image) HDU of a FITS file, channel-last, in native byte order."""
    try:
        from astropy.io import fits
    except ImportError as error:
        raise ImportError(
            f"{source}: reading FITS needs astropy, an optional extra: "
            "`pip install bayesnoise[fits]` (or `pip install astropy`)."
        ) from error
    try:
        with fits.open(path, memmap=False) as hdus:
            data = next((hdu.data for hdu in hdus if getattr(hdu, "data", None) is not None), None)
    except Exception as error:  # astropy raises OSError, ValueError, TypeError, ...
        raise ValueError(f"{source} could not be read as FITS ({error}).") from error
    if data is None or data.ndim not in (2, 3):
        got = "no image data" if data is None else f"shape {data.shape}"
        raise ValueError(f"{source} must hold a 2-D image or a 3-D cube. Got {got}.")
    data = data.astype(data.dtype.newbyteorder("="))
    return _with_channels(np.moveaxis(data, 0, -1) if data.ndim == 3 else data, source)


def _with_channels(array: np.ndarray, source: str) -> np.ndarray:
    """``(H, W) -> (H, W, 1)``; ``(H, W, C)`` as it is; anything else an error."""
    if array.ndim == 2:
        return array[..., None]
    if array.ndim != 3:
        raise ValueError(
            f"{source} must be one image, (height, width) or (height, width, channels). "
            f"Got shape {array.shape} (a multi-page stack?)."
        )
    return array
