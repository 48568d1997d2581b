"""The Gaussian-noise diffusion baseline: a learned signal prior, the noise as a Gaussian.

The single-structured-prior method the paper compares with (its "DPS/ΠGDM with Gaussian
noise"): the same sampler and signal prior as the joint method, but n ~ N(E[n], diag(std(n)²))
from the problem's first two moments instead of a learned noise prior. It is
``analyses/remove_digits.py``'s ``gaussian_noise_baseline`` behind the baselines' call shape.
"""

from __future__ import annotations

import numpy as np
from jaxtyping import ArrayLike, Float

from bayesnoise.baselines.problem import LinearProblem, check_observation
from bayesnoise.inference import sample
from bayesnoise.model import joint_model
from bayesnoise.priors import AbstractScorePrior, GaussianPrior

__all__ = ["gaussian_noise_diffusion"]


def gaussian_noise_diffusion(
    observation: Float[ArrayLike, " num_images *observation_shape"],
    problem: LinearProblem,
    *,
    signal_prior: AbstractScorePrior,
    sampler: str = "pigdm",
    sampler_options: dict | None = None,
    num_draws: int = 4,
    num_steps: int = 100,
    start_time: float = 0.6,
    measurement_std: float = 0.01,
    seed: int = 0,
) -> Float[np.ndarray, " num_images *signal_shape"]:
    """The posterior mean of x (over ``num_draws`` trajectories) with a Gaussian noise prior.

    Parameters
    ----------
    observation : array (num_images, *A.output_shape)
    problem : LinearProblem
        Its ``noise_mean`` and ``noise_std`` define the Gaussian noise prior.
    signal_prior : AbstractScorePrior
        The learned prior of x (its SDE is used for the noise prior too).
    sampler, sampler_options, num_steps, start_time, seed
        As in :func:`bayesnoise.sample`; the defaults are ``remove_digits.py``'s (ΠGDM with
        the scalar covariance, 100 steps from t0 = 0.6).
    num_draws : int
        Trajectories averaged per image (one chain).
    measurement_std : float
        σ of the likelihood's Gaussian ε.

    Returns
    -------
    numpy.ndarray
        float32 ``(num_images, *A.input_shape)``: the mean of the draws that did not diverge,
        clipped to ``[0, 1]`` (NaN where every draw of an image diverged).
    """
    observation = check_observation(observation, problem)
    if not isinstance(signal_prior, AbstractScorePrior):
        raise TypeError(
            f"signal_prior must be an AbstractScorePrior. Got {type(signal_prior).__name__}."
        )
    if tuple(signal_prior.shape) != problem.signal_shape:
        raise ValueError(
            f"signal_prior.shape must be problem.signal_shape={problem.signal_shape}. "
            f"Got {tuple(signal_prior.shape)}."
        )
    noise_prior = GaussianPrior(
        problem.noise_operator.input_shape,
        signal_prior.sde,
        mean=problem.noise_mean,
        variance=problem.noise_std**2,
    )
    model = joint_model(
        signal_prior,
        noise_prior,
        signal_operator=problem.signal_operator,
        noise_operator=problem.noise_operator,
        measurement_std=measurement_std,
    )
    options = {"covariance": "scalar"} if sampler_options is None and sampler == "pigdm" else {}
    tree = sample(
        model,
        observation,
        sampler=sampler,
        sampler_options=sampler_options if sampler_options is not None else options,
        num_chains=1,
        num_draws=num_draws,
        num_steps=num_steps,
        start_time=start_time,
        seed=seed,
        progress=False,
    )
    draws = np.asarray(tree.posterior["x"])[0]  # (draw, image, *signal_shape)
    finite = np.isfinite(draws)
    count = finite.sum(axis=0)
    total = np.where(finite, draws, 0.0).sum(axis=0)
    mean = np.where(count > 0, total / np.maximum(count, 1), np.nan)
    return np.clip(mean, 0.0, 1.0).astype(np.float32)
