"""Saving and resuming a run: the training state in a checkpoint file, with the run's identity.

The state file uses the checkpoint layout of :mod:`bayesnoise.checkpoints` with
``"kind": "training_state"``; its header also holds the history and the last summary.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import jax
import numpy as np

from bayesnoise.checkpoints import read_header, read_tree, write_tree
from bayesnoise.sde import AbstractSDE
from bayesnoise.training.conditional import ConditioningSettings
from bayesnoise.training.optimisation import StepSettings, TrainingState

__all__ = [
    "array_sha256",
    "batch_indices",
    "load_state",
    "read_saved_run",
    "run_identity",
    "save_state",
]


def run_identity(
    sde: AbstractSDE,
    settings: StepSettings,
    train_images,
    train_observations=None,
    conditioning: ConditioningSettings | None = None,
) -> dict:
    """What a resumed run must share with the saved one: the SDE, every step setting and the
    training images themselves (by count and SHA-256); for a conditional run also the paired
    observations and the conditioning settings."""
    identity = {
        "sde": type(sde).__name__,
        **settings._asdict(),
        "num_train": int(train_images.shape[0]),
        "train_images_sha256": array_sha256(train_images),
    }
    if train_observations is not None:
        identity["train_observations_sha256"] = array_sha256(train_observations)
        identity.update((conditioning or ConditioningSettings())._asdict())
    return identity


def array_sha256(array) -> str:
    """SHA-256 of an array's bytes: identifies training data in a run's identity."""
    return hashlib.sha256(np.asarray(array).tobytes()).hexdigest()


def batch_indices(step: int, batch_size: int, num_images: int, seed: int) -> np.ndarray:
    """The training images of batch ``step`` when epoch e is the permutation seeded by (seed, e):
    a function of the step alone, so a resumed run sees the batches an unbroken one would."""
    per_epoch = num_images // batch_size
    epoch, position = divmod(step, per_epoch)
    order = np.random.default_rng([seed, epoch]).permutation(num_images)
    return order[position * batch_size : (position + 1) * batch_size]


def save_state(path: Path, state: TrainingState, header: dict) -> None:
    """Write ``state`` (keys as raw key data) and ``header`` to ``path`` atomically.

    ``state`` is a :class:`TrainingState` or any NamedTuple of arrays and modules with a ``key``
    field (e.g. the GAN baseline's two networks and optimisers).
    """
    tree = state._replace(key=jax.random.key_data(state.key))
    write_tree(path, tree, {"kind": "training_state", **header})


def load_state(path: Path, like: TrainingState, identity: dict) -> TrainingState:
    """The state saved in ``path``, if it was saved by the run ``identity`` describes.

    Raises
    ------
    ValueError
        Naming the first field of ``identity`` that differs, e.g. ``cannot resume: the saved
        run has batch_size=16, this run has batch_size=8``.
    """
    tree, saved = read_tree(path, like._replace(key=jax.random.key_data(like.key)))
    for name in identity:
        if saved.get(name) != identity.get(name):
            raise ValueError(
                f"{path}: cannot resume: the saved run has {name}={saved.get(name)!r}, "
                f"this run has {name}={identity.get(name)!r}. Delete the file to start afresh."
            )
    key = jax.random.wrap_key_data(tree.key, impl=jax.random.key_impl(like.key))
    return tree._replace(key=key)


def read_saved_run(path: Path) -> tuple[dict | None, float]:
    """The saved history and wall time (seconds) of the run in ``path``."""
    header = read_header(path)
    return header.get("history"), float(header.get("wall_time", 0.0))
