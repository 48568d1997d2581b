"""Training a network conditioned on the observation: DSM on (clean, observed) pairs.

Iyer, Shu & Sinha §3.2-3.3: the U-Net reads the observation y as extra input channels
(:class:`~bayesnoise.nets.UNet` with ``condition_channels``) and is trained by denoising score
matching on pairs (x_0, y), with the condition dropped for part of the batch so that the same
network also learns the unconditional score (classifier-free guidance, eq. 11) and, as the
paper does, masked by the probabilistic-conditioning rule of eq. 14 evaluated at x_t:

    keep ~ Bernoulli((1 − p_uncond) · keep_probability(x_t, y)),
    L(θ) = E mean_pixels (net_θ(x_t, t, keep · y, keep) + z)².

Dropout is independent of (x_0, y, z), so the dropped examples teach the unconditional score
E[z | x_t] without bias. The eq. 14 mask depends on ‖x_t − y‖: the examples it drops are not a
random subset (with ``rule="keep"`` they are those whose x_t is near y), so the unconditional
score it teaches leans towards such pairs; ``probabilistic_conditioning=None`` trains without it.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from bayesnoise.priors.conditional import CONDITIONING_RULES, DISTANCES, draw_condition_mask
from bayesnoise.sde import AbstractSDE
from bayesnoise.training.loss import fixed_draws

__all__ = [
    "CONDITIONAL_LOSS_DESCRIPTION",
    "ConditioningSettings",
    "condition_masks",
    "conditional_dsm_loss",
    "conditional_heldout_loss",
    "conditional_from_unconditional",
    "warm_start",
]

Images = Float[Array, "num_images height width channels"]
CONDITIONAL_LOSS_DESCRIPTION = (
    "mean over batch and pixels of (net(a_t x0 + s_t z, t, keep y, keep) + z)^2, "
    "t ~ U[min_time, 1], keep ~ Bernoulli((1 - condition_dropout) keep_probability(x_t, y))"
)


class ConditioningSettings(NamedTuple):
    """How the condition is dropped in training (Python values: static, and recorded).

    ``condition_dropout`` is p_uncond of classifier-free guidance; ``probabilistic_conditioning``,
    ``temperature`` and ``distance`` are eq. 14's rule, T and distance
    (:func:`~bayesnoise.priors.conditional.keep_probability`).
    """

    condition_dropout: float = 0.1
    probabilistic_conditioning: str | None = "keep"
    temperature: float = 1.0
    distance: str = "rms"

    def check(self) -> ConditioningSettings:
        """Raise a ``ValueError`` naming the first setting out of range; else return self."""
        if not 0.0 <= self.condition_dropout < 1.0:
            raise ValueError(
                f"condition_dropout must be in [0, 1). Got {self.condition_dropout!r}."
            )
        if self.probabilistic_conditioning not in CONDITIONING_RULES:
            raise ValueError(
                f"probabilistic_conditioning must be one of {CONDITIONING_RULES}. "
                f"Got {self.probabilistic_conditioning!r}."
            )
        if not self.temperature > 0:
            raise ValueError(f"temperature must be > 0. Got {self.temperature!r}.")
        if self.distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}. Got {self.distance!r}.")
        return self


def condition_masks(
    key: PRNGKeyArray, noisy: Images, observations: Images, settings: ConditioningSettings
) -> Float[Array, " num_images"]:
    """1 (y given) or 0 (dropped) for each image of a batch (see the module docstring)."""
    keys = jax.random.split(key, noisy.shape[0])

    def one(key, x, y):
        return draw_condition_mask(
            key,
            x,
            y,
            dropout=settings.condition_dropout,
            rule=settings.probabilistic_conditioning,
            temperature=settings.temperature,
            distance=settings.distance,
        )

    return jax.vmap(one)(keys, noisy, observations)


def conditional_dsm_loss(
    network: eqx.Module,
    sde: AbstractSDE,
    images: Images,
    observations: Images,
    key: PRNGKeyArray,
    eps: float = 1e-3,
    settings: ConditioningSettings | None = None,
) -> Float[Array, ""]:
    """The DSM loss of a conditional ``network`` on clean ``images`` and their ``observations``,
    the condition dropped as ``settings`` say; t ~ U[eps, 1] per image."""
    settings = ConditioningSettings() if settings is None else settings
    time_key, noise_key, mask_key = jax.random.split(key, 3)
    times = jax.random.uniform(time_key, images.shape[:1], images.dtype, eps, 1.0)
    noise = jax.random.normal(noise_key, images.shape, images.dtype)
    return _loss_at(network, sde, images, observations, times, noise, mask_key, settings)


def _loss_at(network, sde, images, observations, times, noise, mask_key, settings):
    broadcast = (-1,) + (1,) * (images.ndim - 1)
    mean = sde.marginal_mean_coefficient(times).reshape(broadcast)
    std = sde.marginal_std(times).reshape(broadcast)
    noisy = (mean * images + std * noise).astype(images.dtype)
    masks = condition_masks(mask_key, noisy, observations, settings)
    prediction = jax.vmap(network)(noisy, times, observations, masks)
    return jnp.mean((prediction + noise) ** 2)


@eqx.filter_jit
def _chunk_loss(network, sde, images, observations, times, noise, mask_key, settings):
    return _loss_at(network, sde, images, observations, times, noise, mask_key, settings)


def conditional_heldout_loss(
    network: eqx.Module,
    sde: AbstractSDE,
    images: Images,
    observations: Images,
    settings: ConditioningSettings,
    *,
    key: PRNGKeyArray | None = None,
    eps: float = 1e-3,
    batch_size: int = 250,
) -> float:
    """:func:`conditional_dsm_loss` on held-out pairs with fixed times, noise and masks, so
    the numbers of two networks differ only through the networks (chunks of ``batch_size``;
    the last partial chunk is dropped)."""
    images, observations = jnp.asarray(images), jnp.asarray(observations)
    key = jax.random.key(0) if key is None else key
    time_key, noise_key, mask_key = jax.random.split(key, 3)
    chunks, times, noise = fixed_draws(images, batch_size, time_key, noise_key, eps)
    losses = [
        _chunk_loss(
            network,
            sde,
            images[chunk],
            observations[chunk],
            times[chunk],
            noise[chunk],
            jax.random.fold_in(mask_key, chunk.start),
            settings,
        )
        for chunk in chunks
    ]
    return float(jnp.mean(jnp.stack(losses)))


def conditional_from_unconditional(
    unconditional: eqx.Module, condition_channels: int = 1
) -> eqx.Module:
    """A conditional U-Net that starts as ``unconditional``: the same weights, and zero weights
    on the new input channels (y and the mask) of the first convolution.

    Before training it computes ψ(z) whether y is given or not; training (fine-tuning) then
    only has to learn how to use y. The unconditional network must be a
    :class:`~bayesnoise.nets.UNet` with ``condition_channels = 0``.
    """
    from bayesnoise.nets import UNet

    if not isinstance(unconditional, UNet) or unconditional.condition_channels:
        raise ValueError(
            "unconditional must be a UNet with condition_channels=0. Got "
            f"{type(unconditional).__name__} with condition_channels="
            f"{getattr(unconditional, 'condition_channels', None)}."
        )
    if isinstance(condition_channels, bool) or not (
        isinstance(condition_channels, int) and condition_channels >= 1
    ):
        raise ValueError(f"condition_channels must be an int >= 1. Got {condition_channels!r}.")
    conditional = UNet(
        **{**unconditional.hyperparameters, "condition_channels": condition_channels},
        key=jax.random.key(0),
    )
    conv = unconditional.conv_in
    extra = jnp.zeros(conv.weight.shape[:2] + (condition_channels + 1,) + conv.weight.shape[3:])
    weights = eqx.tree_at(
        lambda net: net.conv_in.weight,
        eqx.filter(unconditional, eqx.is_array),
        jnp.concatenate([conv.weight, extra.astype(conv.weight.dtype)], axis=2),
    )
    arrays, static = eqx.partition(conditional, eqx.is_array)
    arrays = jax.tree.unflatten(jax.tree.structure(arrays), jax.tree.leaves(weights))
    return eqx.combine(arrays, static)


def warm_start(path, network: eqx.Module, sde: AbstractSDE) -> tuple[eqx.Module, dict]:
    """``network``'s architecture started from the unconditional checkpoint at ``path``, and
    the header entry that records it.

    A conditional ``network`` starts as the checkpoint (:func:`conditional_from_unconditional`);
    an unconditional one *is* the checkpoint, trained further (with a fresh optimiser: the
    checkpoint holds the EMA weights only). The checkpoint must hold a U-Net of the same
    hyper-parameters (but for the condition channels), trained under the same SDE.
    """
    from bayesnoise.checkpoints import load_checkpoint, sde_to_header

    unconditional, header = load_checkpoint(path)
    expected = {k: v for k, v in network.hyperparameters.items() if k != "condition_channels"}
    found = getattr(unconditional, "hyperparameters", None)
    if getattr(unconditional, "condition_channels", 0) or found != expected:
        raise ValueError(
            f"init_from must be an unconditional checkpoint of the network being trained "
            f"({expected}). Got {path} with {found}."
        )
    if header.get("sde") != sde_to_header(sde):
        raise ValueError(
            f"init_from must be trained under the same SDE {sde_to_header(sde)}. "
            f"Got {header.get('sde')} in {path}."
        )
    trained = header.get("training", {})
    conditional = bool(network.condition_channels)
    record = {
        "file": str(path),
        "sha256": header.get("sha256"),
        "steps": trained.get("steps"),
        "wall_time_s": trained.get("wall_time_s"),
        "rule": (
            "all weights copied; the first convolution's weights on y and the mask start at 0"
            if conditional
            else "all weights copied (the checkpoint's EMA weights); fresh optimiser state"
        ),
    }
    if not conditional:
        return unconditional, record
    return conditional_from_unconditional(unconditional, network.condition_channels), record
