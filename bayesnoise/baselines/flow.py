"""FLOW baseline (Whang et al. 2021): MAP of y = A x + B n with normalizing-flow priors on x and n.

Two Glow-style flows (flowjax bijections: squeeze to ``(H/2, W/2, 4C)``, then ``num_steps`` of
ActNorm → invertible 1×1 convolution → affine coupling with a small convolutional conditioner),
one trained on the signal images (Fashion-MNIST) and one on the noise (MNIST digits), by
``analyses/train_flows.py``. Images in ``[0, 1]`` are modelled as ``image - 1/2`` (Glow's
preprocessing, no logit), so each flow's support is all of ``R^d`` and any noise residual has a
finite density. The reconstruction is the paper's eq. 8, MAP in the signal flow's latent space:

    ẑ = argmax_z  log p_N(B⁻¹ (y - A G_X(z))) + λ log p_X(G_X(z)),     x̂ = G_X(ẑ),

by Adam from the measurement (z₀ = G_X⁻¹ of A⁺ (y - B E[n]), clipped to ``[0, 1]``; random
initialisation does not converge, the paper says), the step size halved when the objective
stagnates (optax's ``reduce_on_plateau``). B must be the identity or a nonzero scale.

``noise_flow="gaussian"`` replaces the noise flow by the Gaussian N(E[n], diag std(n)²) of the
problem's moments (:class:`GaussianNoiseDensity`): for noise that is Gaussian with a known
per-element std, such as the sinusoidal noise, that is the exact noise density, and it works on
measurement vectors (compressed sensing) where no image flow applies.
"""

from __future__ import annotations

import functools
import math
import numbers
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float, PRNGKeyArray

from bayesnoise import assets
from bayesnoise.baselines.problem import LinearProblem, check_observation, import_optional
from bayesnoise.baselines.wavelet_lasso import minimum_norm
from bayesnoise.checkpoints import read_header, read_tree, write_tree
from bayesnoise.operators import Identity, Scale

__all__ = [
    "ImageFlow",
    "GaussianNoiseDensity",
    "build_flow",
    "save_flow",
    "load_flow",
    "log_density",
    "flow_map",
]

SIGNAL_FLOW = "fashion_flow.eqx"
NOISE_FLOW = "digits_flow.eqx"
KIND = "normalizing_flow"


