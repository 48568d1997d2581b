"""Compressed sensing with a wavelet-sparsity prior: the LASSO, solved by FISTA in JAX.

The signal is written in a wavelet basis, x = S c (S: PyWavelets' inverse 2-D transform, periodic
boundaries, as a matrix), and the coefficients solve

    minimize_c  ½ ‖W (y - B E[n] - A S c)‖² + alpha ‖c‖₁

with W = I, or W = mean(σ) / σ (the noise's per-element std, ``weighted=True``). For an
orthogonal transform (Haar or Daubechies at a level that divides the image size) this is the
analysis form ½‖·‖² + alpha ‖S⁻¹ x‖₁ too. FISTA is Beck & Teboulle (2009), eq. (4.1)-(4.3).
"""

from __future__ import annotations

import functools
import math
import numbers

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from bayesnoise.baselines.problem import LinearProblem, check_observation, import_optional
from bayesnoise.operators import AbstractLinearOperator, Identity, Scale

__all__ = ["wavelet_lasso", "minimum_norm", "wavelet_synthesis_matrix", "dense_matrix"]


def dense_matrix(operator: AbstractLinearOperator) -> Float[np.ndarray, "outputs inputs"]:
    """The matrix of a linear operator on flattened (C-order) signals."""
    size = math.prod(operator.input_shape)
    basis = jnp.eye(size, dtype=jnp.float32).reshape(size, *operator.input_shape)
    return np.asarray(jax.vmap(operator)(basis).reshape(size, -1).T)


def _default_level(height: int, width: int) -> int:
    """The deepest level whose every transform halves an even size (an orthogonal transform)."""
    level = 0
    while height % 2 == 0 and width % 2 == 0 and min(height, width) > 2:
        height, width, level = height // 2, width // 2, level + 1
    return max(level, 1)


@functools.lru_cache(maxsize=16)
def wavelet_synthesis_matrix(
    shape: tuple[int, ...], wavelet: str = "haar", level: int | None = None
) -> Float[np.ndarray, "pixels coefficients"]:
    """S with x.ravel() = S @ c: PyWavelets' inverse ``wavedec2`` (mode "periodization").

    ``shape`` is ``(height, width[, channels])``; channels are transformed separately.
    ``level`` defaults to the deepest one that keeps the transform orthogonal.
    """
    pywt = import_optional("pywt")
    if wavelet not in pywt.wavelist(kind="discrete"):
        raise ValueError(f"wavelet must be a discrete PyWavelets wavelet. Got {wavelet!r}.")
    height, width = shape[:2]
    channels = math.prod(shape[2:])
    level = _default_level(height, width) if level is None else level
    if not (isinstance(level, int) and level >= 1):
        raise ValueError(f"level must be an int >= 1. Got level={level!r}.")
    template = pywt.wavedec2(np.zeros((height, width)), wavelet, mode="periodization", level=level)
    array, slices = pywt.coeffs_to_array(template)
    columns = np.empty((height * width, array.size))
    for index in range(array.size):
        unit = np.zeros(array.size)
        unit[index] = 1.0
        coefficients = pywt.array_to_coeffs(
            unit.reshape(array.shape), slices, output_format="wavedec2"
        )
        image = pywt.waverec2(coefficients, wavelet, mode="periodization")
        columns[:, index] = image[:height, :width].ravel()
    synthesis = np.kron(columns, np.eye(channels)).astype(np.float32)
    synthesis.flags.writeable = False  # cached: shared by every caller
    return synthesis


def _noise_weights(problem: LinearProblem, weighted: bool) -> np.ndarray:
    if not weighted:
        return np.ones(problem.observation_shape, np.float32).ravel()
    if isinstance(problem.noise_operator, Identity):
        std = problem.noise_std
    elif isinstance(problem.noise_operator, Scale):
        std = abs(float(problem.noise_operator.factor)) * problem.noise_std
    else:
        raise ValueError(
            "weighted=True needs noise_operator Identity or Scale (a diagonal noise covariance). "
            f"Got {type(problem.noise_operator).__name__}."
        )
    return (std.mean() / std).ravel().astype(np.float32)


