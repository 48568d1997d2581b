"""The forward model a baseline is told about: y = A x + B n, with n's mean and std.

Every baseline has one call shape, ``reconstruct(observation, problem, **hyper) -> x_hat``:
``observation`` is a batch ``(num_images, *A.output_shape)`` and ``x_hat`` a float32 batch
``(num_images, *A.input_shape)`` clipped to ``[0, 1]`` (the range of the shipped images).
Classical baselines know the noise only through its first two moments, ``noise_mean`` and
``noise_std`` (numbers, or arrays broadcastable to ``B.input_shape``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

import numpy as np
from jaxtyping import ArrayLike, Float

from bayesnoise.operators import AbstractLinearOperator, Identity, Scale

__all__ = ["LinearProblem", "check_observation", "denoising_input"]


def import_optional(name: str):
    """Import a package of the ``baselines`` extra, or say how to install it."""
    try:
        return importlib.import_module(name)
    except ImportError as error:
        raise ImportError(
            f"{name} is needed by this baseline: pip install 'bayesnoise[baselines]'."
        ) from error


@dataclass(frozen=True)
class LinearProblem:
    """y = A x + B n with E[n] = ``noise_mean`` and per-element std ``noise_std``.

    Parameters
    ----------
    signal_operator : AbstractLinearOperator
        A; its ``input_shape`` is the signal's shape, its ``output_shape`` the observation's.
    noise_operator : AbstractLinearOperator, optional
        B; the identity on the observation's shape by default.
    noise_mean, noise_std : float or array
        Mean and standard deviation of n, broadcastable to ``B.input_shape``; ``noise_std > 0``.

    Examples
    --------
    >>> from bayesnoise.operators import Scale
    >>> mixing = Scale((28, 28, 1), 0.5)  # y = 0.5 x + 0.5 n
    >>> problem = LinearProblem(mixing, mixing, noise_mean=0.13, noise_std=0.3)
    """

    signal_operator: AbstractLinearOperator
    noise_operator: AbstractLinearOperator | None = None
    noise_mean: float | ArrayLike = 0.0
    noise_std: float | ArrayLike = 1.0

    def __post_init__(self):
        for name in ("signal_operator", "noise_operator"):
            operator = getattr(self, name)
            if operator is not None and not isinstance(operator, AbstractLinearOperator):
                raise TypeError(
                    f"{name} must be a bayesnoise.operators.AbstractLinearOperator. "
                    f"Got {type(operator).__name__}."
                )
        if self.noise_operator is None:
            object.__setattr__(self, "noise_operator", Identity(self.observation_shape))
        if self.noise_operator.output_shape != self.observation_shape:
            raise ValueError(
                "noise_operator must map to the observation shape "
                f"signal_operator.output_shape={self.observation_shape}. "
                f"Got noise_operator.output_shape={self.noise_operator.output_shape}."
            )
        noise_shape = self.noise_operator.input_shape
        for name in ("noise_mean", "noise_std"):
            value = np.asarray(getattr(self, name), dtype=np.float32)
            try:
                value = np.broadcast_to(value, noise_shape)
            except ValueError:
                raise ValueError(
                    f"{name} must be broadcastable to noise_operator.input_shape={noise_shape}. "
                    f"Got {name}.shape={value.shape}."
                ) from None
            if not np.all(np.isfinite(value)):
                raise ValueError(f"{name} must be finite. Got non-finite values.")
            object.__setattr__(self, name, value)
        if not np.all(self.noise_std > 0):
            raise ValueError(f"noise_std must be > 0. Got min {self.noise_std.min()}.")

    @property
    def signal_shape(self) -> tuple[int, ...]:
        """The shape of one signal x."""
        return self.signal_operator.input_shape

    @property
    def observation_shape(self) -> tuple[int, ...]:
        """The shape of one observation y."""
        return self.signal_operator.output_shape


def check_observation(
    observation: Float[ArrayLike, " num_images *observation_shape"], problem: LinearProblem
) -> Float[np.ndarray, " num_images *observation_shape"]:
    """Validate a batch of observations against ``problem`` and return it as float32.

    Raises
    ------
    TypeError
        If ``problem`` is not a :class:`LinearProblem` or ``observation`` is not floating point.
    ValueError
        If ``observation`` is not a non-empty, finite batch ``(num_images, *observation_shape)``.
    """
    if not isinstance(problem, LinearProblem):
        raise TypeError(f"problem must be a LinearProblem. Got {type(problem).__name__}.")
    observation = np.asarray(observation)
    if not np.issubdtype(observation.dtype, np.floating):
        raise TypeError(f"observation must be floating point. Got dtype {observation.dtype}.")
    expected = ("num_images", *problem.observation_shape)
    if observation.ndim != len(expected) or observation.shape[1:] != problem.observation_shape:
        raise ValueError(
            f"observation must have shape {expected} (a batch). Got shape {observation.shape}."
        )
    if observation.shape[0] == 0:
        raise ValueError("observation must hold at least one image. Got num_images=0.")
    if not np.all(np.isfinite(observation)):
        raise ValueError("observation must be finite. Got NaN or inf values.")
    return observation.astype(np.float32)


def _scale_of(operator: AbstractLinearOperator) -> float | None:
    if isinstance(operator, Identity):
        return 1.0
    if isinstance(operator, Scale) and float(operator.factor) != 0.0:
        return float(operator.factor)
    return None


def denoising_input(
    observation: Float[ArrayLike, " num_images *shape"], problem: LinearProblem
) -> tuple[Float[np.ndarray, " num_images *shape"], float]:
    """Undo the mixing scales: a noisy image of x and the std of its remaining noise.

    For y = a x + b n (A = a I, B = b I), ``z = (y - b E[n]) / a = x + (b / a)(n - E[n])``:
    an unbiased but noisy image of x whose noise has std ``(b / a) std(n)``, returned as one
    number (the root mean square of the per-pixel std) because BM3D and non-local means take
    one. For the digits problem (a = b = 0.5) this is ``z = 2 y - E[n]`` with the std of a
    digit's pixels: the digit itself is the noise a denoiser is asked to remove.

    Raises
    ------
    ValueError
        If A or B is not the identity or a nonzero ``Scale`` (the problem is not denoising).
    """
    observation = check_observation(observation, problem)
    signal_scale = _scale_of(problem.signal_operator)
    noise_scale = _scale_of(problem.noise_operator)
    if signal_scale is None or noise_scale is None:
        raise ValueError(
            "problem must be a denoising problem (signal_operator and noise_operator Identity "
            "or a nonzero Scale). Got signal_operator="
            f"{type(problem.signal_operator).__name__}, "
            f"noise_operator={type(problem.noise_operator).__name__}."
        )
    noisy = (observation - noise_scale * problem.noise_mean) / signal_scale
    noise_std = abs(noise_scale / signal_scale) * float(np.sqrt(np.mean(problem.noise_std**2)))
    return noisy.astype(np.float32), noise_std
