"""Denoising score matching: train a score network for a diffusion prior.

For an SDE with marginal q(x_t | x_0) = N(a_t x_0, s_t² I), draw t ~ U[eps, 1], z ~ N(0, I),
x_t = a_t x_0 + s_t z and minimise (Song et al. 2021, eq. 7 with weighting λ(t) = s_t²)

    L(θ) = E_{t, x_0, z} mean_pixels (net_θ(x_t, t) + z)²,

so the network learns the *scaled* score s_t ∇ log p_t(x_t) = -E[z | x_t], the quantity
:class:`~bayesnoise.priors.ScoreNetPrior` divides by s_t. Optimiser: Adam (the paper's
lr 5e-4) after global-norm gradient clipping, with a linear warm-up; an exponential moving
average (EMA) of the weights, with decay min(ema_decay, (1 + step) / (10 + step)), is kept and
is what gets evaluated and exported.
"""

from __future__ import annotations

import hashlib
import os
import shlex
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, Float, PRNGKeyArray
from tqdm.auto import tqdm

from bayesnoise.checkpoints import (
    read_header,
    read_tree,
    save_checkpoint,
    sde_to_header,
    write_tree,
)
from bayesnoise.nets import build_network, count_parameters
from bayesnoise.sde import VPSDE, AbstractSDE

__all__ = [
    "DATASETS",
    "TrainingState",
    "dsm_loss",
    "heldout_loss",
    "make_optimizer",
    "train_from_config",
    "train_score_network",
]

Images = Float[Array, "num_images height width channels"]


class TrainingState(NamedTuple):
    """Everything a resumed run needs: weights, EMA weights, optimiser state, step and key."""

    network: eqx.Module
    ema_network: eqx.Module
    opt_state: optax.OptState
    step: Array
    key: PRNGKeyArray


def dsm_loss(
    network: eqx.Module,
    sde: AbstractSDE,
    images: Images,
    key: PRNGKeyArray,
    eps: float = 1e-3,
) -> Float[Array, ""]:
    """Denoising score-matching loss of ``network`` on a batch of clean ``images``.

    ``mean over batch and pixels of (net(a_t x_0 + s_t z, t) + z)²`` with t ~ U[eps, 1] per image.
    A network that predicts 0 scores 1; the optimum is below 1 by the fraction of the noise
    that can be recovered from x_t.
    """
    time_key, noise_key = jax.random.split(key)
    times = jax.random.uniform(time_key, images.shape[:1], images.dtype, eps, 1.0)
    noise = jax.random.normal(noise_key, images.shape, images.dtype)
    return _loss_at(network, sde, images, times, noise)


def _loss_at(network, sde, images, times, noise):
    broadcast = (-1,) + (1,) * (images.ndim - 1)
    mean = sde.marginal_mean_coefficient(times).reshape(broadcast)
    std = sde.marginal_std(times).reshape(broadcast)
    noisy = (mean * images + std * noise).astype(images.dtype)
    prediction = jax.vmap(network)(noisy, times)
    return jnp.mean((prediction + noise) ** 2)


@eqx.filter_jit
def _chunk_loss(network, sde, images, times, noise):
    return _loss_at(network, sde, images, times, noise)


