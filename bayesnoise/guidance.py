"""Likelihood guidance at diffusion time t: approximations of grad log p(y | x_t, n_t).

Both use Tweedie's estimates x0_hat = (x_t + s_t^2 s(x_t, t)) / a_t (DPS eq. 11), with one
vector-Jacobian product through each prior.

- :func:`pigdm_guidance`: the variance-inflated Gaussian likelihood (PiGDM, Song et al. 2023)
  p(y | x_t, n_t) ~ N(y; A x0_hat + B n0_hat, Sigma_y + A C_x A^T + B C_n B^T). With
  ``covariance="tweedie"`` C is Tweedie's posterior covariance (s_t^2 / a_t) d x0_hat / d x_t,
  which makes the guidance exact when the priors are Gaussian and the operators linear;
  ``covariance="scalar"`` uses PiGDM's r_t^2 I = s_t^2 / (a_t^2 + s_t^2) I (cheaper).
- :func:`dps_guidance`: the gradient of DPS's residual norm ||y - A x0_hat - B n0_hat||, taken
  per image (DPS Algorithm 1), in the units of y.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.sparse.linalg import cg

__all__ = ["pigdm_guidance", "dps_guidance", "COVARIANCES"]

COVARIANCES = ("tweedie", "scalar")


def pigdm_guidance(
    target, position, observation, time, covariance="tweedie", cg_tolerance=1e-6, cg_max_steps=100
):
    """grad_{x_t, n_t} log N(y; mean(x0_hat, n0_hat), K) with K held fixed.

    Returns ``(guidance, prior_scores, residual_norm)``.
    """
    if covariance not in COVARIANCES:
        raise ValueError(f"covariance must be one of {COVARIANCES}. Got {covariance!r}.")
    sde = target.sde
    a_t = sde.marginal_mean_coefficient(time)
    s_t = sde.marginal_std(time)

    def denoise(position):
        return target.tweedie_denoise(position, time)

    denoised, denoise_linear, prior_scores = jax.linearize(denoise, position, has_aux=True)
    predicted, forward_linear = jax.linearize(target.predicted_observation, denoised)
    forward_transpose = jax.linear_transpose(forward_linear, denoised)
    variance = target.observation_distribution(denoised, observation).variance

    if covariance == "tweedie":

        def posterior_covariance(v):  # Cov[x_0 | x_t] v = (s_t^2 / a_t) (d x0_hat / d x_t) v
            return jax.tree.map(lambda u: (s_t**2 / a_t) * u, denoise_linear(v))
    else:
        inflation = s_t**2 / (a_t**2 + s_t**2)

        def posterior_covariance(v):
            return jax.tree.map(lambda u: inflation * u, v)

    def likelihood_covariance(u):  # K u = Sigma_y u + A C_x A^T u + B C_n B^T u
        (back,) = forward_transpose(u)
        return variance * u + forward_linear(posterior_covariance(back))

    residual = observation - predicted
    weighted_residual, _ = cg(
        likelihood_covariance, residual, tol=cg_tolerance, maxiter=cg_max_steps
    )
    (back,) = forward_transpose(weighted_residual)
    (guidance,) = jax.linear_transpose(denoise_linear, position)(back)
    return guidance, prior_scores, jnp.linalg.norm(residual)


def dps_guidance(target, position, observation, time):
    """grad_{x_t, n_t} of the per-image residual norm ||y - A x0_hat - B n0_hat||.

    The residual is whitened by the likelihood's variance and rescaled by its mean std, so it
    is exactly DPS's norm for Gaussian noise and the shot-noise weighted norm for Poisson.
    Returns ``(norm_gradient, prior_scores, residual_norm)``.
    """

    def residual_norm(position):
        denoised, scores = target.tweedie_denoise(position, time)
        likelihood = target.observation_distribution(denoised, observation)
        whitened = (observation - likelihood.mean) / jnp.sqrt(likelihood.variance)
        scale = jnp.sqrt(jnp.mean(likelihood.variance))
        return scale * jnp.sqrt(jnp.sum(whitened**2)), scores

    (norm, scores), gradient = jax.value_and_grad(residual_norm, has_aux=True)(position)
    return gradient, scores, norm
