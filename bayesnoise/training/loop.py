"""The training loop: steps, held-out evaluations, checkpoints and a progress bar."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import equinox as eqx
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, PRNGKeyArray
from tqdm.auto import tqdm

from bayesnoise.sde import AbstractSDE
from bayesnoise.training.conditional import ConditioningSettings, conditional_heldout_loss
from bayesnoise.training.loss import heldout_loss
from bayesnoise.training.optimisation import StepSettings, init_state, train_step
from bayesnoise.training.resume import load_state, read_saved_run, run_identity, save_state

__all__ = ["train_score_network"]

Images = Float[Array, "num_images height width channels"]


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
    adam_eps: float = 1e-8,
    eps: float = 1e-3,
    checkpoint_path: str | Path | None = None,
    checkpoint_every: int = 500,
    eval_every: int = 500,
    on_checkpoint: Callable[[eqx.Module, dict], Any] | None = None,
    max_wall_time: float | None = None,
    progress: bool = True,
    train_observations: Images | None = None,
    heldout_observations: Images | None = None,
    conditioning: ConditioningSettings | None = None,
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
    batch_size, learning_rate, ema_decay, grad_clip, warmup_steps, adam_eps, eps
        Batch size; Adam's learning rate; EMA decay (0.999 for short runs, the paper's
        0.99999 for long ones); global-norm clip; linear warm-up steps; Adam's ε; the
        smallest diffusion time t of the loss (see :mod:`bayesnoise.training.optimisation`).
    checkpoint_path : str or Path, optional
        Training-state file (weights, EMA, optimiser state, step, key), written atomically
        every ``checkpoint_every`` steps and at the end. If it exists, training resumes from
        it, after checking that it was saved by the same run: same SDE, step settings and
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
        Show a tqdm progress bar with the loss, steps/s and the time left.
    train_observations, heldout_observations : array (N, H, W, C'), optional
        The observations paired with the training / held-out images: ``network`` is then
        conditional (``network(x, t, y, mask)``) and trained by
        :func:`~bayesnoise.training.conditional.conditional_dsm_loss`.
    conditioning : ConditioningSettings, optional
        Condition dropout and eq. 14's mask in a conditional run (default
        :class:`~bayesnoise.training.conditional.ConditioningSettings`).
    key : PRNGKeyArray
        Randomness of batches, times and noise.

    Returns
    -------
    ema_network : eqx.Module
    history : dict
        Lists ``step``, ``train_loss`` (mean of the batch losses of every 10th step since the
        previous record), ``heldout_loss`` (NaN where not evaluated), ``wall_time`` (seconds of
        training, summed over resumes).
    """
    _check_arguments(num_steps, batch_size, checkpoint_every, eval_every, ema_decay,
                     learning_rate, max_wall_time)  # fmt: skip
    train_images = jnp.asarray(train_images)
    if train_images.ndim != 4:
        raise ValueError(
            f"train_images must have shape (N, height, width, channels). Got {train_images.shape}."
        )
    settings = StepSettings(
        batch_size, learning_rate, grad_clip, warmup_steps, adam_eps, ema_decay, eps
    )
    if train_observations is not None:
        train_observations = _paired(train_observations, train_images, "train")
        conditioning = (conditioning or ConditioningSettings()).check()
        if heldout_images is not None:
            heldout_observations = _paired(heldout_observations, heldout_images, "heldout")
    state = init_state(network, settings, key=key)
    identity = run_identity(sde, settings, train_images, train_observations, conditioning)
    log = _Log()
    checkpoint_path = None if checkpoint_path is None else Path(checkpoint_path)
    if checkpoint_path is not None and checkpoint_path.is_file():
        state = load_state(checkpoint_path, state, identity)
        log.restore(*read_saved_run(checkpoint_path))

    def evaluate():
        if heldout_images is None:
            return float("nan")
        if train_observations is not None:
            return conditional_heldout_loss(
                state.ema_network, sde, heldout_images, heldout_observations, conditioning,
                eps=eps,
            )  # fmt: skip
        return heldout_loss(state.ema_network, sde, heldout_images, eps=eps)

    start_step = int(state.step)
    bar = tqdm(
        total=num_steps, initial=start_step, disable=not progress, unit="step", smoothing=0.1
    )
    for step in range(start_step + 1, num_steps + 1):
        state, loss = train_step(
            train_images, state, sde, settings, train_observations, conditioning
        )
        if step % 10 == 0 or step == num_steps:
            log.add_loss(float(loss))
            bar.set_postfix(loss=f"{log.last_loss:.4f}", refresh=False)
            bar.update(step - bar.n)
        out_of_time = max_wall_time is not None and log.wall_time() > max_wall_time
        last = step == num_steps or out_of_time
        is_evaluation = step % eval_every == 0 or last
        is_checkpoint = step % checkpoint_every == 0 or last
        if is_evaluation or is_checkpoint:
            heldout = evaluate() if is_evaluation else float("nan")
            log.record(step, float(loss), heldout)
            if np.isfinite(heldout):
                bar.set_postfix(loss=f"{float(loss):.4f}", heldout=f"{heldout:.4f}")
        if is_checkpoint:
            summary = log.summary(step, "time limit" if out_of_time and step < num_steps else None)
            if checkpoint_path is not None:
                save_state(checkpoint_path, state, {**identity, "history": log.history, **summary})
            if on_checkpoint is not None:
                on_checkpoint(state.ema_network, summary)
        if out_of_time:
            break
    bar.close()
    return state.ema_network, log.history


