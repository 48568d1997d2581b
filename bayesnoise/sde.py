"""Forward diffusion SDEs dx = f(t) x dt + g(t) dw on t in [0, 1].

Every SDE here is linear with a scalar drift coefficient, so its marginal is Gaussian:
q(x_t | x_0) = N(a_t x_0, s_t^2 I) with a_t the *marginal mean coefficient* and s_t the
*marginal standard deviation*. The reverse-time Euler–Maruyama step (Song et al. 2021, eq. 6) is

    x <- x - [f(t) x - g(t)^2 score(x, t)] dt + g(t) sqrt(dt) z.
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

__all__ = ["AbstractSDE", "VPSDE", "SubVPSDE", "VESDE", "SimpleSDE", "time_grid", "SPACINGS"]

Time = Float[Array, ""] | float


class AbstractSDE(eqx.Module):
    """A linear SDE ``dx = f(t) x dt + g(t) dw`` with a Gaussian marginal."""

    @abc.abstractmethod
    def drift_coefficient(self, t: Time) -> Float[Array, ""]:
        """f(t): the drift is ``f(t) * x``."""

    @abc.abstractmethod
    def diffusion(self, t: Time) -> Float[Array, ""]:
        """g(t)."""

    @abc.abstractmethod
    def marginal_mean_coefficient(self, t: Time) -> Float[Array, ""]:
        """a_t in q(x_t | x_0) = N(a_t x_0, s_t^2 I)."""

    @abc.abstractmethod
    def marginal_std(self, t: Time) -> Float[Array, ""]:
        """s_t in q(x_t | x_0) = N(a_t x_0, s_t^2 I)."""

    @abc.abstractmethod
    def prior_std(self) -> float:
        """Standard deviation of the zero-mean Gaussian that approximates q(x_1)."""

    def prior_sample(self, key: PRNGKeyArray, shape: tuple[int, ...]) -> Array:
        """A draw from the reference distribution N(0, prior_std^2 I) at t = 1."""
        return self.prior_std() * jax.random.normal(key, shape)

    def perturb(self, key: PRNGKeyArray, x0: Array, t: Time) -> Array:
        """A draw from q(x_t | x_0)."""
        noise = jax.random.normal(key, jnp.shape(x0))
        return self.marginal_mean_coefficient(t) * x0 + self.marginal_std(t) * noise


class VPSDE(AbstractSDE):
    """Variance preserving SDE: beta(t) = beta_min + t (beta_max - beta_min).

    The paper uses beta_min = 0.1, beta_max = 7.0; score_sde's default beta_max is 20.
    """

    beta_min: float = 0.1
    beta_max: float = 20.0

    def __check_init__(self):
        if not 0 <= self.beta_min < self.beta_max:
            raise ValueError(
                f"beta_min and beta_max must satisfy 0 <= beta_min < beta_max. "
                f"Got beta_min={self.beta_min}, beta_max={self.beta_max}."
            )

    def _beta(self, t):
        return self.beta_min + t * (self.beta_max - self.beta_min)

    def _log_mean_coefficient(self, t):
        return -0.25 * t**2 * (self.beta_max - self.beta_min) - 0.5 * t * self.beta_min

    def drift_coefficient(self, t):
        return -0.5 * self._beta(jnp.asarray(t))

    def diffusion(self, t):
        return jnp.sqrt(self._beta(jnp.asarray(t)))

    def marginal_mean_coefficient(self, t):
        return jnp.exp(self._log_mean_coefficient(jnp.asarray(t)))

    def marginal_std(self, t):
        return jnp.sqrt(-jnp.expm1(2.0 * self._log_mean_coefficient(jnp.asarray(t))))

    def prior_std(self):
        return 1.0


class SubVPSDE(VPSDE):
    """Sub-VP SDE (Song et al. 2021): the VP drift with g(t)^2 = beta(t)(1 - a_t^4).

    Its marginal std is 1 - a_t^2, always below the VP one.
    """

    def diffusion(self, t):
        t = jnp.asarray(t)
        return jnp.sqrt(self._beta(t) * -jnp.expm1(4.0 * self._log_mean_coefficient(t)))

    def marginal_std(self, t):
        return -jnp.expm1(2.0 * self._log_mean_coefficient(jnp.asarray(t)))


class VESDE(AbstractSDE):
    """Variance exploding SDE: sigma(t) = sigma_min (sigma_max / sigma_min)^t, no drift.

    The marginal std is exact, s_t^2 = sigma(t)^2 - sigma_min^2, so s_0 = 0.
    """

    sigma_min: float = 0.01
    sigma_max: float = 50.0

    def __check_init__(self):
        if not 0 < self.sigma_min < self.sigma_max:
            raise ValueError(
                f"sigma_min and sigma_max must satisfy 0 < sigma_min < sigma_max. "
                f"Got sigma_min={self.sigma_min}, sigma_max={self.sigma_max}."
            )

    def _sigma(self, t):
        return self.sigma_min * (self.sigma_max / self.sigma_min) ** jnp.asarray(t)

    def drift_coefficient(self, t):
        return jnp.zeros_like(jnp.asarray(t, dtype=float))

    def diffusion(self, t):
        return self._sigma(t) * jnp.sqrt(2.0 * jnp.log(self.sigma_max / self.sigma_min))

    def marginal_mean_coefficient(self, t):
        return jnp.ones_like(jnp.asarray(t, dtype=float))

    def marginal_std(self, t):
        return jnp.sqrt(self._sigma(t) ** 2 - self.sigma_min**2)

    def prior_std(self):
        return self.sigma_max


class SimpleSDE(AbstractSDE):
    """The paper code's "simple" SDE: no drift, g(t) = sigma^t (the authors use sigma = 25).

    s_t^2 = int_0^t sigma^(2u) du = (sigma^(2t) - 1) / (2 log sigma).
    """

    sigma: float = 25.0

    def __check_init__(self):
        if not self.sigma > 1:
            raise ValueError(f"sigma must be greater than 1. Got sigma={self.sigma}.")

    def drift_coefficient(self, t):
        return jnp.zeros_like(jnp.asarray(t, dtype=float))

    def diffusion(self, t):
        return self.sigma ** jnp.asarray(t, dtype=float)

    def marginal_mean_coefficient(self, t):
        return jnp.ones_like(jnp.asarray(t, dtype=float))

    def marginal_std(self, t):
        log_sigma = jnp.log(self.sigma)
        return jnp.sqrt(jnp.expm1(2.0 * jnp.asarray(t) * log_sigma) / (2.0 * log_sigma))

    def prior_std(self):
        return float(jnp.sqrt((self.sigma**2 - 1.0) / (2.0 * jnp.log(self.sigma))))


SPACINGS = ("uniform", "quadratic")


def time_grid(
    num_steps: int, start_time: float = 1.0, end_time: float = 0.0, spacing: str = "uniform"
) -> Array:
    """The ``num_steps + 1`` times t_0 = start_time > ... > t_N = end_time of a reverse sampler.

    ``"uniform"`` is the paper's grid (Algorithm 1: t = (i + 1) / T). ``"quadratic"`` spaces
    sqrt(t - end_time) uniformly, so steps shrink near the data (t_N), where the posterior of
    fine components is narrower than a uniform Euler–Maruyama step can resolve.
    """
    if not (isinstance(num_steps, int) and num_steps >= 1):
        raise ValueError(f"num_steps must be a positive integer. Got num_steps={num_steps!r}.")
    if not 0 <= end_time < start_time <= 1:
        raise ValueError(
            f"Times must satisfy 0 <= end_time < start_time <= 1. "
            f"Got start_time={start_time}, end_time={end_time}."
        )
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {SPACINGS}. Got spacing={spacing!r}.")
    fraction = 1.0 - jnp.arange(num_steps + 1, dtype=jnp.float32) / num_steps
    if spacing == "quadratic":
        fraction = fraction**2
    return end_time + (start_time - end_time) * fraction
