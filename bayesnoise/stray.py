"""Stray trajectories: those whose final (x, n) the model finds far less probable than the best.

Each trajectory of the reverse diffusion settles on one split of y into signal and noise. Most
settle on the same one; some stray onto a wrong split (part of the digit in the clothing, a
mixing weight near 0 or 1) that fits y as well but is improbable under the model. Averaging them
in costs several dB. The fiber move of :mod:`bayesnoise.rescaling` is local to a split, so
trajectories are compared across splits by the posterior density of their end points on y's
fiber {(x, n): A_theta x + B_theta n = y}, y's likelihood integrated across it:

    log p(x) + log p(n) + log p(theta) - 1/2 log det(J J^T),   J = d(A_theta x + B_theta n)/d(x, n).

The last term is that integral (a Gaussian likelihood of any covariance integrates to
det(J J^T)^-1/2 across the fiber; the coarea formula): the likelihood's volume on theta's fiber,
((1 - alpha)^2 + alpha^2)^(-d/2) for y = (1 - alpha) x + alpha n, 268 nats more at alpha = 0.45
than at alpha = 0 for a 28 x 28 image. It depends on theta only (linear operators), so it is left
out when theta is known. y's residual is left out too: every end point explains y to the
sampler's accuracy, and the residual measures the sampler's error, not the split (at a
measurement std of 0.01 a residual of 0.02 per pixel is worth 1 500 nats of a 28 x 28 image: it
would drown the priors). The priors' terms are estimated by the diffusion ELBO (the variational
bound of a score prior in its log-SNR form, Kingma et al. 2021, "Variational Diffusion Models";
Song et al. 2021, "Maximum Likelihood Training of Score-Based Diffusion Models"):

    log p(z) >= -1/2 int_{lambda(1)}^{lambda(t_min)} E_eps || eps - eps_hat(a_t z + s_t eps, t) ||^2
                d lambda + C,      lambda(t) = log(a_t^2 / s_t^2),  eps_hat = -s_t score,

with C independent of z. The integral is a mean over ``num_times`` points of a lambda-uniform
grid (one random offset), with the same grid and the same eps for every trajectory of an image:
their differences, which are all that is used, have far less variance than each bound.

A trajectory more than ``tolerance`` nats below the best of its image is a stray: flagged in
``sample_stats.stray`` and NaN in the posterior, like a diverged one. The rule picks modes, it
does not weigh them: the density of an end point is not its split's posterior mass.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro.handlers as handlers
from numpyro.infer.util import log_density

from bayesnoise.target import OBSERVED_SITE

__all__ = [
    "StrayCheck",
    "prior_log_density_bound",
    "check_target",
    "fiber_log_volume",
    "end_point_log_density",
    "strays",
]


class StrayCheck(eqx.Module):
    """Flag trajectories whose end point is improbable next to the best of the same image.

    Parameters
    ----------
    tolerance : nats below the image's best end-point log density beyond which a trajectory is a
        stray (``math.inf``: nothing is flagged, the densities are only recorded). Choose it per
        model on validation images (``models/digits_unknown_mixing.py``: 100, README).
    num_times : points of the lambda grid of the ELBO (network evaluations per prior).
    min_time : the smallest diffusion time of the grid.
    """

    tolerance: float = 150.0
    num_times: int = eqx.field(static=True, default=32)
    min_time: float = eqx.field(static=True, default=1e-3)

    def __check_init__(self):
        if not (isinstance(self.tolerance, int | float) and self.tolerance > 0):
            raise ValueError(
                f"tolerance must be a positive number of nats (or math.inf). "
                f"Got tolerance={self.tolerance!r}."
            )
        if isinstance(self.num_times, bool) or not isinstance(self.num_times, int):
            raise ValueError(f"num_times must be a positive integer. Got {self.num_times!r}.")
        if self.num_times < 1:
            raise ValueError(f"num_times must be a positive integer. Got {self.num_times!r}.")
        if not (isinstance(self.min_time, int | float) and 0 < self.min_time < 1):
            raise ValueError(f"min_time must be a number in (0, 1). Got {self.min_time!r}.")


def _log_snr(sde, t):
    return 2.0 * (jnp.log(sde.marginal_mean_coefficient(t)) - jnp.log(sde.marginal_std(t)))


def _time_of_log_snr(sde, value, min_time):
    """The t in [min_time, 1] with lambda(t) = value (lambda decreases in t), by bisection."""

    def halve(_, bracket):
        low, high = bracket
        middle = 0.5 * (low + high)
        above = _log_snr(sde, middle) > value
        return jnp.where(above, middle, low), jnp.where(above, high, middle)

    low, high = jax.lax.fori_loop(0, 40, halve, (jnp.float32(min_time), jnp.float32(1.0)))
    return 0.5 * (low + high)


def log_snr_grid(sde, key, check: StrayCheck):
    """The diffusion times of the lambda-uniform grid and the grid's lambda range."""
    top, bottom = _log_snr(sde, check.min_time), _log_snr(sde, 1.0)
    offset = jax.random.uniform(key)
    fractions = (jnp.arange(check.num_times, dtype=jnp.float32) + offset) / check.num_times
    values = bottom + (top - bottom) * fractions
    times = jax.vmap(lambda value: _time_of_log_snr(sde, value, check.min_time))(values)
    return times, top - bottom


