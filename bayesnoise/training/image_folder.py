"""Training images from a folder of image files (PNG, JPEG, TIFF), searched recursively.

Values are mapped to [0, 1] by dtype: unsigned integers are divided by their dtype's maximum
(8-bit by 255, 16-bit by 65 535), floating values are used as they are and must lie in [0, 1].
An alpha channel is dropped; two-channel (grey + alpha) images are grey. Every image is then
brought to one resolution by one of two rules (:data:`FIT_RULES`).
"""

from __future__ import annotations

from pathlib import Path

import imageio.v3 as iio
import numpy as np
from skimage import color

from bayesnoise.data import _crop_resize, observation_from_array

__all__ = ["FIT_RULES", "IMAGE_SUFFIXES", "find_image_files", "read_image_folder"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff")
FIT_RULES = {
    "resize": "centre crop to the target's aspect ratio, then an anti-aliased bilinear resize",
    "random-crop": "random crops of the target size (no resizing), drawn once with the seed",
}


def find_image_files(folder: Path, glob: str | None = None) -> list[Path]:
    """The files under ``folder`` (recursively) matching ``glob``, in sorted order.

    Without ``glob``, the files whose names end in one of :data:`IMAGE_SUFFIXES` (any case).
    """
    if glob is None:
        found = (f for f in folder.rglob("*") if f.suffix.lower() in IMAGE_SUFFIXES)
    else:
        found = folder.rglob(glob)
    files = sorted(f for f in found if f.is_file() and not f.name.startswith("."))
    if not files:
        wanted = f"files matching glob={glob!r}" if glob else f"image files {IMAGE_SUFFIXES}"
        raise ValueError(
            f"dataset folder {str(folder)!r} must hold {wanted} (searched recursively). Got none."
        )
    return files


def read_image_folder(
    files: list[Path],
    channels: int | None,
    resolution: tuple[int, int] | None,
    fit: str,
    crops_per_image: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Read ``files`` as ``float32 (N, height, width, channels)`` images in [0, 1].

    ``channels`` None keeps the images' own (all must agree); 1 turns colour into grey
    (``skimage.color.rgb2gray``). ``resolution`` None keeps the images' own size (all must
    agree). ``fit`` is a key of :data:`FIT_RULES`; ``random-crop`` takes ``crops_per_image``
    crops of every image.
    """
    shapes = [_image_shape(file) for file in files]  # headers only: no pixel is read yet
    own_channels = _common(files, [shape[2] for shape in shapes], "channels")
    channels = _check_channels(files, shapes, channels, own_channels)
    if resolution is None:
        resolution = _common(files, [shape[:2] for shape in shapes], "resolution")
    if fit not in FIT_RULES:
        raise ValueError(f"fit must be one of {sorted(FIT_RULES)}. Got fit={fit!r}.")
    if fit == "random-crop":
        too_small = [(f, s) for f, s in zip(files, shapes, strict=True) if _smaller(s, resolution)]
        if too_small:
            file, shape = too_small[0]
            raise ValueError(
                f"resolution {resolution[0]}x{resolution[1]} must fit inside every image for "
                f"random crops. Got {file} of {shape[0]}x{shape[1]} ({len(too_small)} too "
                "small); use fit='resize' or a smaller resolution."
            )
    images = []
    for file in files:
        image = _with_channels(_read_unit_image(file), channels)
        if fit == "resize":
            images.append(_crop_resize(image, resolution))
        else:
            images.extend(_random_crops(image, resolution, crops_per_image, rng))
    return np.stack(images)


def _image_shape(file: Path) -> tuple[int, int, int]:
    """(height, width, channels) from the file's header; channels after dropping alpha."""
    shape = tuple(_decode(file, iio.improps).shape)
    if len(shape) == 2:
        shape = (*shape, 1)
    if len(shape) != 3 or shape[2] not in (1, 2, 3, 4):
        raise ValueError(
            f"image file {str(file)!r} must hold one image of shape (height, width) or "
            f"(height, width, 1-4 channels). Got shape {shape}."
        )
    return shape[0], shape[1], {1: 1, 2: 1, 3: 3, 4: 3}[shape[2]]


def _decode(file: Path, read):
    """``read(file)`` (``iio.improps`` or ``iio.imread``), any failure as one ValueError."""
    try:
        with open(file, "rb") as handle:  # closed on failure too (imageio may leave it open)
            return read(handle, extension=file.suffix.lower() or None)
    except Exception as error:  # imageio and its plugins raise many kinds
        reason = (str(error).splitlines() or [type(error).__name__])[0]
        raise ValueError(f"image file {str(file)!r} could not be read: {reason}") from error


def _read_unit_image(file: Path) -> np.ndarray:
    """The image as float32 (height, width, 1 or 3) in [0, 1], alpha dropped."""
    array = np.asarray(_decode(file, iio.imread))  # a truncated file fails only here
    image = observation_from_array(array, name=f"image file {str(file)!r}")
    if np.issubdtype(array.dtype, np.floating) and (image.min() < 0 or image.max() > 1):
        raise ValueError(
            f"image file {str(file)!r} holds floating values, used as they are, so they must "
            f"be in [0, 1]. Got range [{image.min()}, {image.max()}]."
        )
    image = image[:, :, None] if image.ndim == 2 else image
    return image[:, :, :1] if image.shape[2] == 2 else image[:, :, :3]


def _with_channels(image: np.ndarray, channels: int) -> np.ndarray:
    if image.shape[2] == 3 and channels == 1:
        return color.rgb2gray(image)[:, :, None].astype(np.float32)
    return image


def _check_channels(files, shapes, channels, own_channels) -> int:
    if channels is None:
        return own_channels
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 (grey) or 3 (colour). Got channels={channels!r}.")
    if channels == 3:
        grey = [file for file, shape in zip(files, shapes, strict=True) if shape[2] == 1]
        if grey:
            raise ValueError(
                f"channels=3 needs colour images. Got {len(grey)} grey image(s), e.g. "
                f"{str(grey[0])!r}; use channels=1 to train on grey images."
            )
    return channels


def _common(files, values, what):
    """The one value every file shares, or an error naming two files that differ."""
    first = values[0]
    for file, value in zip(files, values, strict=True):
        if value != first:
            advice = (
                "pass channels=1 to turn colour into grey"
                if what == "channels"
                else ("pass a resolution to resize (or crop) them to")
            )
            raise ValueError(
                f"{what} must be the same for every image, or be given: {advice}. Got "
                f"{_show(first)} for {str(files[0])!r} and {_show(value)} for {str(file)!r}."
            )
    return first


def _show(value) -> str:
    return f"{value[0]}x{value[1]}" if isinstance(value, tuple) else str(value)


def _smaller(shape, resolution) -> bool:
    return shape[0] < resolution[0] or shape[1] < resolution[1]


def _random_crops(image, resolution, count, rng) -> list[np.ndarray]:
    height, width = resolution
    tops = rng.integers(0, image.shape[0] - height + 1, size=count)
    lefts = rng.integers(0, image.shape[1] - width + 1, size=count)
    return [
        image[top : top + height, left : left + width]
        for top, left in zip(tops, lefts, strict=True)
    ]
