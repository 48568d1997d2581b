"""Low-rank-plus-diagonal Gaussian priors, with an exact diffused score in O(d k).

Sigma = F F^T + tau^2 I with a ``(d, k)`` factor F, k << d: the covariance of noise that is a
random combination of a few fixed patterns (stripes, periodic interference) plus a little
white noise. With F = U S V^T (thin SVD, U orthonormal ``(d, r)``) the eigenvalues of Sigma
are S^2 + tau^2 on U's columns and tau^2 on their complement, so the diffused covariance
a_t^2 Sigma + s_t^2 I has every power in closed form,

    (a_t^2 Sigma + s_t^2 I)^p r = c_t^p r + U [(a_t^2 (S^2 + tau^2) + s_t^2)^p - c_t^p] U^T r,

with c_t = a_t^2 tau^2 + s_t^2: the score -(a_t^2 Sigma + s_t^2 I)^-1 (x - a_t m) is exact
(as :class:`GaussianPrior`'s with the dense Sigma, tested) and never forms a ``(d, d)`` matrix.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, ArrayLike, Float

from bayesnoise.priors.base import AbstractScorePrior
from bayesnoise.sde import AbstractSDE

__all__ = ["LowRankGaussianPrior"]


class LowRankGaussianPrior(AbstractScorePrior):
    """N(mean, F F^T + tau^2 I) over signals of ``shape``, with its exact diffused score.

    Parameters
    ----------
    shape : tuple of int
        The event shape of one signal, e.g. ``(28, 28, 1)``; d = prod(shape).
    sde : AbstractSDE
        The forward SDE that diffuses the prior.
    factor : Float[ArrayLike, "d k"]
        F, over the flattened signal (C order); its columns are the patterns whose random
        combination the signal is (any scale, need not be orthogonal).
    pixel_std : float
        tau > 0, the std of the white part (it keeps Sigma positive definite).
    mean : broadcastable to ``shape``; default 0.

    Examples
    --------
    >>> factor = np.ones((4, 1))  # one pattern: a constant offset of std 1
    >>> prior = LowRankGaussianPrior((4,), bn.VPSDE(), factor, pixel_std=0.1)
    """

    shape: tuple[int, ...] = eqx.field(static=True)
    sde: AbstractSDE
    mean: Float[Array, "..."]
    basis: Float[Array, "d rank"]
    pattern_variances: Float[Array, " rank"]
    pixel_variance: Float[Array, ""]

    def __init__(self, shape, sde, factor: ArrayLike, pixel_std: float, mean=0.0):
        self.shape = tuple(int(s) for s in shape)
        self.sde = sde
        self.mean = jnp.broadcast_to(jnp.asarray(mean, dtype=jnp.float32), self.shape)
        size = math.prod(self.shape)
        factor = np.asarray(factor, dtype=np.float64)
        if factor.ndim != 2 or factor.shape[0] != size:
            raise ValueError(
                f"factor must have shape (prod(shape), k)=({size}, k). "
                f"Got factor.shape={factor.shape}."
            )
        if not np.all(np.isfinite(factor)):
            raise ValueError("factor must be finite everywhere.")
        if isinstance(pixel_std, bool) or not (
            isinstance(pixel_std, int | float | np.floating) and 0 < pixel_std < math.inf
        ):
            raise ValueError(f"pixel_std must be a positive finite number. Got {pixel_std!r}.")
        basis, singular_values, _ = np.linalg.svd(factor, full_matrices=False)
        kept = singular_values > 1e-6 * max(singular_values.max(initial=0.0), 1e-30)
        self.basis = jnp.asarray(basis[:, kept], dtype=jnp.float32)
        self.pattern_variances = jnp.asarray(singular_values[kept] ** 2, dtype=jnp.float32)
        self.pixel_variance = jnp.asarray(float(pixel_std) ** 2, dtype=jnp.float32)

    @property
    def rank(self) -> int:
        """The number of patterns with nonzero variance (r <= k)."""
        return int(self.basis.shape[1])

    def covariance_matrix(self) -> Float[Array, "d d"]:
        """Sigma as a dense ``(d, d)`` matrix (for references and tests)."""
        size = math.prod(self.shape)
        low_rank = (self.basis * self.pattern_variances) @ self.basis.T
        return low_rank + self.pixel_variance * jnp.eye(size, dtype=jnp.float32)

    def _spectrum(self, t):
        """(c_t, the diffused variances along the basis): a_t^2 Sigma + s_t^2 I's eigenvalues."""
        a_t = self.sde.marginal_mean_coefficient(t)
        s_t = self.sde.marginal_std(t)
        white = a_t**2 * self.pixel_variance + s_t**2
        return white, white + a_t**2 * self.pattern_variances, a_t

    def _apply_diffused_covariance_power(self, residual, t, power):
        """(a_t^2 Sigma + s_t^2 I)^power @ residual, in O(d r)."""
        white, along_basis, _ = self._spectrum(t)
        flat = residual.ravel()
        correction = (along_basis**power - white**power) * (self.basis.T @ flat)
        return (white**power * flat + self.basis @ correction).reshape(self.shape)

    def score(self, x, t):
        _, _, a_t = self._spectrum(t)
        return -self._apply_diffused_covariance_power(x - a_t * self.mean, t, -1.0)

    def log_prob(self, x, t):
        white, along_basis, a_t = self._spectrum(t)
        residual = x - a_t * self.mean
        mahalanobis = jnp.sum(residual * self._apply_diffused_covariance_power(residual, t, -1.0))
        size = math.prod(self.shape)
        log_determinant = jnp.sum(jnp.log(along_basis)) + (size - self.rank) * jnp.log(white)
        return -0.5 * (mahalanobis + log_determinant + size * math.log(2 * math.pi))

    def sample(self, key, t):
        _, _, a_t = self._spectrum(t)
        white = jax.random.normal(key, self.shape)
        return a_t * self.mean + self._apply_diffused_covariance_power(white, t, 0.5)
