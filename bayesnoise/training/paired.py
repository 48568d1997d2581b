"""Paired training data (clean signal, observation) for conditional networks.

Two sources: a ``.npz`` file holding arrays ``signal`` (N, H, W[, C]) and ``observation``
(N, H, W[, C']), or a signal dataset (anything :func:`~bayesnoise.training.load_training_data`
reads) corrupted by a built-in generator (:data:`CORRUPTIONS`):

- ``"digits"``: y = (1 − α) x + α d, d a random MNIST digit (held-out digits for the held-out
  images), α = ``level`` (default 0.5: the digits-on-clothing problem);
- ``"gaussian"``: y = x + σ ε, ε ~ N(0, I), σ = ``level`` (default 0.3);
- ``"inpaint"``: each pixel missing (set to 0) independently with probability ``level``
  (default 0.5).

The pairs are drawn once, with ``seed``, and recorded in the checkpoint header.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np

from bayesnoise import data
from bayesnoise.data import _crop_resize
from bayesnoise.training.datasets import load_training_data

__all__ = [
    "CORRUPTIONS",
    "PAIRED_KEYS",
    "PairedTrainingData",
    "corrupt",
    "is_paired_file",
    "load_paired_training_data",
]

CORRUPTIONS = {
    "digits": (0.5, "y = (1 - level) x + level d, d a random MNIST-5k digit (held-out digits "
                    "for held-out images)"),
    "gaussian": (0.3, "y = x + level eps, eps ~ N(0, I)"),
    "inpaint": (0.5, "each pixel of x set to 0 with probability level"),
}  # fmt: skip
"""Name -> (default level, formula) of the built-in corruptions."""
PAIRED_KEYS = ("signal", "observation")


class PairedTrainingData(NamedTuple):
    """Training and held-out signals with their observations, and the header's ``data`` entry."""

    train: np.ndarray
    heldout: np.ndarray | None
    info: dict
    train_observations: np.ndarray
    heldout_observations: np.ndarray | None


def is_paired_file(dataset: str, array_key: str | None = None) -> bool:
    """Whether ``dataset`` is a ``.npz`` file holding ``signal`` and ``observation`` (and no
    ``array_key`` picks one array of it)."""
    path = Path(dataset)
    if array_key is not None or path.suffix != ".npz" or not path.is_file():
        return False
    with np.load(path, allow_pickle=False) as archive:
        return all(key in archive for key in PAIRED_KEYS)


def corrupt(
    corruption: str,
    images: np.ndarray,
    level: float | None = None,
    *,
    rng: np.random.Generator,
    heldout: bool = False,
) -> np.ndarray:
    """The observations of ``images`` (N, H, W, C) under a built-in ``corruption``."""
    if corruption not in CORRUPTIONS:
        raise ValueError(
            f"corruption must be one of {sorted(CORRUPTIONS)}. Got corruption={corruption!r}."
        )
    level = CORRUPTIONS[corruption][0] if level is None else float(level)
    if corruption == "gaussian":
        if not level >= 0:
            raise ValueError(f"level must be a noise std >= 0 for 'gaussian'. Got {level!r}.")
        return (images + level * rng.standard_normal(images.shape)).astype(np.float32)
    if not 0 <= level <= 1:
        raise ValueError(f"level must be in [0, 1] for {corruption!r}. Got {level!r}.")
    if corruption == "inpaint":
        missing = rng.random(images.shape[:3] + (1,)) < level
        return np.where(missing, 0.0, images).astype(np.float32)
    (train_digits, _), (heldout_digits, _) = data.mnist_5k_split()
    digits = heldout_digits if heldout else train_digits
    if digits.shape[1:3] != images.shape[1:3]:
        digits = np.stack([_crop_resize(digit, images.shape[1:3]) for digit in digits])
    chosen = digits[rng.integers(0, len(digits), len(images))]
    chosen = np.broadcast_to(chosen, chosen.shape[:3] + images.shape[3:])
    return ((1.0 - level) * images + level * chosen).astype(np.float32)


