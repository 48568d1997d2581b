"""The GAN baseline: a DCGAN trained on the signal images, and CSGM reconstruction with it.

CSGM (Bora et al. 2017; the method paper's eq. 9) looks for the latent z whose image G(z)
explains the observation,

    minimize_z  ‖y - A G(z) - B E[n]‖²_Σ / 2 + weight ‖z‖²,

with Σ the diagonal of the noise's covariance in observation space, diag(B diag(σ²) Bᵀ), from
``problem.noise_std`` (weight = ½ is the MAP of z under its N(0, I) prior). It runs
``num_steps`` of Adam from ``restarts`` random starts per image, all of them vmapped in one
jitted call, and keeps per image the restart with the lowest objective.

The generator is a DCGAN (Radford et al. 2016) sized for 28 x 28: four transposed
convolutions grow the latent (100, a 1 x 1 image) to 7 x 7 x 128, 14 x 14 x 64,
28 x 28 x 32 (each followed by batch norm and ReLU) and 28 x 28 x 1 (tanh, mapped to
``[0, 1]``); see :class:`Generator` for the form each is computed in. The discriminator
is two strided convolutions with LeakyReLU and a linear read-out. ``analyses/train_gan.py``
trains them on the Fashion-MNIST training images.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jaxtyping import Array, ArrayLike, Float

from bayesnoise import assets
from bayesnoise.baselines.problem import LinearProblem, check_observation
from bayesnoise.baselines.wavelet_lasso import dense_matrix
from bayesnoise.checkpoints import read_header, read_tree, write_tree

__all__ = [
    "Generator",
    "Discriminator",
    "TrainedGenerator",
    "generate",
    "save_generator",
    "load_generator",
    "csgm",
    "SHIPPED_GENERATOR",
]

SHIPPED_GENERATOR = "fashion_dcgan.eqx"
KIND = "dcgan_generator"
BATCH_AXIS = "batch"


def _depth_to_space(hidden: Float[Array, "channels height width"]) -> Array:
    """``(4 c, h, w) -> (c, 2 h, 2 w)``: each group of four channels fills a 2 x 2 block."""
    channels, height, width = hidden.shape
    blocks = hidden.reshape(channels // 4, 2, 2, height, width)
    return blocks.transpose(0, 3, 1, 4, 2).reshape(channels // 4, 2 * height, 2 * width)


class Generator(eqx.Module):
    """DCGAN generator: a latent vector to a ``(28, 28, channels)`` image in ``[0, 1]``.

    Four transposed convolutions, written in the forms XLA's CPU backend differentiates
    fast (its gradient of the zero-dilated convolution is ~10x slower, measured):

    1. z (a 1 x 1 image) -> 7 x 7 x 4w, kernel 7: a linear projection ("project and
       reshape", Radford et al. 2016);
    2. -> 14 x 14 x 2w and 3. -> 28 x 28 x w, stride 2: sub-pixel convolutions (a 3 x 3
       convolution to 4x the channels, then depth-to-space: a stride-2 transposed
       convolution with a 6 x 6 kernel, Shi et al. 2016);
    4. -> 28 x 28 x channels, kernel 3, stride 1 (the same as a convolution), tanh.

    Batch norm and ReLU follow the first three. Stateful (batch norm): call it inside
    ``jax.vmap(..., axis_name="batch")`` while training (:func:`generate` does), or in
    inference mode with the running statistics (:class:`TrainedGenerator`).
    """

    project: eqx.nn.Linear
    upsample: tuple[eqx.nn.Conv2d, eqx.nn.Conv2d]
    output: eqx.nn.Conv2d
    norms: tuple[eqx.nn.BatchNorm, ...]
    latent_size: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    channels: int = eqx.field(static=True)

    def __init__(self, latent_size: int = 100, width: int = 32, channels: int = 1, *, key):
        keys = jax.random.split(key, 4)
        self.project = eqx.nn.Linear(latent_size, 4 * width * 7 * 7, key=keys[0])
        self.upsample = (
            eqx.nn.Conv2d(4 * width, 4 * 2 * width, 3, padding=1, key=keys[1]),
            eqx.nn.Conv2d(2 * width, 4 * width, 3, padding=1, key=keys[2]),
        )
        self.output = eqx.nn.Conv2d(width, channels, 3, padding=1, key=keys[3])
        self.norms = tuple(
            eqx.nn.BatchNorm(size, BATCH_AXIS, mode="batch")
            for size in (4 * width, 2 * width, width)
        )
        self.latent_size, self.width, self.channels = latent_size, width, channels

    @property
    def hyperparameters(self) -> dict:
        return {"latent_size": self.latent_size, "width": self.width, "channels": self.channels}

    @property
    def shape(self) -> tuple[int, int, int]:
        return (28, 28, self.channels)

    def __call__(
        self, latent: Float[Array, " latent"], state: eqx.nn.State
    ) -> tuple[Float[Array, "28 28 channels"], eqx.nn.State]:
        hidden = self.project(latent).reshape(4 * self.width, 7, 7)
        hidden, state = self.norms[0](hidden, state)
        for conv, norm in zip(self.upsample, self.norms[1:], strict=True):
            hidden, state = norm(_depth_to_space(conv(jax.nn.relu(hidden))), state)
        image = (jnp.tanh(self.output(jax.nn.relu(hidden))) + 1.0) / 2.0
        return jnp.moveaxis(image, 0, -1), state


class Discriminator(eqx.Module):
    """DCGAN discriminator: strided convolutions with LeakyReLU(0.2), one logit per image."""

    convs: tuple[eqx.nn.Conv2d, ...]
    readout: eqx.nn.Linear

    def __init__(self, width: int = 64, channels: int = 1, *, key):
        keys = jax.random.split(key, 3)
        self.convs = (
            eqx.nn.Conv2d(channels, width, 4, stride=2, padding=1, key=keys[0]),  # 28 -> 14
            eqx.nn.Conv2d(width, 2 * width, 4, stride=2, padding=1, key=keys[1]),  # 14 -> 7
        )
        self.readout = eqx.nn.Linear(2 * width * 7 * 7, "scalar", key=keys[2])

    def __call__(self, image: Float[Array, "28 28 channels"]) -> Float[Array, ""]:
        hidden = 2.0 * jnp.moveaxis(image, -1, 0) - 1.0  # [0, 1] -> [-1, 1], channel-first
        for conv in self.convs:
            hidden = jax.nn.leaky_relu(conv(hidden), 0.2)
        return self.readout(hidden.ravel())


def generate(
    generator: Generator, state: eqx.nn.State, latents: Float[Array, "batch latent"]
) -> tuple[Float[Array, "batch 28 28 channels"], eqx.nn.State]:
    """A batch of images in training mode (batch statistics; the running ones updated)."""
    images, states = jax.vmap(
        generator, in_axes=(0, None), out_axes=(0, None), axis_name=BATCH_AXIS
    )(latents, state)
    return images, states


class TrainedGenerator(eqx.Module):
    """A generator in inference mode with its batch-norm statistics: ``G(z)``, pure."""

    network: Generator
    state: eqx.nn.State

    def __init__(self, network: Generator, state: eqx.nn.State):
        self.network = eqx.nn.inference_mode(network)
        self.state = state

    @property
    def latent_size(self) -> int:
        return self.network.latent_size

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.network.shape

    def __call__(self, latent: Float[Array, " latent"]) -> Float[Array, "28 28 channels"]:
        # Equinox's batch-norm debiasing raises a float to an int32 power, which strict dtype
        # promotion rejects; allow standard promotion here only.
        with jax.numpy_dtype_promotion("standard"):
            return self.network(latent, self.state)[0]


def _template(hyperparameters: dict) -> TrainedGenerator:
    network, state = eqx.nn.make_with_state(Generator)(**hyperparameters, key=jax.random.key(0))
    return TrainedGenerator(network, state)


def save_generator(path: str | Path, generator: TrainedGenerator, header: dict) -> dict:
    """Write ``generator`` (weights and batch-norm statistics) with a checksummed header.

    The layout is :func:`bayesnoise.checkpoints.write_tree`'s: a magic line, the JSON header
    (``kind``, ``architecture`` and the caller's entries, e.g. ``data`` and ``training``),
    the weights; the SHA-256 covers header and weights; the file is written atomically.
    """
    if not isinstance(generator, TrainedGenerator):
        raise TypeError(f"generator must be a TrainedGenerator. Got {type(generator).__name__}.")
    header = {
        "kind": KIND,
        "architecture": {"name": "dcgan", "hyperparameters": generator.network.hyperparameters},
        **{k: v for k, v in header.items() if k not in ("kind", "architecture")},
    }
    return write_tree(path, generator, header)


def load_generator(path: str | Path | None = None) -> tuple[TrainedGenerator, dict]:
    """Read a generator written by :func:`save_generator` (default: the shipped one).

    Raises
    ------
    ValueError
        If the checksum does not match (the header or the weights were edited), the file is
        not a DCGAN generator, or the weights do not fit the header's architecture.
    """
    path = assets.path(SHIPPED_GENERATOR) if path is None else Path(path)
    header = read_header(path)
    if header.get("kind") != KIND:
        raise ValueError(f"{path}: kind must be {KIND!r}. Got {header.get('kind')!r}.")
    try:
        hyperparameters = dict(header["architecture"]["hyperparameters"])
    except (KeyError, TypeError) as error:
        raise ValueError(f"{path}: header must have architecture.hyperparameters.") from error
    like = eqx.filter_eval_shape(_template, hyperparameters)
    return read_tree(path, like)


def _observation_variance(problem: LinearProblem) -> np.ndarray:
    """diag(B diag(σ²) Bᵀ): the variance of each observed element due to the noise."""
    matrix = dense_matrix(problem.noise_operator)
    return (matrix**2 @ (problem.noise_std.ravel() ** 2)).reshape(problem.observation_shape)


_CHUNK = 10  # Adam steps per jitted call, unrolled


def _objective(latent, target, generator, signal_operator, offset, precision, weight):
    """Eq. 9 for one latent: ½ ‖y - A G(z) - B E[n]‖²_Σ + weight ‖z‖²."""
    residual = target - signal_operator(generator(latent)) - offset
    return 0.5 * jnp.sum(precision * residual**2) + weight * jnp.sum(latent**2)


# every (image, restart): latents (images, restarts, latent), targets (images, ...)
_over_restarts = (0, None, None, None, None, None, None)
_over_images = (0, 0, None, None, None, None, None)
_objectives = jax.vmap(jax.vmap(_objective, _over_restarts), _over_images)
_gradients = jax.vmap(jax.vmap(jax.grad(_objective), _over_restarts), _over_images)


@eqx.filter_jit
def _adam_steps(latents, opt_state, learning_rate, num_steps, *problem):
    """``num_steps`` Adam steps on eq. 9 for every (image, restart) at once.

    The steps are unrolled, not a ``lax.scan``: XLA's CPU backend ran these convolutions
    inside a loop ~40x slower than outside one (measured: 10 steps, 20 latents, 10.9 s
    against 0.26 s of CPU time).
    """
    optimizer = optax.adam(learning_rate)
    for _ in range(num_steps):
        gradient = _gradients(latents, *problem)
        # optax's bias correction mixes int32 and float32, which strict promotion rejects
        with jax.numpy_dtype_promotion("standard"):
            updates, opt_state = optimizer.update(gradient, opt_state)
        latents = optax.apply_updates(latents, updates)
    return latents, opt_state


@eqx.filter_jit
def _best_restart(latents, *problem):
    """Per image, G(z) of the restart with the lowest objective, and that objective."""
    objectives = _objectives(latents, *problem)
    best = jnp.argmin(objectives, axis=1)
    chosen = jnp.take_along_axis(latents, best[:, None, None], axis=1)[:, 0]
    return jax.vmap(problem[1])(chosen), jnp.min(objectives, axis=1)


def _csgm(initial_latents, learning_rate, num_steps, *problem):
    """Adam on eq. 9 from every initial latent ``(images, restarts, latent)``."""
    latents = initial_latents
    opt_state = optax.adam(learning_rate).init(latents)  # elementwise: one state for all
    for start in range(0, num_steps, _CHUNK):
        chunk = min(_CHUNK, num_steps - start)
        latents, opt_state = _adam_steps(latents, opt_state, learning_rate, chunk, *problem)
    return _best_restart(latents, *problem)


def _positive(name: str, value) -> float:
    if not (isinstance(value, numbers.Real) and math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number. Got {name}={value!r}.")
    return float(value)


def _count(name: str, value) -> int:
    if not (isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1):
        raise ValueError(f"{name} must be an int >= 1. Got {name}={value!r}.")
    return int(value)


def csgm(
    observation: Float[ArrayLike, " num_images *observation_shape"],
    problem: LinearProblem,
    *,
    generator: TrainedGenerator | None = None,
    weight: float = 0.5,
    num_steps: int = 300,
    learning_rate: float = 0.05,
    restarts: int = 4,
    seed: int = 0,
    return_objective: bool = False,
) -> Float[np.ndarray, " num_images *signal_shape"]:
    """CSGM: x̂ = G(ẑ), ẑ the best of ``restarts`` Adam runs on eq. 9 (module docstring).

    Parameters
    ----------
    observation : array (num_images, *A.output_shape)
    problem : LinearProblem
        y = A x + B n; A's ``input_shape`` must be the generator's image shape.
    generator : TrainedGenerator, optional
        Default: the shipped Fashion-MNIST DCGAN (:func:`load_generator`).
    weight : float
        λ of eq. 9, the weight of ‖z‖² (½: z's N(0, I) prior, the residual whitened).
    num_steps, learning_rate : int, float
        Adam iterations and step size.
    restarts : int
        Random initial latents per image (z ~ N(0, I)); the lowest objective wins.
    seed : int
        Seed of the initial latents (image i uses ``fold_in(key(seed), i)``).
    return_objective : bool
        Also return each image's final objective (``(num_images,)``).

    Returns
    -------
    numpy.ndarray
        float32 ``(num_images, *A.input_shape)``, clipped to ``[0, 1]``.

    Examples
    --------
    >>> x_hat = csgm(y, LinearProblem(mixing, mixing, noise_mean=m, noise_std=s), weight=0.1)
    """
    observation = check_observation(observation, problem)
    weight = _positive("weight", weight)
    learning_rate = _positive("learning_rate", learning_rate)
    num_steps, restarts = _count("num_steps", num_steps), _count("restarts", restarts)
    if not (isinstance(seed, numbers.Integral) and not isinstance(seed, bool) and seed >= 0):
        raise ValueError(f"seed must be a non-negative int. Got seed={seed!r}.")
    if generator is None:
        generator = load_generator()[0]
    elif not isinstance(generator, TrainedGenerator):
        raise TypeError(
            f"generator must be a TrainedGenerator (see load_generator). "
            f"Got {type(generator).__name__}."
        )
    if tuple(problem.signal_shape) != generator.shape:
        raise ValueError(
            f"problem.signal_operator.input_shape must be the generator's image shape "
            f"{generator.shape}. Got {tuple(problem.signal_shape)}."
        )
    offset = np.asarray(problem.noise_operator(jnp.asarray(problem.noise_mean)))
    precision = 1.0 / _observation_variance(problem)
    key = jax.random.key(seed)
    initial_latents = jnp.stack([
        jax.random.normal(jax.random.fold_in(key, index), (restarts, generator.latent_size))
        for index in range(len(observation))
    ])  # fmt: skip
    images, objectives = _csgm(
        initial_latents, jnp.float32(learning_rate), num_steps, jnp.asarray(observation),
        generator, problem.signal_operator, jnp.asarray(offset),
        jnp.asarray(precision, jnp.float32), jnp.float32(weight),
    )  # fmt: skip
    x_hat = np.clip(np.asarray(images), 0.0, 1.0).astype(np.float32)
    return (x_hat, np.asarray(objectives)) if return_objective else x_hat