def _paired(observations, images, split: str):
    """``observations`` as an array with one observation per image of ``images``."""
    observations = None if observations is None else jnp.asarray(observations)
    if (
        observations is None
        or observations.ndim != 4
        or (observations.shape[:3] != images.shape[:3])
    ):
        got = None if observations is None else observations.shape
        raise ValueError(
            f"{split}_observations must pair with the {split} images: shape "
            f"({images.shape[0]}, {images.shape[1]}, {images.shape[2]}, channels). Got {got}."
        )
    return observations


class _Log:
    """The history of a run: losses, held-out losses and wall time, summed over resumes."""

    def __init__(self):
        self.history: dict[str, list] = {
            "step": [], "train_loss": [], "heldout_loss": [], "wall_time": []
        }  # fmt: skip
        self.wall_time_before = 0.0
        self.started = time.perf_counter()
        self.running, self.count, self.last_loss = 0.0, 0, float("nan")

    def restore(self, history: dict | None, wall_time: float) -> None:
        if history is not None:
            self.history = history
        self.wall_time_before = wall_time

    def wall_time(self) -> float:
        return self.wall_time_before + time.perf_counter() - self.started

    def add_loss(self, loss: float) -> None:
        self.running, self.count, self.last_loss = self.running + loss, self.count + 1, loss

    def record(self, step: int, loss: float, heldout: float) -> None:
        """Append one row: the mean of the losses since the last row (or ``loss`` if none)."""
        mean = self.running / self.count if self.count else loss
        for name, value in [("step", step), ("train_loss", mean), ("heldout_loss", heldout),
                            ("wall_time", self.wall_time())]:  # fmt: skip
            self.history[name].append(value)
        self.running, self.count = 0.0, 0

    def summary(self, step: int, stopped: str | None) -> dict:
        finite = [v for v in self.history["heldout_loss"] if v is not None and np.isfinite(v)]
        return {
            "step": step,
            "train_loss": self.history["train_loss"][-1] if self.history["train_loss"] else None,
            "heldout_loss": finite[-1] if finite else None,
            "wall_time": self.wall_time(),
            "stopped": stopped,
        }


def _check_arguments(num_steps, batch_size, checkpoint_every, eval_every, ema_decay,
                     learning_rate, max_wall_time) -> None:  # fmt: skip
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
