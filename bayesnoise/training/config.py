"""Train a score prior from a few settings and write it as a checkpoint (what the CLI runs).

The header of the written checkpoint records what the run actually used: the data (a named
dataset, a folder with its glob, number of images and fitting rule, or an array file and key;
channels and resolution), the network (preset, architecture and hyper-parameters), the SDE and
every optimiser setting passed to :func:`~bayesnoise.training.train_score_network`.
"""

from __future__ import annotations

import os
import shlex
import sys
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp

from bayesnoise.checkpoints import read_header, save_checkpoint, sde_to_header
from bayesnoise.nets import build_network, count_parameters
from bayesnoise.sde import VPSDE, AbstractSDE
from bayesnoise.training.conditional import (
    CONDITIONAL_LOSS_DESCRIPTION,
    ConditioningSettings,
    warm_start,
)
from bayesnoise.training.datasets import load_training_data
from bayesnoise.training.loop import train_score_network
from bayesnoise.training.loss import LOSS_DESCRIPTION
from bayesnoise.training.optimisation import StepSettings
from bayesnoise.training.paired import is_paired_file, load_paired_training_data

__all__ = ["ARCHITECTURE_DEFAULTS", "PRESETS", "train_from_config"]

PRESETS = {
    "tiny": ("unet", {"channels": [8], "num_res_blocks": 1, "embedding_dim": 16, "groups": 4}),
    "small": ("unet", {"channels": [16, 32, 64], "num_res_blocks": 1, "embedding_dim": 32}),
    "paper": ("ncsnv2", {"features": 64}),
}
"""Network sizes: ``tiny`` for smoke tests, ``small`` the shipped priors' U-Net (CPU-sized),
``paper`` the paper's NCSNv2 width for 64 x 64 images (time-conditioned)."""
ARCHITECTURE_DEFAULTS = {"unet": PRESETS["small"][1], "ncsnv2": {"features": 32}}
OPTIMIZER_DESCRIPTION = (
    "optax.chain(clip_by_global_norm(grad_clip), adam(linear warm-up from 0 to learning_rate "
    "over warmup_steps, eps=adam_eps)); EMA decay min(ema_decay, (1 + step) / (10 + step))"
)