def _squeeze(image: Array) -> Array:
    """(H, W, C) -> (H/2, W/2, 4C): each 2×2 block becomes four channels (a permutation)."""
    height, width, channels = image.shape
    blocks = image.reshape(height // 2, 2, width // 2, 2, channels)
    return blocks.transpose(0, 2, 1, 3, 4).reshape(height // 2, width // 2, 4 * channels)


def _unsqueeze(array: Array) -> Array:
    height, width, channels = array.shape
    blocks = array.reshape(height, width, 2, 2, channels // 4)
    return blocks.transpose(0, 2, 1, 3, 4).reshape(2 * height, 2 * width, channels // 4)


def _bijections():
    """flowjax's bijection base class and Chain, imported on first use (optional extra)."""
    return import_optional("flowjax.bijections")


def _make_step_class():
    bijections = _bijections()

    class GlowStep(bijections.AbstractBijection):
        """ActNorm, invertible 1×1 convolution, affine coupling (Kingma & Dhariwal 2018)."""

        shape: tuple[int, ...]
        cond_shape: None
        log_scale: Array
        bias: Array
        mixing: Array
        conditioner: eqx.nn.Sequential

        def __init__(self, shape, hidden_channels, *, key):
            channels = shape[-1]
            mixing_key, first_key, middle_key = jax.random.split(key, 3)
            self.shape, self.cond_shape = tuple(shape), None
            self.log_scale = jnp.zeros(channels)
            self.bias = jnp.zeros(channels)
            self.mixing = jnp.linalg.qr(jax.random.normal(mixing_key, (channels, channels)))[0]
            half = channels // 2
            last = eqx.nn.Conv2d(hidden_channels, 2 * (channels - half), 3, padding=1, key=key)
            last = eqx.tree_at(lambda c: (c.weight, c.bias), last, replace_fn=jnp.zeros_like)
            self.conditioner = eqx.nn.Sequential(
                [
                    eqx.nn.Conv2d(half, hidden_channels, 3, padding=1, key=first_key),
                    eqx.nn.Lambda(jax.nn.relu),
                    eqx.nn.Conv2d(hidden_channels, hidden_channels, 1, key=middle_key),
                    eqx.nn.Lambda(jax.nn.relu),
                    last,
                ]
            )

        def _coupling(self, kept):
            out = self.conditioner(jnp.moveaxis(kept, -1, 0))  # (2 (C - half), H, W)
            raw_scale, shift = jnp.split(jnp.moveaxis(out, 0, -1), 2, axis=-1)
            return 2.0 * jnp.tanh(raw_scale / 2.0), shift  # bounded log-scale: stable training

        def _pixels(self):
            return math.prod(self.shape[:-1])

        def transform_and_log_det(self, x, condition=None):
            x = x * jnp.exp(self.log_scale) + self.bias
            x = x @ self.mixing.T
            kept, changed = jnp.split(x, [self.shape[-1] // 2], axis=-1)
            log_scale, shift = self._coupling(kept)
            y = jnp.concatenate([kept, changed * jnp.exp(log_scale) + shift], axis=-1)
            log_det = (
                self._pixels() * (self.log_scale.sum() + jnp.linalg.slogdet(self.mixing)[1])
                + log_scale.sum()
            )
            return y, log_det

        def inverse_and_log_det(self, y, condition=None):
            kept, changed = jnp.split(y, [self.shape[-1] // 2], axis=-1)
            log_scale, shift = self._coupling(kept)
            x = jnp.concatenate([kept, (changed - shift) * jnp.exp(-log_scale)], axis=-1)
            x = x @ jnp.linalg.inv(self.mixing).T
            x = (x - self.bias) * jnp.exp(-self.log_scale)
            log_det = (
                self._pixels() * (self.log_scale.sum() + jnp.linalg.slogdet(self.mixing)[1])
                + log_scale.sum()
            )
            return x, -log_det

    return GlowStep


@functools.cache
def _glow_step_class():
    """The GlowStep class, defined once on first use (flowjax is an optional dependency)."""
    return _make_step_class()


class ImageFlow(eqx.Module):
    """A flow density on images in ``[0, 1]``: ``image = unsqueeze(G(z)) + 1/2``, z ~ N(0, I).

    ``distribution`` is a flowjax ``Transformed(StandardNormal, Chain([GlowStep, ...]))`` on
    the squeezed layout; ``hyperparameters`` rebuild it (:func:`build_flow`).
    """

    distribution: eqx.Module
    image_shape: tuple[int, ...] = eqx.field(static=True)
    num_steps: int = eqx.field(static=True)
    hidden_channels: int = eqx.field(static=True)

    @property
    def hyperparameters(self) -> dict:
        """The arguments of :func:`build_flow` that rebuild this flow's structure."""
        return {
            "image_shape": list(self.image_shape),
            "num_steps": self.num_steps,
            "hidden_channels": self.hidden_channels,
        }

    def log_density(self, image: Float[Array, "height width channels"]) -> Float[Array, ""]:
        """log p(image), change of variables through the flow (eq. 6)."""
        return self.distribution.log_prob(_squeeze(image - 0.5))

    def to_latent(self, image: Float[Array, "height width channels"]) -> Array:
        """G⁻¹(image): the latent (squeezed layout) that generates ``image``."""
        return self.distribution.bijection.inverse(_squeeze(image - 0.5))

    def from_latent(self, latent: Array) -> tuple[Array, Float[Array, ""]]:
        """G(latent) and log p(G(latent)) = log N(latent) - log|det ∂G/∂z|, one forward pass."""
        squeezed, log_det = self.distribution.bijection.transform_and_log_det(latent)
        log_base = self.distribution.base_dist.log_prob(latent)
        return _unsqueeze(squeezed) + 0.5, log_base - log_det

    def sample(self, key: PRNGKeyArray, num_samples: int) -> Array:
        """``num_samples`` images (not clipped)."""
        latents = jax.random.normal(key, (num_samples, *self.distribution.shape))
        return jax.vmap(lambda z: self.from_latent(z)[0])(latents)


class GaussianNoiseDensity(eqx.Module):
    """log N(noise; mean, diag std²): eq. 8's noise term when n is Gaussian with known moments."""

    mean: Array
    std: Array

    def log_density(self, noise: Array) -> Float[Array, ""]:
        """log p(noise), summed over its elements."""
        return jax.scipy.stats.norm.logpdf(noise, self.mean, self.std).sum()


def build_flow(
    image_shape=(28, 28, 1), num_steps: int = 10, hidden_channels: int = 48, *, key
) -> ImageFlow:
    """A Glow-style flow (module docstring) with identity-initialised couplings."""
    image_shape = tuple(int(s) for s in image_shape)
    if len(image_shape) != 3 or image_shape[0] % 2 or image_shape[1] % 2:
        raise ValueError(
            f"image_shape must be (height, width, channels) with even height and width. "
            f"Got image_shape={image_shape}."
        )
    distributions = import_optional("flowjax.distributions")
    squeezed = (image_shape[0] // 2, image_shape[1] // 2, 4 * image_shape[2])
    step = _glow_step_class()
    steps = [step(squeezed, hidden_channels, key=k) for k in jax.random.split(key, num_steps)]
    distribution = distributions.Transformed(
        distributions.StandardNormal(squeezed), _bijections().Chain(steps)
    )
    return ImageFlow(distribution, image_shape, num_steps, hidden_channels)


def save_flow(path: str | Path, flow: ImageFlow, header: dict) -> dict:
    """Write ``flow`` with a checksummed header (bayesnoise.checkpoints' layout), atomically."""
    header = {
        "kind": KIND,
        "architecture": {"name": "glow", "hyperparameters": flow.hyperparameters},
        **{k: v for k, v in header.items() if k not in ("kind", "architecture")},
    }
    return write_tree(path, flow, header)


def load_flow(path: str | Path) -> tuple[ImageFlow, dict]:
    """Read a flow written by :func:`save_flow` (checksum, kind and every leaf shape checked)."""
    header = read_header(path)
    if header.get("kind") != KIND:
        raise ValueError(f"{path}: kind must be {KIND!r}. Got {header.get('kind')!r}.")
    hyperparameters = header["architecture"]["hyperparameters"]
    like = eqx.filter_eval_shape(lambda: build_flow(**hyperparameters, key=jax.random.key(0)))
    return read_tree(path, like)


def log_density(
    flow: ImageFlow, images: Float[ArrayLike, "num_images height width channels"]
) -> Float[Array, " num_images"]:
    """log p(image) under ``flow`` for a batch of images (nats; bits/dim = -value / (d ln 2))."""
    images = jnp.asarray(images, jnp.float32)
    if images.shape[1:] != flow.image_shape:
        raise ValueError(
            f"images must have shape (num_images, *{flow.image_shape}). Got {images.shape}."
        )
    return _batch_log_density(flow, images)


_batch_log_density = eqx.filter_jit(eqx.filter_vmap(ImageFlow.log_density, in_axes=(None, 0)))


def _noise_scale(problem: LinearProblem) -> float:
    operator = problem.noise_operator
    if isinstance(operator, Identity):
        return 1.0
    if isinstance(operator, Scale) and float(operator.factor) != 0.0:
        return float(operator.factor)
    raise ValueError(
        "problem.noise_operator must be Identity or a nonzero Scale (eq. 8 needs n = B⁻¹(y - Ax))."
        f" Got {type(operator).__name__}."
    )


def _check_positive(name: str, value) -> None:
    if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number. Got {name}={value!r}.")


@eqx.filter_jit
def _map_batch(signal_flow, noise_flow, signal_operator, observation, start, noise_scale, hyper):
    weight, learning_rate, num_steps = hyper

    def objective(latent, y):  # eq. 8, negated
        signal, signal_log_density = signal_flow.from_latent(latent)
        noise = (y - signal_operator(signal)) / noise_scale
        return -noise_flow.log_density(noise) - weight * signal_log_density

    optimizer = optax.chain(
        optax.adam(learning_rate),
        optax.contrib.reduce_on_plateau(factor=0.5, patience=20, cooldown=10, rtol=1e-4),
    )

    def solve(y, image):
        latent = signal_flow.to_latent(image)

        def step(_, carry):
            latent, state = carry
            value, gradient = jax.value_and_grad(objective)(latent, y)
            with jax.numpy_dtype_promotion("standard"):  # optax's bias correction mixes dtypes
                updates, state = optimizer.update(gradient, state, latent, value=value)
            return optax.apply_updates(latent, updates), state

        latent, _ = jax.lax.fori_loop(0, num_steps, step, (latent, optimizer.init(latent)))
        return signal_flow.from_latent(latent)[0]

    return jax.vmap(solve)(observation, start)


def flow_map(
    observation: Float[ArrayLike, " num_images *observation_shape"],
    problem: LinearProblem,
    *,
    signal_flow: ImageFlow | None = None,
    noise_flow: ImageFlow | str | None = None,
    weight: float = 1.0,
    num_steps: int = 600,
    learning_rate: float = 0.003,
    seed: int = 0,
) -> Float[np.ndarray, " num_images *signal_shape"]:
    """MAP estimate of x by eq. 8 (module docstring), batched over images.

    Parameters
    ----------
    observation : array (num_images, *A.output_shape)
    problem : LinearProblem
        y = A x + B n; B the identity or a nonzero ``Scale``; ``noise_mean`` initialises.
    signal_flow, noise_flow : ImageFlow, optional
        Flows on A's and B's input shapes; the shipped Fashion-MNIST and MNIST-digit flows
        by default. ``noise_flow="gaussian"``: n ~ N(``noise_mean``, diag ``noise_std``²)
        instead of a flow (any B input shape).
    weight : float
        λ of eq. 8, the weight of the signal's log-density (0.03 in the authors' config; the
        default 1.0 and ``learning_rate`` were the best of a grid on 5 digit-removal validation
        pairs with the shipped flows: λ in 0.03-3, step size 0.001-0.05).
    num_steps, learning_rate : int, float
        Adam steps in latent space and the initial step size (halved on stagnation).
    seed : int
        Seeds the uniform dequantisation jitter (±1/512) added to the initial image.

    Returns
    -------
    numpy.ndarray
        float32 ``(num_images, *A.input_shape)``, clipped to ``[0, 1]``.
    """
    observation = check_observation(observation, problem)
    _check_positive("weight", weight)
    _check_positive("learning_rate", learning_rate)
    if not (isinstance(num_steps, numbers.Integral) and num_steps >= 1):
        raise ValueError(f"num_steps must be an int >= 1. Got num_steps={num_steps!r}.")
    if not (isinstance(seed, numbers.Integral) and seed >= 0):
        raise ValueError(f"seed must be a non-negative int. Got seed={seed!r}.")
    noise_scale = _noise_scale(problem)
    signal_flow = signal_flow or load_flow(assets.path(SIGNAL_FLOW))[0]
    if isinstance(noise_flow, str):
        if noise_flow != "gaussian":
            raise ValueError(
                f"noise_flow must be an ImageFlow, 'gaussian' or None. Got {noise_flow!r}."
            )
        noise_flow = GaussianNoiseDensity(
            jnp.asarray(problem.noise_mean), jnp.asarray(problem.noise_std)
        )
    noise_flow = noise_flow or load_flow(assets.path(NOISE_FLOW))[0]
    flows = [("signal_flow", signal_flow, problem.signal_shape)]
    if not isinstance(noise_flow, GaussianNoiseDensity):
        flows.append(("noise_flow", noise_flow, problem.noise_operator.input_shape))
    for name, flow, shape in flows:
        if not isinstance(flow, ImageFlow):
            raise TypeError(f"{name} must be an ImageFlow. Got {type(flow).__name__}.")
        if flow.image_shape != shape:
            raise ValueError(f"{name} must model images of shape {shape}. Got {flow.image_shape}.")
    start = minimum_norm(observation, problem)
    jitter = jax.random.uniform(jax.random.key(seed), start.shape, minval=-1, maxval=1) / 512
    start = jnp.clip(start + jitter, 0.0, 1.0)
    hyper = (jnp.float32(weight), jnp.float32(learning_rate), jnp.int32(num_steps))
    estimate = _map_batch(
        signal_flow,
        noise_flow,
        problem.signal_operator,
        jnp.asarray(observation),
        start,
        jnp.float32(noise_scale),
        hyper,
    )
    return np.clip(np.asarray(estimate), 0.0, 1.0).astype(np.float32)