def prior_log_density_bound(target, position, key, check: StrayCheck):
    """The ELBO of each site's score prior at ``position`` (unbatched), up to a constant:
    ``{site: scalar}``. The same ``key`` gives the same grid and eps (common random numbers)."""
    grid_key, noise_key = jax.random.split(key)
    times, width = log_snr_grid(target.sde, grid_key, check)
    sde = target.sde

    def squared_errors(index):
        t = times[index]
        a_t, s_t = sde.marginal_mean_coefficient(t), sde.marginal_std(t)
        keys = jax.random.split(jax.random.fold_in(noise_key, index), len(position))
        eps = {
            site: jax.random.normal(site_key, value.shape)
            for site_key, (site, value) in zip(keys, position.items(), strict=True)
        }
        diffused = {site: a_t * value + s_t * eps[site] for site, value in position.items()}
        scores = target.prior_score(diffused, t)
        return {site: jnp.sum((eps[site] + s_t * scores[site]) ** 2) for site in position}

    errors = jax.lax.map(squared_errors, jnp.arange(check.num_times))
    return {site: -0.5 * width * jnp.mean(values) for site, values in errors.items()}


# J J^T is formed densely: (observation size) x (position size) floats at most
MAX_JACOBIAN_SIZE = 2**26


def check_target(target) -> None:
    """Refuse a model whose fiber volume (unknown parameters) needs a Jacobian too large to
    form densely; called by ``bn.sample`` before sampling."""
    if not target.parameter_names:
        return
    rows = math.prod(target.observation_shape)
    columns = sum(math.prod(shape) for shape in target.latent_shapes.values())
    if rows * columns > MAX_JACOBIAN_SIZE:
        raise ValueError(
            f"A StrayCheck with unknown parameters forms the Jacobian of the forward model "
            f"densely; at most {MAX_JACOBIAN_SIZE} elements. Got an observation of {rows} and "
            f"a position of {columns} elements. Drop stray_check for this model."
        )


def fiber_log_volume(target, position, parameters):
    """-1/2 log det(J J^T), J = d(A_theta x + B_theta n)/d(x, n) at ``position`` (unbatched):
    y's likelihood integrated across the fiber of ``parameters``."""
    check_target(target)
    predict = target.with_parameters(parameters).predicted_observation
    rows = math.prod(target.observation_shape)
    jacobian = jax.jacrev(predict)(position)
    matrix = jnp.concatenate([block.reshape(rows, -1) for block in jacobian.values()], axis=1)
    return -0.5 * jnp.linalg.slogdet(matrix @ matrix.T)[1]


def end_point_log_density(target, position, parameters, key, check: StrayCheck):
    """log p(x) + log p(n) (their ELBOs) + log p(theta) + the fiber's log volume (when there
    are parameters) of one end point, up to a constant."""
    bounds = prior_log_density_bound(target, position, key, check)
    if not target.parameter_names:
        return sum(bounds.values())
    hidden = [*target.latent_names, OBSERVED_SITE]
    parameters_only = handlers.block(handlers.substitute(target.model, data=position), hide=hidden)
    placeholder = jnp.zeros(target.observation_shape)
    kwargs = {"observation": placeholder, "diffusion_time": 0.0}
    parameter_prior = log_density(parameters_only, (), kwargs, parameters)[0]
    volume = fiber_log_volume(target, position, parameters)
    return sum(bounds.values()) + parameter_prior + volume


def strays(log_densities, diverged, tolerance):
    """Which trajectories lie more than ``tolerance`` below their image's best (``(image,
    trajectory)`` arrays; diverged ones are neither the best nor strays)."""
    usable = jnp.where(diverged | ~jnp.isfinite(log_densities), -jnp.inf, log_densities)
    best = jnp.max(usable, axis=1, keepdims=True)
    return ~diverged & (usable < best - tolerance)  # an infinite tolerance flags none
