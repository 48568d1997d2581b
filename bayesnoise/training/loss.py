"""The denoising score-matching loss, on training batches and on held-out images.

For an SDE with marginal q(x_t | x_0) = N(a_t x_0, s_t² I), draw t ~ U[min_time, 1],
z ~ N(0, I), x_t = a_t x_0 + s_t z and minimise (Song et al. 2021, eq. 7 with weighting
λ(t) = s_t²)

    L(θ) = E_{t, x_0, z} mean_pixels (net_θ(x_t, t) + z)²,

so the network learns the *scaled* score s_t ∇ log p_t(x_t) = -E[z | x_t], the quantity
:class:`~bayesnoise.priors.ScoreNetPrior` divides by s_t.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from bayesnoise.sde import AbstractSDE

__all__ = ["LOSS_DESCRIPTION", "dsm_loss", "heldout_loss"]

Images = Float[Array, "num_images height width channels"]
LOSS_DESCRIPTION = (
    "mean over batch and pixels of (net(a_t x0 + s_t z, t) + z)^2, t ~ U[min_time, 1]"
)


def dsm_loss(
    network: eqx.Module,
    sde: AbstractSDE,
    images: Images,
    key: PRNGKeyArray,
    eps: float = 1e-3,
) -> Float[Array, ""]:
    """Denoising score-matching loss of ``network`` on a batch of clean ``images``.

    ``mean over batch and pixels of (net(a_t x_0 + s_t z, t) + z)²`` with t ~ U[eps, 1] per
    image (``eps``: the smallest diffusion time). A network that predicts 0 scores 1; the
    optimum is below 1 by the fraction of the noise that can be recovered from x_t.
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
    key = jax.random.key(0) if key is None else key
    time_key, noise_key = jax.random.split(key)
    chunks, times, noise = fixed_draws(images, batch_size, time_key, noise_key, eps)
    losses = [
        _chunk_loss(network, sde, images[chunk], times[chunk], noise[chunk]) for chunk in chunks
    ]
    return float(jnp.mean(jnp.stack(losses)))


def fixed_draws(images, batch_size: int, time_key, noise_key, eps: float):
    """What a held-out loss fixes: ``(chunks, times, noise)``, with ``chunks`` the slices of
    ``batch_size`` images (the last partial chunk dropped; all images if fewer than one chunk)
    and the diffusion times and noise drawn from ``time_key`` and ``noise_key``."""
    count = (images.shape[0] // batch_size) * batch_size
    if count == 0:
        batch_size = count = images.shape[0]
    times = jax.random.uniform(time_key, (count,), images.dtype, eps, 1.0)
    noise = jax.random.normal(noise_key, (count, *images.shape[1:]), images.dtype)
    chunks = [slice(start, start + batch_size) for start in range(0, count, batch_size)]
    return chunks, times, noise
