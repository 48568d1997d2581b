"""One optimisation step: Adam after gradient clipping, with warm-up, and an EMA of the weights.

Optimiser: global-norm gradient clipping, then Adam (the paper's learning rate 5e-4) with a
linear warm-up of the learning rate. An exponential moving average (EMA) of the weights, with
decay min(ema_decay, (1 + step) / (10 + step)), is kept and is what gets evaluated and exported.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax
from jaxtyping import Array, Float, PRNGKeyArray

from bayesnoise.sde import AbstractSDE
from bayesnoise.training.conditional import ConditioningSettings, conditional_dsm_loss
from bayesnoise.training.loss import dsm_loss

__all__ = ["StepSettings", "TrainingState", "init_state", "make_optimizer", "train_step"]


class TrainingState(NamedTuple):
    """Everything a resumed run needs: weights, EMA weights, optimiser state, step and key."""

    network: eqx.Module
    ema_network: eqx.Module
    opt_state: optax.OptState
    step: Array
    key: PRNGKeyArray


class StepSettings(NamedTuple):
    """The settings of every step, as passed to the optimiser and the loss (and recorded).

    Python numbers, static under ``eqx.filter_jit``: runs with equal settings (and network
    structure) share one compiled step.
    """

    batch_size: int = 128
    learning_rate: float = 5e-4
    grad_clip: float = 1.0
    warmup_steps: int = 100
    adam_eps: float = 1e-8
    ema_decay: float = 0.999
    min_time: float = 1e-3


def make_optimizer(
    learning_rate: float = 5e-4,
    grad_clip: float = 1.0,
    warmup_steps: int = 100,
    adam_eps: float = 1e-8,
) -> optax.GradientTransformation:
    """Global-norm clipping at ``grad_clip``, then Adam (ε = ``adam_eps``) with a linear
    warm-up of the learning rate from 0 to ``learning_rate`` over ``warmup_steps`` steps."""
    schedule = (
        optax.linear_schedule(0.0, learning_rate, warmup_steps)
        if warmup_steps > 0
        else learning_rate
    )
    return optax.chain(optax.clip_by_global_norm(grad_clip), optax.adam(schedule, eps=adam_eps))


def _optimizer(settings: StepSettings) -> optax.GradientTransformation:
    return make_optimizer(
        settings.learning_rate, settings.grad_clip, settings.warmup_steps, settings.adam_eps
    )


def init_state(network: eqx.Module, settings: StepSettings, *, key: PRNGKeyArray) -> TrainingState:
    """The state before the first step: EMA = weights, a fresh optimiser state, step 0."""
    opt_state = _optimizer(settings).init(eqx.filter(network, eqx.is_inexact_array))
    return TrainingState(network, network, opt_state, jnp.asarray(0, dtype=jnp.int32), key)


@eqx.filter_jit
def train_step(
    train_images: Float[Array, "num_images height width channels"],
    state: TrainingState,
    sde: AbstractSDE,
    settings: StepSettings,
    train_observations: Float[Array, "num_images height width channels"] | None = None,
    conditioning: ConditioningSettings | None = None,
) -> tuple[TrainingState, Float[Array, ""]]:
    """One step on a batch drawn from ``train_images``; returns the new state and the loss.

    With ``train_observations`` (paired with the images) the network is conditional and the
    loss is :func:`~bayesnoise.training.conditional.conditional_dsm_loss` under
    ``conditioning`` (default :class:`ConditioningSettings`).
    """
    key = jax.random.fold_in(state.key, state.step)
    index_key, loss_key = jax.random.split(key)
    # Batches are drawn (with replacement) from the step's own key, so a resumed run sees
    # exactly the batches an uninterrupted one would have.
    index = jax.random.randint(index_key, (settings.batch_size,), 0, train_images.shape[0])
    if train_observations is None:
        loss, grads = eqx.filter_value_and_grad(dsm_loss)(
            state.network, sde, train_images[index], loss_key, settings.min_time
        )
    else:
        loss, grads = eqx.filter_value_and_grad(conditional_dsm_loss)(
            state.network,
            sde,
            train_images[index],
            train_observations[index],
            loss_key,
            settings.min_time,
            conditioning or ConditioningSettings(),
        )
    params = eqx.filter(state.network, eqx.is_inexact_array)
    # optax's Adam computes `b1 ** count` (a Python float to an int32 power), which strict
    # dtype promotion rejects; allow standard promotion inside the optimiser only.
    with jax.numpy_dtype_promotion("standard"):
        updates, opt_state = _optimizer(settings).update(grads, state.opt_state, params)
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