def train_from_config(
    dataset: str,
    architecture: str | None,
    out: str | Path,
    *,
    steps: int,
    preset: str | None = None,
    architecture_options: dict | None = None,
    glob: str | None = None,
    array_key: str | None = None,
    channels: int | None = None,
    resolution: int | tuple[int, int] | None = None,
    fit: str = "resize",
    crops_per_image: int = 8,
    batch_size: int = 64,
    learning_rate: float = 5e-4,
    ema_decay: float = 0.999,
    grad_clip: float = 1.0,
    warmup_steps: int = 100,
    adam_eps: float = 1e-8,
    min_time: float = 1e-3,
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
    corruption: str | None = None,
    corruption_level: float | None = None,
    conditioning: ConditioningSettings | None = None,
    init_from: str | Path | None = None,
) -> tuple[eqx.Module, dict]:
    """Train a score prior on ``dataset`` and write it to ``out`` (EMA weights + header).

    ``out`` is rewritten at every checkpoint, so a usable prior exists while training runs;
    its header's ``training.finished`` turns true once all ``steps`` have run (a
    ``max_wall_time`` stop says ``finished: false, stopped: "time limit"``). The resumable
    state lives in ``state_path`` (default ``out`` + ``.state``): the same call again resumes.

    Parameters
    ----------
    dataset : str
        A built-in dataset, a folder of images or a ``.npy``/``.npz`` file; ``glob``,
        ``array_key``, ``channels``, ``resolution``, ``fit`` and ``crops_per_image`` say which
        images and how they are brought to the model's shape (see
        :func:`~bayesnoise.training.load_training_data`).
    architecture : {"unet", "ncsnv2"} or None
        Network family; None takes the preset's (default preset: ``"small"``).
    out : str or Path
        The checkpoint to write.
    steps : int
        Training length.
    preset : {"tiny", "small", "paper"}, optional
        Network size (:data:`PRESETS`); ``architecture_options`` override its entries.
    batch_size, learning_rate, ema_decay, grad_clip, warmup_steps, adam_eps, min_time
        Step settings (see :func:`~bayesnoise.training.train_score_network`).
    sde : AbstractSDE, optional
        Default ``VPSDE(beta_min=0.1, beta_max=20.0)``.
    checkpoint_every, eval_every, max_wall_time
        Steps between checkpoints / held-out evaluations; stop after this many seconds.
    weights_dtype : {"float32", "float16"}
        Storage dtype of the exported weights.
    seed : int
        Seed of the initial weights, the training randomness and random crops.
    device, command : str, optional
        Recorded in the header; by default the JAX platform and CPU count, and ``sys.argv``.
    progress : bool
        Show a progress bar (loss, steps/s, time left).
    corruption, corruption_level : optional
        Train a *conditional* network on (signal, observation) pairs made by a built-in
        corruption of ``dataset`` ("digits", "gaussian", "inpaint", with its level; see
        :mod:`bayesnoise.training.paired`). A ``.npz`` ``dataset`` holding arrays ``signal``
        and ``observation`` (and no ``array_key``) is paired training too.
    conditioning : ConditioningSettings, optional
        Condition dropout and eq. 14's mask of a conditional run (default
        :class:`~bayesnoise.training.conditional.ConditioningSettings`); recorded in the
        header's ``training.conditioning``.
    init_from : str or Path, optional
        Start from this unconditional checkpoint of the same U-Net: a conditional network
        from its weights, an unconditional one continues its training
        (:func:`~bayesnoise.training.conditional.warm_start`); recorded in
        ``training.init_from``.

    Returns
    -------
    ema_network, header
    """
    architecture, options = _network_choice(architecture, preset, architecture_options)
    out = Path(out)
    state_path = Path(state_path) if state_path is not None else out.with_name(out.name + ".state")
    sde = VPSDE(beta_min=0.1, beta_max=20.0) if sde is None else sde
    signal_options = {"glob": glob, "array_key": array_key, "channels": channels,
                      "resolution": resolution, "fit": fit,
                      "crops_per_image": crops_per_image}  # fmt: skip
    paired = corruption is not None or is_paired_file(dataset, array_key)
    if paired and architecture != "unet":
        raise ValueError(
            "architecture must be 'unet' for paired (conditional) training: only the U-Net "
            f"takes the observation as input channels. Got architecture={architecture!r}."
        )
    if paired:
        data = load_paired_training_data(
            dataset, corruption=corruption, level=corruption_level, seed=seed,
            **(signal_options if corruption is not None else {}),
        )  # fmt: skip
        conditioning = (conditioning or ConditioningSettings()).check()
        options = {**options, "condition_channels": int(data.train_observations.shape[-1])}
        paired_keywords = {
            "train_observations": data.train_observations,
            "heldout_observations": data.heldout_observations,
            "conditioning": conditioning,
        }
    else:
        if corruption_level is not None or conditioning is not None:
            raise ValueError(
                "corruption_level and conditioning are settings of paired (conditional) "
                "training: give a corruption or a .npz with 'signal' and 'observation'."
            )
        data = load_training_data(dataset, seed=seed, **signal_options)
        paired_keywords = {}
    init_key, train_key = jax.random.split(jax.random.key(seed))
    network = build_network(
        architecture, {**options, "in_channels": int(data.train.shape[-1])}, key=init_key
    )
    _check_network_fits(network, data.train.shape[1:], architecture, preset)
    initialised = {}
    if init_from is not None:
        if architecture != "unet":
            raise ValueError(
                "init_from starts a U-Net from a U-Net checkpoint: architecture must be 'unet'. "
                f"Got architecture={architecture!r}."
            )
        network, record = warm_start(init_from, network, sde)
        initialised = {"init_from": record}
    settings = StepSettings(batch_size, learning_rate, grad_clip, warmup_steps, adam_eps,
                            ema_decay, min_time)  # fmt: skip
    training = {
        "steps_requested": steps,
        "preset": preset,
        **settings._asdict(),
        "optimizer": OPTIMIZER_DESCRIPTION,
        "loss": CONDITIONAL_LOSS_DESCRIPTION if paired else LOSS_DESCRIPTION,
        "seed": seed,
        "command": command if command is not None else shlex.join(sys.argv),
        "device": device or f"{jax.devices()[0].platform}, {os.cpu_count()} cores",
        "num_parameters": count_parameters(network),
        **initialised,
    }
    if paired:
        training["conditioning"] = {
            **conditioning._asdict(),
            "network_input": "x, y x mask and the mask (1: y given, 0: dropped) as channels",
            "mask": "Bernoulli((1 - condition_dropout) keep_probability(x_t, y)); "
            "keep_probability: bayesnoise.priors.conditional (eq. 14)",
        }
    base_header = {"sde": sde_to_header(sde), "data": data.info}

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

    ema_network, _ = train_score_network(
        network, sde, data.train, data.heldout, num_steps=steps, **_step_keywords(settings),
        checkpoint_path=state_path, checkpoint_every=checkpoint_every, eval_every=eval_every,
        on_checkpoint=on_checkpoint, max_wall_time=max_wall_time, progress=progress,
        key=train_key, **paired_keywords,
    )  # fmt: skip
    if not last_summary:  # resumed a run that had already reached its step count
        saved = read_header(state_path)
        last_summary = {k: saved.get(k) for k in ("step", "train_loss", "heldout_loss")}
        last_summary["wall_time"] = float(saved.get("wall_time", 0.0))
    # Finished only when every requested step ran; a --minutes stop says so in "stopped".
    finished = last_summary["step"] is not None and last_summary["step"] >= steps
    return ema_network, export(ema_network, last_summary, finished=finished)