def heldout_loss(
    network: eqx.Module,
    sde: AbstractSDE,
    images: Images,
    *,
    key: PRNGKeyArray | None = None,
    eps: float = 1e-3,
    batch_size: int = 250,
) -> float:
    """The DSM loss on held-out images with fixed times and noise (comparable across calls).

    The same ``key`` (default ``jax.random.key(0)``) draws the same t and z for every call, so
    the numbers of two networks, or of one network at two training steps, differ only through
    the networks. Evaluated in chunks of ``batch_size``; the last partial chunk is dropped.
    """
    images = jnp.asarray(images)
    count = (images.shape[0] // batch_size) * batch_size
    if count == 0:
        batch_size = count = images.shape[0]
    key = jax.random.key(0) if key is None else key
    time_key, noise_key = jax.random.split(key)
    times = jax.random.uniform(time_key, (count,), images.dtype, eps, 1.0)
    noise = jax.random.normal(noise_key, (count, *images.shape[1:]), images.dtype)
    losses = [
        _chunk_loss(
            network,
            sde,
            images[start : start + batch_size],
            times[start : start + batch_size],
            noise[start : start + batch_size],
        )
        for start in range(0, count, batch_size)
    ]
    return float(jnp.mean(jnp.stack(losses)))


def make_optimizer(
    learning_rate: float = 5e-4, grad_clip: float = 1.0, warmup_steps: int = 100
) -> optax.GradientTransformation:
    """Global-norm clipping, then Adam with a linear warm-up to ``learning_rate``."""
    schedule = (
        optax.linear_schedule(0.0, learning_rate, warmup_steps)
        if warmup_steps > 0
        else learning_rate
    )
    return optax.chain(optax.clip_by_global_norm(grad_clip), optax.adam(schedule))


class _StepSettings(NamedTuple):
    """Python numbers fixed for a run: static under ``eqx.filter_jit``, so runs with equal
    settings (and network structure) share one compiled step."""

    learning_rate: float
    grad_clip: float
    warmup_steps: int
    ema_decay: float
    batch_size: int
    eps: float


@eqx.filter_jit
def _train_step(train_images, state: TrainingState, sde: AbstractSDE, settings: _StepSettings):
    optimizer = make_optimizer(settings.learning_rate, settings.grad_clip, settings.warmup_steps)
    key = jax.random.fold_in(state.key, state.step)
    index_key, loss_key = jax.random.split(key)
    # Batches are drawn (with replacement) from the step's own key, so a resumed run sees
    # exactly the batches an uninterrupted one would have.
    index = jax.random.randint(index_key, (settings.batch_size,), 0, train_images.shape[0])
    loss, grads = eqx.filter_value_and_grad(dsm_loss)(
        state.network, sde, train_images[index], loss_key, settings.eps
    )
    params = eqx.filter(state.network, eqx.is_inexact_array)
    # optax's Adam computes `b1 ** count` (a Python float to an int32 power), which strict
    # dtype promotion rejects; allow standard promotion inside the optimiser only.
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = optimizer.update(grads, state.opt_state, params)
    network = eqx.apply_updates(state.network, updates)
    # EMA with a warm-up (TensorFlow's ExponentialMovingAverage with num_updates): early on
    # the average forgets faster, so a short run's EMA is not dominated by the initial weights.
    step = state.step.astype(jnp.float32)
    decay = jnp.minimum(settings.ema_decay, (1 + step) / (10 + step))
    ema_network = jax.tree.map(
        lambda e, p: e * decay + (1 - decay) * p if eqx.is_inexact_array(e) else e,
        state.ema_network,
        network,
    )
    return TrainingState(network, ema_network, opt_state, state.step + 1, state.key), loss


def _save_state(path: Path, state: TrainingState, header: dict) -> None:
    tree = state._replace(key=jax.random.key_data(state.key))
    write_tree(path, tree, {"kind": "training_state", **header})


def _load_state(path: Path, like: TrainingState, header: dict) -> TrainingState:
    """The saved training state, if it was saved by a run with the same ``header`` settings."""
    tree, saved = read_tree(path, like._replace(key=jax.random.key_data(like.key)))
    for name in header:
        if saved.get(name) != header.get(name):
            raise ValueError(
                f"{path}: cannot resume: the saved run has {name}={saved.get(name)!r}, "
                f"this run has {name}={header.get(name)!r}. Delete the file to start afresh."
            )
    return tree._replace(key=jax.random.wrap_key_data(tree.key, impl=jax.random.key_impl(like.key)))


def train_score_network(
    network: eqx.Module,
    sde: AbstractSDE,
    train_images: Images,
    heldout_images: Images | None = None,
    *,
    num_steps: int,
    batch_size: int = 128,
    learning_rate: float = 5e-4,
    ema_decay: float = 0.999,
    grad_clip: float = 1.0,
    warmup_steps: int = 100,
    eps: float = 1e-3,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 500,
    eval_every: int = 500,
    on_checkpoint: Callable[[eqx.Module, dict], Any] | None = None,
    max_wall_time: float | None = None,
    progress: bool = True,
    key: PRNGKeyArray,
) -> tuple[eqx.Module, dict[str, list]]:
    """Train ``network`` by denoising score matching under ``sde``; return its EMA and a history.

    Parameters
    ----------
    network : eqx.Module
        ``network(x, t)`` on one channel-last image, e.g. :class:`bayesnoise.nets.UNet`.
    sde : AbstractSDE
        The forward SDE whose marginals define the noise levels.
    train_images, heldout_images : array (N, H, W, C)
        Clean training images; optional held-out images for the fixed-noise held-out loss.
    num_steps : int
        Total optimisation steps (a resumed run continues up to this number).
    batch_size, learning_rate, ema_decay, grad_clip, warmup_steps, eps
        Batch size; Adam's learning rate; EMA decay (0.999 for short runs, the paper's
        0.99999 for long ones); global-norm clip; linear warm-up steps; smallest t.
    checkpoint_path : str or Path, optional
        Training-state file (weights, EMA, optimiser state, step, key), written atomically
        every ``checkpoint_every`` steps and at the end. If it exists, training resumes from
        it, after checking that it was saved by the same run: same SDE, optimiser settings and
        training images (a ``ValueError`` names the first field that differs).
    eval_every : int
        Steps between held-out evaluations (of the EMA weights).
    on_checkpoint : callable, optional
        Called as ``on_checkpoint(ema_network, summary)`` at every checkpoint, e.g. to export
        a usable prior while training runs; ``summary`` has step, losses, wall time and
        ``stopped`` (``"time limit"`` when ``max_wall_time`` ended training early, else None).
    max_wall_time : float, optional
        Stop early (evaluating and checkpointing as at the last step) once this many seconds of
        training have passed, summed over resumes; for fixed CPU budgets.
    progress : bool
        Show a tqdm progress bar with the loss and steps/s.
    key : PRNGKeyArray
        Randomness of batches, times and noise.

    Returns
    -------
    ema_network : eqx.Module
    history : dict
        Lists ``step``, ``train_loss`` (mean of the batch losses of every 10th step since the
        previous record), ``heldout_loss``
        (NaN where not evaluated), ``wall_time`` (seconds of training, summed over resumes).
    """
    for name, value in [
        ("num_steps", num_steps),
        ("batch_size", batch_size),
        ("checkpoint_every", checkpoint_every),
        ("eval_every", eval_every),
    ]:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{name} must be a positive integer. Got {value!r}.")
    if not 0 <= ema_decay < 1:
        raise ValueError(f"ema_decay must be in [0, 1). Got {ema_decay}.")
    if not (isinstance(learning_rate, int | float) and 0 < learning_rate < float("inf")):
        raise ValueError(f"learning_rate must be a finite number > 0. Got {learning_rate!r}.")
    if max_wall_time is not None and not max_wall_time > 0:
        raise ValueError(f"max_wall_time must be a number of seconds > 0. Got {max_wall_time!r}.")
    train_images = jnp.asarray(train_images)
    if train_images.ndim != 4:
        raise ValueError(
            f"train_images must have shape (N, height, width, channels). Got {train_images.shape}."
        )
    optimizer = make_optimizer(learning_rate, grad_clip, warmup_steps)
    state = TrainingState(
        network=network,
        ema_network=network,
        opt_state=optimizer.init(eqx.filter(network, eqx.is_inexact_array)),
        step=jnp.asarray(0, dtype=jnp.int32),
        key=key,
    )
    # A resumed run must be the run that was saved: every setting that shapes the trajectory
    # and the training data themselves (by checksum) must match.
    resume_header = {
        "sde": type(sde).__name__,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "ema_decay": ema_decay,
        "grad_clip": grad_clip,
        "warmup_steps": warmup_steps,
        "eps": eps,
        "num_train": int(train_images.shape[0]),
        "train_images_sha256": hashlib.sha256(np.asarray(train_images).tobytes()).hexdigest(),
    }
    history: dict[str, list] = {"step": [], "train_loss": [], "heldout_loss": [], "wall_time": []}
    wall_time_before = 0.0
    checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
    if checkpoint_path is not None and checkpoint_path.is_file():
        state = _load_state(checkpoint_path, state, resume_header)
        saved_header = read_header(checkpoint_path)
        history = saved_header.get("history", history)
        wall_time_before = float(saved_header.get("wall_time", 0.0))

    settings = _StepSettings(learning_rate, grad_clip, warmup_steps, ema_decay, batch_size, eps)
    start_step = int(state.step)
    started = time.perf_counter()
    running, count = 0.0, 0

    def wall_time():
        return wall_time_before + time.perf_counter() - started

    def record(step, evaluate):
        nonlocal running, count
        heldout = (
            heldout_loss(state.ema_network, sde, heldout_images, eps=eps)
            if evaluate and heldout_images is not None
            else float("nan")
        )
        history["step"].append(step)
        history["train_loss"].append(running / max(count, 1))
        history["heldout_loss"].append(heldout)
        history["wall_time"].append(wall_time())
        running, count = 0.0, 0
        return heldout

    def checkpoint(step, stopped=None):
        summary = {
            "step": step,
            "train_loss": history["train_loss"][-1] if history["train_loss"] else None,
            "heldout_loss": _last_finite(history["heldout_loss"]),
            "wall_time": wall_time(),
            "stopped": stopped,
        }
        if checkpoint_path is not None:
            _save_state(checkpoint_path, state, {**resume_header, "history": history, **summary})
        if on_checkpoint is not None:
            on_checkpoint(state.ema_network, summary)

    bar = tqdm(
        total=num_steps, initial=start_step, disable=not progress, unit="step", smoothing=0.1
    )
    loss_value = None
    for step in range(start_step + 1, num_steps + 1):
        state, loss_value = _train_step(train_images, state, sde, settings)
        if step % 10 == 0 or step == num_steps:
            loss_value = float(loss_value)
            running += loss_value
            count += 1
            bar.set_postfix(loss=f"{loss_value:.4f}", refresh=False)
            bar.update(step - bar.n)
        out_of_time = max_wall_time is not None and wall_time() > max_wall_time
        last = step == num_steps or out_of_time
        evaluate = step % eval_every == 0 or last
        is_checkpoint = step % checkpoint_every == 0 or last
        if evaluate or is_checkpoint:
            if count == 0:
                running, count = float(loss_value), 1
            heldout = record(step, evaluate)
            if evaluate and np.isfinite(heldout):
                bar.set_postfix(loss=f"{float(loss_value):.4f}", heldout=f"{heldout:.4f}")
        if is_checkpoint:
            checkpoint(step, "time limit" if out_of_time and step < num_steps else None)
        if out_of_time:
            break
    bar.close()
    return state.ema_network, history


def _last_finite(values):
    finite = [v for v in values if v is not None and np.isfinite(v)]
    return finite[-1] if finite else None


# --------------------------------------------------------------------------- from a config

DATASETS = ("fashion_mnist", "mnist_5k", "sine")
_DEFAULT_ARCHITECTURES = {
    "unet": {"channels": [16, 32, 64], "num_res_blocks": 1, "embedding_dim": 32},
    "ncsnv2": {"features": 32},
}


def _load_dataset(dataset: str, seed: int) -> tuple[np.ndarray, np.ndarray, dict]:
    """Training images, held-out images and the header's ``data`` entry for ``dataset``."""
    from bayesnoise import data

    if dataset == "fashion_mnist":
        train, _ = data.load_fashion_mnist("train")
        heldout = data.load_fashion_mnist("test")[0][:1000]
        info = {"split": "train (60000); held out: first 1000 of test", "value_range": [0, 1]}
    elif dataset == "mnist_5k":
        (train, _), (heldout, _) = data.mnist_5k_split()
        info = {"split": "mnist_5k_split: 4000 train / 1000 held out", "value_range": [0, 1]}
    elif dataset == "sine":
        base = jax.random.key(seed + 1_000_003)
        train = np.asarray(data.sinusoidal_noise_dataset(jax.random.fold_in(base, 0), 20_000))
        heldout = np.asarray(data.sinusoidal_noise_dataset(jax.random.fold_in(base, 1), 1000))
        info = {
            "split": f"20000 generated draws (seed {seed}); 1000 held-out draws",
            "value_range": None,
            "generator": "sinusoidal_noise_dataset(average_std=0.2, period=16)",
        }
    elif Path(dataset).suffix in (".npy", ".npz"):
        images = data.load_array(dataset)
        cut = max(1, images.shape[0] // 10)
        train, heldout = images[:-cut], images[-cut:]
        info = {"split": f"first {len(train)} train, last {cut} held out", "value_range": [0, 1]}
    else:
        raise ValueError(
            f"dataset must be one of {DATASETS} or a .npy/.npz file. Got dataset={dataset!r}."
        )
    info = {
        "dataset": dataset,
        "shape": list(train.shape[1:]),
        "layout": "channel-last (height, width, channels), float32",
        "observed_range": [float(train.min()), float(train.max())],
        "num_train": int(train.shape[0]),
        "num_heldout": int(heldout.shape[0]),
        **info,
    }
    return train, heldout, info


def train_from_config(
    dataset: str,
    architecture: str,
    out: str | Path,
    *,
    steps: int,
    batch_size: int = 64,
    learning_rate: float = 5e-4,
    ema_decay: float = 0.999,
    architecture_options: dict | None = None,
    sde: AbstractSDE | None = None,
    checkpoint_every: int = 250,
    eval_every: int = 250,
    state_path: str | Path | None = None,
    max_wall_time: float | None = None,
    weights_dtype: str = "float32",
    seed: int = 0,
    device: str | None = None,
    command: str | None = None,
    progress: bool = True,
) -> tuple[eqx.Module, dict]:
    """Train a score prior on a named dataset and write it as a checkpoint (the CLI's entry).

    The exported file ``out`` (EMA weights + header, see :mod:`bayesnoise.checkpoints`) is
    rewritten at every checkpoint, so a usable prior exists while training runs; its header's
    ``training.finished`` turns true once all ``steps`` have run. When ``max_wall_time`` ends
    training first, the header says ``finished: false`` and ``stopped: "time limit"``; rerun
    the same call to continue. The resumable training state lives in
    ``state_path`` (default ``out`` + ``.state``); running the same call again resumes.

    Parameters
    ----------
    dataset : str
        ``"fashion_mnist"`` (60 000 train; held out: first 1 000 test images), ``"mnist_5k"``
        (4 000 / 1 000), ``"sine"`` (generated sinusoidal noise, average std 0.2) or a
        ``.npy``/``.npz`` file of images (last 10 % held out).
    architecture : {"unet", "ncsnv2"}
        Network family; ``architecture_options`` override its defaults (unet:
        channels (16, 32, 64), one residual block per level, time embedding 32).
    out : str or Path
        The checkpoint to write.
    steps, batch_size, learning_rate, ema_decay
        Training length and optimiser settings (see :func:`train_score_network`).
    sde : AbstractSDE, optional
        Default ``VPSDE(beta_min=0.1, beta_max=20.0)``.
    checkpoint_every, eval_every : int
        Steps between checkpoints / held-out evaluations.
    max_wall_time : float, optional
        Stop early after this many seconds of training.
    weights_dtype : {"float32", "float16"}
        Storage dtype of the exported weights.
    seed : int
        Seed of the initial weights and the training randomness.
    device, command : str, optional
        Recorded in the header; by default the JAX platform and CPU count, and ``sys.argv``.
    progress : bool
        Show a progress bar.

    Returns
    -------
    ema_network, header
    """
    if architecture not in _DEFAULT_ARCHITECTURES:
        raise ValueError(
            f"architecture must be one of {sorted(_DEFAULT_ARCHITECTURES)}. "
            f"Got architecture={architecture!r}."
        )
    out = Path(out)
    state_path = Path(state_path) if state_path is not None else out.with_name(out.name + ".state")
    sde = VPSDE(beta_min=0.1, beta_max=20.0) if sde is None else sde
    train, heldout, data_info = _load_dataset(dataset, seed)
    hyperparameters = {
        **_DEFAULT_ARCHITECTURES[architecture],
        "in_channels": int(train.shape[-1]),
        **(architecture_options or {}),
    }
    init_key, train_key = jax.random.split(jax.random.key(seed))
    network = build_network(architecture, hyperparameters, key=init_key)
    if device is None:
        device = f"{jax.devices()[0].platform}, {os.cpu_count()} cores"
    training = {
        "steps_requested": steps,
        "batch_size": batch_size,
        "learning_rate": learning_rate,
        "ema_decay": ema_decay,
        "grad_clip": 1.0,
        "warmup_steps": 100,
        "eps": 1e-3,
        "seed": seed,
        "loss": "mean over batch and pixels of (net(a_t x0 + s_t z, t) + z)^2, t ~ U[eps, 1]",
        "command": command if command is not None else shlex.join(sys.argv),
        "device": device,
        "num_parameters": count_parameters(network),
    }
    base_header = {"sde": sde_to_header(sde), "data": data_info}

    def export(ema_network, summary, finished=False):
        stopped = {} if summary.get("stopped") is None else {"stopped": summary["stopped"]}
        header = {
            **base_header,
            "training": {
                **training,
                "steps": summary["step"],
                "train_loss": summary["train_loss"],
                "heldout_loss": summary["heldout_loss"],
                "wall_time_s": round(summary["wall_time"], 1),
                "finished": finished,
                **stopped,
            },
        }
        return save_checkpoint(out, ema_network, header, dtype=weights_dtype)

    last_summary: dict = {}

    def on_checkpoint(ema_network, summary):
        last_summary.update(summary)
        export(ema_network, summary)

    ema_network, history = train_score_network(
        network,
        sde,
        train,
        heldout,
        num_steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        ema_decay=ema_decay,
        checkpoint_path=state_path,
        checkpoint_every=checkpoint_every,
        eval_every=eval_every,
        on_checkpoint=on_checkpoint,
        max_wall_time=max_wall_time,
        progress=progress,
        key=train_key,
    )
    if not last_summary:  # resumed a run that had already reached its step count
        saved = read_header(state_path)
        last_summary = {k: saved.get(k) for k in ("step", "train_loss", "heldout_loss")}
        last_summary["wall_time"] = float(saved.get("wall_time", 0.0))
    # Finished only when every requested step ran; a --minutes stop says so in "stopped".
    finished = last_summary["step"] is not None and last_summary["step"] >= steps
    header = export(ema_network, last_summary, finished=finished)
    return ema_network, header
