"""Feeding the training: built-in datasets, a folder of images, or a ``.npy``/``.npz`` stack.

Every source ends as ``float32 (N, height, width, channels)`` training and held-out images and
a ``data`` entry for the checkpoint header that says what the images were and how they were
brought to the model's shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import jax
import numpy as np

from bayesnoise import data
from bayesnoise.data import _crop_resize
from bayesnoise.training.image_folder import (
    FIT_RULES,
    IMAGE_SUFFIXES,
    find_image_files,
    read_image_folder,
)

__all__ = ["DATASETS", "TrainingData", "load_training_data"]

DATASETS = ("fashion_mnist", "mnist_5k", "sine")
VALUE_MAPPING = "uint8 / 255, uint16 / 65535, floating values as they are (in [0, 1])"


class TrainingData(NamedTuple):
    """Training images, held-out images (None when there are too few) and the header entry."""

    train: np.ndarray
    heldout: np.ndarray | None
    info: dict


def load_training_data(
    dataset: str,
    *,
    glob: str | None = None,
    array_key: str | None = None,
    channels: int | None = None,
    resolution: int | tuple[int, int] | None = None,
    fit: str = "resize",
    crops_per_image: int = 8,
    seed: int = 0,
) -> TrainingData:
    """The images ``dataset`` names, at the requested channels and resolution.

    Parameters
    ----------
    dataset : str
        ``"fashion_mnist"``, ``"mnist_5k"``, ``"sine"`` (see :data:`DATASETS`), a folder of
        images (searched recursively) or a ``.npy``/``.npz`` file. Of a folder or a file, the
        last 10 % (of the sorted files; none below 10 images) are held out.
    glob : str, optional
        Of a folder: which files, e.g. ``"*.png"``; default: PNG, JPEG and TIFF files.
    array_key : str, optional
        Of a ``.npz`` file: which array (may be left out when it holds one).
    channels : {1, 3}, optional
        Default: the data's own. Colour images of a folder are turned grey for 1.
    resolution : int or (int, int), optional
        ``(height, width)``; default: the data's own (all images of a folder must agree).
    fit : {"resize", "random-crop"}
        How images of another size are brought to ``resolution`` (:data:`FIT_RULES`).
    crops_per_image : int
        Random crops taken of each image with ``fit="random-crop"``.
    seed : int
        Seed of the random crops and of the generated ``"sine"`` draws.

    Returns
    -------
    TrainingData
        ``float32`` training and held-out images ``(N, height, width, channels)`` and the
        checkpoint header's ``data`` entry.
    """
    resolution = None if resolution is None else data._size_pair(resolution, "resolution")
    if fit not in FIT_RULES:
        raise ValueError(f"fit must be one of {sorted(FIT_RULES)}. Got fit={fit!r}.")
    rng = np.random.default_rng(seed)
    path = Path(dataset)
    if dataset in DATASETS:
        train, heldout, info = _builtin(dataset, seed)
    elif path.is_dir():
        return _folder(path, glob, channels, resolution, fit, crops_per_image, rng)
    elif path.suffix in (".npy", ".npz"):
        train, heldout, info = _array_file(path, array_key)
    else:
        raise ValueError(
            f"dataset must be one of {DATASETS}, a folder of images or a .npy/.npz file. "
            f"Got dataset={dataset!r}" + ("." if path.suffix else " (no such folder).")
        )
    train, heldout, rule = _to_shape(train, heldout, channels, resolution, fit,
                                     crops_per_image, rng, dataset)  # fmt: skip
    return TrainingData(train, heldout, _describe(dataset, info, train, heldout, rule))


def _describe(dataset: str, info: dict, train, heldout, rule: str) -> dict:
    """The header's ``data`` entry."""
    return {
        "dataset": dataset,
        **info,
        "shape": list(train.shape[1:]),
        "channels": int(train.shape[3]),
        "resolution": list(train.shape[1:3]),
        "fit": rule,
        "layout": "channel-last (height, width, channels), float32",
        "observed_range": [float(train.min()), float(train.max())],
        "num_train": int(train.shape[0]),
        "num_heldout": 0 if heldout is None else int(heldout.shape[0]),
    }


