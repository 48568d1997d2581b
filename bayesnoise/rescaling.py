"""A theta move that carries (x, n) along: Gibbs steps on the fiber that keeps A x + B n fixed.

With y = g_x(theta) A x + g_n(theta) B n + eps (each latent site entering y through a scalar gain
of theta, e.g. y = (1 - alpha) x + alpha n), the map

    theta -> theta',  site -> c_site site,  c_site = g_site(theta) / g_site(theta')

leaves the prediction, hence the likelihood's mean, unchanged. Along this one-dimensional fiber
the joint density of (site', theta') is

    p(theta') p(y | site', theta') prod_site p(c_site site) |c_site|^d_site

(the last factor the map's Jacobian), so the priors alone decide theta: e.g. the stroke
intensity the digits prior expects pins the mixing weight. Gibbs steps on (x, n, theta) that
condition theta on (x, n) cannot see this: with a nearly noise-free y, p(theta | x, n, y) is a
point, and theta inherits whatever split of y the reverse process settled on.

After the reverse diffusion, every trajectory takes ``num_sweeps`` Gibbs steps along its fiber:
theta' is drawn from the fiber's density on a grid of ``num_points`` values of theta's
unconstrained coordinate within +- ``half_width`` of the current one, and the sites are rescaled.
log p(c z) - log p(z) is the prior's score integrated along the ray (trapezoid rule on the grid),
at diffusion time ``time`` with each site re-noised to it (a learned score is not defined at
t = 0). p(theta') p(y | ...) is NumPyro's density of the model (unconstrained space).
"""

from __future__ import annotations

from collections.abc import Callable

import equinox as eqx
import jax
import jax.numpy as jnp

__all__ = ["RescalingMove", "mixing_gains", "fiber_log_density", "rescale"]


class RescalingMove(eqx.Module):
    """Gibbs steps along the fiber of a scalar theta, after the reverse diffusion.

    Parameters
    ----------
    gains : ``gains(theta) -> {site: scalar}``, theta a dict of constrained values: the factor
        through which each latent site enters the prediction (``mixing_gains`` for y = (1 -
        alpha) x + alpha n). A module-level function (it is hashed as a static field).
    half_width : the grid's half-width in theta's unconstrained coordinate.
    num_points : grid points (odd: the current theta is the middle one).
    time : the diffusion time at which the priors' scores are integrated.
    num_sweeps : Gibbs steps per trajectory.
    """

    gains: Callable = eqx.field(static=True)
    half_width: float = eqx.field(static=True, default=0.4)
    num_points: int = eqx.field(static=True, default=41)
    time: float = 0.02
    num_sweeps: int = eqx.field(static=True, default=3)

    def __check_init__(self):
        if not callable(self.gains):
            raise TypeError(
                f"gains must be callable (theta -> {{site: gain}}). Got {self.gains!r}."
            )
        if isinstance(self.num_points, bool) or not isinstance(self.num_points, int):
            raise ValueError(f"num_points must be an odd integer >= 3. Got {self.num_points!r}.")
        if self.num_points < 3 or self.num_points % 2 == 0:
            raise ValueError(f"num_points must be an odd integer >= 3. Got {self.num_points!r}.")
        if isinstance(self.num_sweeps, bool) or not isinstance(self.num_sweeps, int):
            raise ValueError(f"num_sweeps must be a positive integer. Got {self.num_sweeps!r}.")
        if self.num_sweeps < 1:
            raise ValueError(f"num_sweeps must be a positive integer. Got {self.num_sweeps!r}.")
        for name in ("half_width", "time"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and 0 < value <= (1 if name == "time" else 1e3)):
                limit = "(0, 1]" if name == "time" else "(0, 1000]"
                raise ValueError(f"{name} must be a number in {limit}. Got {name}={value!r}.")


def mixing_gains(theta: dict) -> dict:
    """y = (1 - alpha) x + alpha n: the gains of ``joint_model(..., mixing=<distribution>)``."""
    alpha = theta["alpha"]
    return {"x": 1.0 - alpha, "n": alpha}


def fiber_log_density(target, position, parameters, observation, key, move):
    """The fiber's log density (up to a constant) on the grid, the grid's constrained theta and
    each site's scale factor there: ``(log_density (P,), {name: (P,)}, {site: (P,)})``."""
    from bayesnoise.parameters import conditional_logdensity_fn  # parameters.py imports us

    if len(target.parameter_names) != 1 or any(
        target.parameter_shapes[name] != () for name in target.parameter_names
    ):
        raise ValueError(
            "RescalingMove needs exactly one scalar forward-model parameter. "
            f"Got {dict(target.parameter_shapes)}."
        )
    (name,) = target.parameter_names
    transform = target.parameter_transforms[name]
    offsets = jnp.linspace(-move.half_width, move.half_width, move.num_points)
    grid = {name: transform(transform.inv(parameters[name]) + offsets)}
    gains_now = move.gains(parameters)
    gains_grid = move.gains(grid)
    scales = {site: gains_now[site] / gains_grid[site] for site in position}

    sde = target.sde
    a_t, s_t = sde.marginal_mean_coefficient(move.time), sde.marginal_std(move.time)
    keys = dict(zip(position, jax.random.split(key, len(position)), strict=True))
    noised = {
        site: a_t * value + s_t * jax.random.normal(keys[site], value.shape)
        for site, value in position.items()
    }
    centre = move.num_points // 2

    def radial(scale_index):  # d/dc log p_t(c z) = score(c z) . z, every site, at grid point j
        scaled = {site: scales[site][scale_index] * z for site, z in noised.items()}
        scores = target.prior_score(scaled, move.time)
        return {site: jnp.sum(scores[site] * noised[site]) for site in noised}

    derivatives = jax.vmap(radial)(jnp.arange(move.num_points))  # one batch per network
    log_density = jnp.zeros(move.num_points)
    for site, derivative in derivatives.items():
        steps = 0.5 * (derivative[1:] + derivative[:-1]) * jnp.diff(scales[site])
        cumulative = jnp.concatenate([jnp.zeros(1), jnp.cumsum(steps)])
        log_density += cumulative - cumulative[centre]
        log_density += position[site].size * jnp.log(jnp.abs(scales[site]))

    def model_term(point_index):  # log p(theta') + log p(y | site', theta'), unconstrained
        scaled = {site: scales[site][point_index] * value for site, value in position.items()}
        logdensity_fn = conditional_logdensity_fn(target, scaled, observation)
        unconstrained = transform.inv(grid[name][point_index])
        return logdensity_fn({name: unconstrained})

    log_density += jax.lax.map(model_term, jnp.arange(move.num_points))
    return log_density, grid, scales


def rescale(target, position, parameters, observation, key, move):
    """(position, parameters) after ``move.num_sweeps`` Gibbs steps along the fiber."""
    for sweep_key in jax.random.split(key, move.num_sweeps):
        profile_key, choice_key = jax.random.split(sweep_key)
        log_density, grid, scales = fiber_log_density(
            target, position, parameters, observation, profile_key, move
        )
        log_density = jnp.where(jnp.isfinite(log_density), log_density, -jnp.inf)
        j = jax.random.categorical(choice_key, log_density)
        position = {site: scales[site][j] * value for site, value in position.items()}
        parameters = {name: values[j] for name, values in grid.items()}
    return position, parameters
