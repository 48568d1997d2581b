"""Gaussian priors with their exact diffused score and log-density.

If x_0 ~ N(m, Sigma) and q(x_t | x_0) = N(a_t x_0, s_t^2 I), then
x_t ~ N(a_t m, a_t^2 Sigma + s_t^2 I) and score_t(x) = -(a_t^2 Sigma + s_t^2 I)^(-1) (x - a_t m).
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float

from bayesnoise.priors.base import AbstractScorePrior
from bayesnoise.sde import AbstractSDE

__all__ = ["GaussianPrior"]


class GaussianPrior(AbstractScorePrior):
    """N(mean, Sigma) over signals of ``shape``, with Sigma given in one of three ways.

    Parameters
    ----------
    shape : the event shape of one signal, e.g. ``(28, 28, 1)``.
    sde : the forward SDE that diffuses the prior.
    mean : broadcastable to ``shape``; default 0.
    variance : per-element variances, broadcastable to ``shape`` (scalar or diagonal Sigma).
    covariance : a full ``(d, d)`` matrix over the flattened signal, d = prod(shape).

    Give ``variance`` or ``covariance``, not both (default: ``variance=1``).
    """

    shape: tuple[int, ...] = eqx.field(static=True)
    sde: AbstractSDE
    mean: Float[Array, "..."]
    variance: Float[Array, "..."] | None
    eigenvalues: Float[Array, " d"] | None
    eigenvectors: Float[Array, "d d"] | None

    def __init__(self, shape, sde, mean=0.0, variance=None, covariance=None):
        self.shape = tuple(int(s) for s in shape)
        self.sde = sde
        self.mean = jnp.broadcast_to(jnp.asarray(mean, dtype=jnp.float32), self.shape)
        if variance is not None and covariance is not None:
            raise ValueError("Give variance or covariance, not both.")
        if covariance is None:
            variance = 1.0 if variance is None else variance
            variance = np.asarray(variance, dtype=np.float32)
            if not (np.all(np.isfinite(variance)) and np.all(variance > 0)):
                raise ValueError("variance must be finite and positive everywhere.")
            self.variance = jnp.broadcast_to(jnp.asarray(variance), self.shape)
            self.eigenvalues = self.eigenvectors = None
        else:
            covariance = np.asarray(covariance, dtype=np.float64)
            size = math.prod(self.shape)
            if covariance.shape != (size, size):
                raise ValueError(
                    f"covariance must have shape (prod(shape), prod(shape))=({size}, {size}). "
                    f"Got covariance.shape={covariance.shape}."
                )
            if not np.allclose(covariance, covariance.T, atol=1e-6 * np.abs(covariance).max()):
                raise ValueError("covariance must be symmetric.")
            eigenvalues, eigenvectors = np.linalg.eigh(covariance)
            if eigenvalues.min() <= 0:
                raise ValueError(
                    "covariance must be positive definite. "
                    f"Got smallest eigenvalue {eigenvalues.min():.3g}."
                )
            self.variance = None
            self.eigenvalues = jnp.asarray(eigenvalues, dtype=jnp.float32)
            self.eigenvectors = jnp.asarray(eigenvectors, dtype=jnp.float32)

    def covariance_matrix(self) -> Float[Array, "d d"]:
        """Sigma as a dense ``(d, d)`` matrix (for references and tests)."""
        if self.variance is not None:
            return jnp.diag(self.variance.ravel())
        return (self.eigenvectors * self.eigenvalues) @ self.eigenvectors.T

    def _diffused_moments(self, t):
        a_t = self.sde.marginal_mean_coefficient(t)
        s_t = self.sde.marginal_std(t)
        return a_t * self.mean, a_t, s_t

    def _apply_diffused_covariance_power(self, residual, t, power):
        """(a_t^2 Sigma + s_t^2 I)^power @ residual, for power in {-1, -1/2, 1/2}."""
        _, a_t, s_t = self._diffused_moments(t)
        if self.variance is not None:
            return (a_t**2 * self.variance + s_t**2) ** power * residual
        spectrum = (a_t**2 * self.eigenvalues + s_t**2) ** power
        flat = self.eigenvectors @ (spectrum * (self.eigenvectors.T @ residual.ravel()))
        return flat.reshape(self.shape)

    def _log_determinant(self, t):
        _, a_t, s_t = self._diffused_moments(t)
        if self.variance is not None:
            return jnp.sum(jnp.log(a_t**2 * self.variance + s_t**2))
        return jnp.sum(jnp.log(a_t**2 * self.eigenvalues + s_t**2))

    def score(self, x, t):
        mean_t, _, _ = self._diffused_moments(t)
        return -self._apply_diffused_covariance_power(x - mean_t, t, -1.0)

    def log_prob(self, x, t):
        mean_t, _, _ = self._diffused_moments(t)
        residual = x - mean_t
        mahalanobis = jnp.sum(residual * self._apply_diffused_covariance_power(residual, t, -1.0))
        size = math.prod(self.shape)
        return -0.5 * (mahalanobis + self._log_determinant(t) + size * math.log(2 * math.pi))

    def sample(self, key, t):
        mean_t, _, _ = self._diffused_moments(t)
        white = jax.random.normal(key, self.shape)
        return mean_t + self._apply_diffused_covariance_power(white, t, 0.5)