def load_paired_training_data(
    dataset: str,
    *,
    corruption: str | None = None,
    level: float | None = None,
    seed: int = 0,
    **signal_options,
) -> PairedTrainingData:
    """(signal, observation) pairs: a paired ``.npz`` file, or ``dataset`` corrupted.

    Parameters
    ----------
    dataset : str
        With ``corruption``: any signal dataset of
        :func:`~bayesnoise.training.load_training_data` (``signal_options`` are passed on).
        Without: a ``.npz`` file with arrays ``signal`` and ``observation``; the last 10 %
        of the pairs (none below 10) are held out.
    corruption : {"digits", "gaussian", "inpaint"}, optional
        The built-in generator (:data:`CORRUPTIONS`).
    level : float, optional
        The corruption's parameter (α, σ or the missing fraction); default: its own.
    seed : int
        Seed of the corruption (and of ``load_training_data``).
    """
    if corruption is None:
        return _paired_file(Path(dataset))
    if corruption not in CORRUPTIONS:
        raise ValueError(
            f"corruption must be one of {sorted(CORRUPTIONS)}. Got corruption={corruption!r}."
        )
    level = CORRUPTIONS[corruption][0] if level is None else float(level)
    signals = load_training_data(dataset, seed=seed, **signal_options)
    rng = np.random.default_rng([seed, 7_000_003])
    train_observations = corrupt(corruption, signals.train, level, rng=rng)
    heldout_observations = None
    if signals.heldout is not None:
        heldout_observations = corrupt(corruption, signals.heldout, level, rng=rng, heldout=True)
    info = {
        **signals.info,
        "pairs": {
            "source": "corruption generator",
            "corruption": corruption,
            "level": level,
            "formula": CORRUPTIONS[corruption][1],
            "seed": seed,
            "observation_shape": list(train_observations.shape[1:]),
        },
    }
    return PairedTrainingData(
        signals.train, signals.heldout, info, train_observations, heldout_observations
    )


def _paired_file(path: Path) -> PairedTrainingData:
    if not is_paired_file(str(path)):
        raise ValueError(
            "dataset must be a .npz file with arrays 'signal' and 'observation' for paired "
            f"training without a corruption. Got {str(path)!r}."
        )
    signal = data.load_array(path, key="signal")
    with np.load(path, allow_pickle=False) as archive:
        observation = archive["observation"]
    if observation.dtype == np.uint8:
        observation = observation / 255.0
    elif not np.issubdtype(observation.dtype, np.floating):
        raise ValueError(
            f"observation in {path} must be uint8 or floating. Got dtype {observation.dtype}."
        )
    observation = np.asarray(observation, dtype=np.float32)
    if observation.ndim == 3:
        observation = observation[..., None]
    if observation.ndim != 4 or observation.shape[:3] != signal.shape[:3]:
        raise ValueError(
            f"observation in {path} must have shape ({signal.shape[0]}, {signal.shape[1]}, "
            f"{signal.shape[2]}[, channels]) to pair with signal. Got {observation.shape}."
        )
    if not np.all(np.isfinite(observation)):
        raise ValueError(f"observation in {path} must be finite. Got NaN or infinite values.")
    cut = len(signal) - len(signal) // 10
    has_heldout = cut < len(signal)
    info = {
        "dataset": str(path),
        "source": "paired array file",
        "file": str(path),
        "num_images": len(signal),
        "shape": list(signal.shape[1:]),
        "channels": int(signal.shape[3]),
        "resolution": list(signal.shape[1:3]),
        "layout": "channel-last (height, width, channels), float32",
        "observed_range": [float(signal.min()), float(signal.max())],
        "num_train": cut,
        "num_heldout": len(signal) - cut,
        "split": f"first {cut} pairs train, last {len(signal) - cut} held out",
        "pairs": {
            "source": "array file",
            "keys": list(PAIRED_KEYS),
            "value_mapping": "signal: as load_array; observation: uint8 / 255, floats as "
            "they are (any finite range)",
            "observation_shape": list(observation.shape[1:]),
        },
    }
    return PairedTrainingData(
        signal[:cut],
        signal[cut:] if has_heldout else None,
        info,
        observation[:cut],
        observation[cut:] if has_heldout else None,
    )