@functools.partial(jax.jit, static_argnames="num_iterations")
def _fista(matrix, residual, alpha, num_iterations):
    """FISTA for min_c ½‖residual - matrix c‖² + alpha ‖c‖₁, one row of ``residual`` each."""
    lipschitz = jnp.linalg.norm(matrix, ord=2) ** 2
    zeros = jnp.zeros((residual.shape[0], matrix.shape[1]), residual.dtype)

    def step(_, carry):
        coefficients, momentum_point, momentum = carry
        gradient = (momentum_point @ matrix.T - residual) @ matrix
        moved = momentum_point - gradient / lipschitz
        shrunk = jnp.sign(moved) * jnp.maximum(jnp.abs(moved) - alpha / lipschitz, 0.0)
        next_momentum = (1.0 + jnp.sqrt(1.0 + 4.0 * momentum**2)) / 2.0
        extrapolated = shrunk + (momentum - 1.0) / next_momentum * (shrunk - coefficients)
        return shrunk, extrapolated, next_momentum

    start = (zeros, zeros, jnp.ones((), residual.dtype))
    return jax.lax.fori_loop(0, num_iterations, step, start)[0]


def _centred_measurements(observation, problem: LinearProblem) -> Array:
    observation = check_observation(observation, problem)
    offset = np.asarray(problem.noise_operator(jnp.asarray(problem.noise_mean)))
    return jnp.asarray((observation - offset).reshape(len(observation), -1))


def wavelet_lasso(
    observation: Float[ArrayLike, " num_images *observation_shape"],
    problem: LinearProblem,
    *,
    alpha: float = 0.01,
    wavelet: str = "haar",
    level: int | None = None,
    weighted: bool = False,
    num_iterations: int = 500,
) -> Float[np.ndarray, " num_images *signal_shape"]:
    """Wavelet-sparse reconstruction of x from y = A x + B n (module docstring).

    Parameters
    ----------
    observation : array (num_images, *A.output_shape)
    problem : LinearProblem
        Any linear A (made dense: meant for small images); signals ``(height, width[, c])``.
    alpha : float
        The weight of the ℓ1 penalty, > 0.
    wavelet, level : str, int
        PyWavelets wavelet ("haar", "db2", ...) and decomposition depth.
    weighted : bool
        Whiten the residual by the noise std (B the identity or a scale).
    num_iterations : int
        FISTA iterations.

    Returns
    -------
    numpy.ndarray
        float32 ``(num_images, *A.input_shape)``, clipped to ``[0, 1]``.
    """
    if not (isinstance(alpha, numbers.Real) and math.isfinite(alpha) and alpha > 0):
        raise ValueError(f"alpha must be a positive finite number. Got alpha={alpha!r}.")
    if not (isinstance(num_iterations, int) and num_iterations >= 1):
        raise ValueError(f"num_iterations must be an int >= 1. Got {num_iterations!r}.")
    residual = _centred_measurements(observation, problem)
    if len(problem.signal_shape) not in (2, 3):
        raise ValueError(
            "problem.signal_operator.input_shape must be (height, width[, channels]). "
            f"Got {problem.signal_shape}."
        )
    synthesis = wavelet_synthesis_matrix(problem.signal_shape, wavelet, level)
    weights = jnp.asarray(_noise_weights(problem, weighted))
    matrix = weights[:, None] * jnp.asarray(dense_matrix(problem.signal_operator) @ synthesis)
    coefficients = _fista(matrix, residual * weights, jnp.float32(alpha), num_iterations)
    signal = np.asarray(coefficients) @ synthesis.T
    shape = (len(signal), *problem.signal_shape)
    return np.clip(signal.reshape(shape), 0.0, 1.0).astype(np.float32)


def minimum_norm(
    observation: Float[ArrayLike, " num_images *observation_shape"], problem: LinearProblem
) -> Float[np.ndarray, " num_images *signal_shape"]:
    """The minimum-norm least-squares solution ``A⁺ (y - B E[n])``, clipped to ``[0, 1]``."""
    residual = np.asarray(_centred_measurements(observation, problem))
    matrix = dense_matrix(problem.signal_operator)
    signal = np.linalg.lstsq(matrix, residual.T, rcond=None)[0].T  # minimum norm if m < d
    shape = (len(signal), *problem.signal_shape)
    return np.clip(signal.reshape(shape), 0.0, 1.0).astype(np.float32)