def _step_keywords(settings: StepSettings) -> dict:
    """``settings`` as :func:`train_score_network`'s keywords (``min_time`` is its ``eps``)."""
    keywords = settings._asdict()
    keywords["eps"] = keywords.pop("min_time")
    return keywords


def _network_choice(architecture, preset, architecture_options) -> tuple[str, dict]:
    """The architecture and its hyper-parameters from an architecture, a preset and overrides."""
    if preset is not None and preset not in PRESETS:
        raise ValueError(f"preset must be one of {sorted(PRESETS)}. Got preset={preset!r}.")
    if architecture is not None and architecture not in ARCHITECTURE_DEFAULTS:
        raise ValueError(
            f"architecture must be one of {sorted(ARCHITECTURE_DEFAULTS)}. "
            f"Got architecture={architecture!r}."
        )
    if preset is None:
        name = architecture or PRESETS["small"][0]
        options = ARCHITECTURE_DEFAULTS[name]
    else:
        name, options = PRESETS[preset]
        if architecture not in (None, name):
            raise ValueError(
                f"architecture must be the preset's: preset {preset!r} is a {name!r} network. "
                f"Got architecture={architecture!r}; leave it out or choose another preset."
            )
    return name, {**options, **(architecture_options or {})}


def _check_network_fits(network, shape, architecture, preset) -> None:
    """Run the network abstractly on one image of ``shape``; a clear error if it cannot."""
    try:
        eqx.filter_eval_shape(network, jax.ShapeDtypeStruct(shape, jnp.float32), 0.5)
    except Exception as error:  # shape errors surface as several exception types
        raise ValueError(
            f"resolution {shape[0]}x{shape[1]} must suit the {architecture!r} network (preset "
            f"{preset!r}): running it on one ({', '.join(map(str, shape))}) image failed: "
            f"{error}. Choose another resolution or preset."
        ) from error