def _folder(path, glob, channels, resolution, fit, crops_per_image, rng) -> TrainingData:
    """A folder's images; the last 10 % of the files (sorted paths) are held out."""
    files = find_image_files(path, glob)
    images = read_image_folder(files, channels, resolution, fit, crops_per_image, rng)
    num_train_files = len(files) - len(files) // 10
    cut = num_train_files * (crops_per_image if fit == "random-crop" else 1)
    train, heldout = images[:cut], images[cut:] if cut < len(images) else None
    info = {
        "source": "folder",
        "folder": str(path),
        "glob": glob if glob is not None else "default: " + ", ".join(IMAGE_SUFFIXES),
        "num_images": len(files),
        "value_mapping": VALUE_MAPPING,
        "split": f"first {num_train_files} files (sorted paths) train, last "
        f"{len(files) - num_train_files} held out",
    }
    rule = FIT_RULES[fit] + (f", {crops_per_image} per image" if fit == "random-crop" else "")
    return TrainingData(train, heldout, _describe(str(path), info, train, heldout, rule))


def _array_file(path: Path, array_key: str | None):
    """A .npy/.npz stack; the last 10 % of the images (none below 10) are held out."""
    if not path.is_file():
        raise ValueError(f"dataset file {str(path)!r} must exist. Got no such file.")
    images = data.load_array(path, key=array_key)
    cut = len(images) - len(images) // 10
    info = {
        "source": "array file",
        "file": str(path),
        "key": array_key,
        "num_images": len(images),
        "value_mapping": "uint8 / 255, bool and floating values as they are (in [0, 1])",
        "split": f"first {cut} train, last {len(images) - cut} held out",
    }
    return images[:cut], images[cut:] if cut < len(images) else None, info


def _builtin(dataset: str, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    if dataset == "fashion_mnist":
        train, _ = data.load_fashion_mnist("train")
        heldout = data.load_fashion_mnist("test")[0][:1000]
        return train, heldout, {"split": "train (60000); held out: first 1000 of test",
                                "value_range": [0, 1]}  # fmt: skip
    if dataset == "mnist_5k":
        (train, _), (heldout, _) = data.mnist_5k_split()
        return train, heldout, {"split": "mnist_5k_split: 4000 train / 1000 held out",
                                "value_range": [0, 1]}  # fmt: skip
    base = jax.random.key(seed + 1_000_003)
    train = np.asarray(data.sinusoidal_noise_dataset(jax.random.fold_in(base, 0), 20_000))
    heldout = np.asarray(data.sinusoidal_noise_dataset(jax.random.fold_in(base, 1), 1000))
    return (
        train,
        heldout,
        {
            "split": f"20000 generated draws (seed {seed}); 1000 held-out draws",
            "value_range": None,
            "generator": "sinusoidal_noise_dataset(average_std=0.2, period=16)",
        },
    )


def _to_shape(train, heldout, channels, resolution, fit, crops_per_image, rng, dataset):
    """Check the channels, bring the images to ``resolution``; the rule used, for the header."""
    if channels is not None and channels != train.shape[3]:
        raise ValueError(
            f"channels must match the images of dataset {dataset!r}, which have "
            f"{train.shape[3]}. Got channels={channels}."
        )
    if resolution is None or tuple(resolution) == train.shape[1:3]:
        return train, heldout, "none: the images already have the model's resolution"

    def fitted(images):
        if fit == "resize":
            return np.stack([_crop_resize(image, tuple(resolution)) for image in images])
        if images.shape[1] < resolution[0] or images.shape[2] < resolution[1]:
            raise ValueError(
                f"resolution {resolution[0]}x{resolution[1]} must fit inside the images of "
                f"dataset {dataset!r} for random crops. Got {images.shape[1]}x"
                f"{images.shape[2]}; use fit='resize'."
            )
        tops = rng.integers(0, images.shape[1] - resolution[0] + 1, (len(images), crops_per_image))
        lefts = rng.integers(0, images.shape[2] - resolution[1] + 1, tops.shape)
        return np.stack([image[t : t + resolution[0], s : s + resolution[1]]
                         for image, ts, ss in zip(images, tops, lefts, strict=True)
                         for t, s in zip(ts, ss, strict=True)])  # fmt: skip

    rule = FIT_RULES[fit] + (f", {crops_per_image} per image" if fit == "random-crop" else "")
    return fitted(train), None if heldout is None else fitted(heldout), rule
