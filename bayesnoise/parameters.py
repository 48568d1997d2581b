"""Unknown forward-model parameters theta, sampled with (x, n) by Gibbs-within-diffusion.

A latent site of the model without a score prior (``numpyro.sample("alpha", dist.Beta(2, 2))``)
is a forward-model parameter. Each trajectory carries its own theta. After every (x, n) step
from t to t_next (taken with theta fixed), theta gets a few BlackJAX HMC steps that leave

    p(theta | y, x0_hat, n0_hat)  proportional to  p(theta) p(y | x0_hat, n0_hat, theta)

invariant, with Tweedie's estimates (x0_hat, n0_hat) at t_next held fixed (GibbsDDRM, Murata
et al. 2023, does the same with Langevin steps). The log-density is NumPyro's potential energy
of the model with (x, n) substituted, in the unconstrained space of ``biject_to(support)``. At
t = 0 the estimates are the samples themselves, so the last update is an exact Gibbs step; the
joint result is an approximation (theta enters the (x, n) scores as a point value), measured in
``tests/test_parameters.py`` against quadrature.

HMC is preconditioned by the conditional's curvature at its mode, found by a few diagonal Newton
steps from a fixed start: the mass matrix depends on (x0_hat, n0_hat) only, never on the current
theta, so each update is a valid MCMC kernel for the conditional.
"""

from __future__ import annotations

import blackjax
import equinox as eqx
import jax
import jax.numpy as jnp
import numpyro.handlers as handlers
from jax.flatten_util import ravel_pytree
from numpyro.infer.util import potential_energy

__all__ = ["ParameterUpdate", "initial_parameters", "update_parameters"]


class ParameterUpdate(eqx.Module):
    """How theta is updated after each (x, n) step.

    Parameters
    ----------
    num_steps : HMC transitions per diffusion step.
    num_integration_steps : leapfrog steps per HMC transition.
    step_size : leapfrog step, in units of the conditional's standard deviation.
    num_newton_steps : diagonal Newton steps that locate the conditional's mode (for the mass
        matrix only; the HMC transitions keep the conditional exact whatever they find).
    """

    num_steps: int = eqx.field(static=True, default=3)
    num_integration_steps: int = eqx.field(static=True, default=4)
    step_size: float = 0.6
    num_newton_steps: int = eqx.field(static=True, default=8)

    def __check_init__(self):
        for name in ("num_steps", "num_integration_steps", "num_newton_steps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Got {name}={value!r}.")
        if not (isinstance(self.step_size, int | float) and self.step_size > 0):
            raise ValueError(f"step_size must be a positive number. Got {self.step_size!r}.")


def initial_parameters(target, rng_key, batch_shape: tuple[int, ...]) -> dict:
    """Draws of theta from its prior, ``{name: (*batch_shape, *shape)}`` (empty without any)."""
    if not target.parameter_names:
        return {}
    zeros = {name: jnp.zeros(shape) for name, shape in target.latent_shapes.items()}
    placeholder = jnp.zeros(target.observation_shape)

    def one_draw(key):
        fixed = handlers.seed(handlers.substitute(target.model, data=zeros), key)
        trace = handlers.trace(fixed).get_trace(observation=placeholder, diffusion_time=0.0)
        return {name: trace[name]["value"] for name in target.parameter_names}

    keys = jax.random.split(rng_key, batch_shape) if batch_shape else rng_key
    draw = one_draw
    for _ in batch_shape:
        draw = jax.vmap(draw)
    return draw(keys)


def conditional_logdensity_fn(target, denoised: dict, observation):
    """log p(theta | y, x0_hat, n0_hat) + const, of theta's unconstrained values (a dict)."""
    with_signals = handlers.substitute(target.model, data=denoised)
    parameters_only = handlers.block(with_signals, hide=list(target.latent_names))
    kwargs = {"observation": observation, "diffusion_time": 0.0}

    def logdensity_fn(unconstrained: dict):
        return -potential_energy(parameters_only, (), kwargs, unconstrained)

    return logdensity_fn


def _curvature_at_mode(logdensity_fn, start, num_newton_steps):
    """Diagonal of -Hessian at the mode reached by clipped diagonal Newton steps from start."""

    def curvature(point):
        return jnp.maximum(jnp.abs(jnp.diag(jax.hessian(logdensity_fn)(point))), 1e-6)

    def newton_step(point, _):
        step = jax.grad(logdensity_fn)(point) / curvature(point)
        step = jnp.where(jnp.isfinite(step), jnp.clip(step, -1.0, 1.0), 0.0)
        return point + step, None

    mode, _ = jax.lax.scan(newton_step, start, None, length=num_newton_steps)
    return curvature(mode)


def update_parameters(rng_key, parameters: dict, target, position: dict, observation, time, update):
    """theta after ``update.num_steps`` HMC transitions on p(theta | y, x0_hat, n0_hat).

    Parameters
    ----------
    rng_key : the key of this trajectory's update.
    parameters : theta's current constrained values.
    target : the :class:`~bayesnoise.target.PosteriorTarget`; its own ``parameter_values``
        (the prior means, not the current theta) are where the Newton steps start.
    position : (x, n) at diffusion time ``time``; Tweedie's estimates condition theta.
    observation : y.
    update : a :class:`ParameterUpdate`.

    Returns
    -------
    The new constrained values and the mean HMC acceptance probability.
    """
    denoised, _ = target.tweedie_denoise(position, time)
    transforms = target.parameter_transforms
    unconstrained = {name: transforms[name].inv(value) for name, value in parameters.items()}
    flat, unravel = ravel_pytree(unconstrained)
    dict_logdensity_fn = conditional_logdensity_fn(target, denoised, observation)

    def logdensity_fn(flat_point):
        return dict_logdensity_fn(unravel(flat_point))

    start = ravel_pytree(
        {name: transforms[name].inv(value) for name, value in target.parameter_values.items()}
    )[0]
    start = jax.lax.stop_gradient(start)  # the update's fixed start, not the current theta
    inverse_mass_matrix = 1.0 / _curvature_at_mode(logdensity_fn, start, update.num_newton_steps)
    kernel = blackjax.mcmc.hmc.build_kernel()
    state = blackjax.mcmc.hmc.init(flat, logdensity_fn)

    def transition(state, key):
        state, info = kernel(
            key,
            state,
            logdensity_fn,
            update.step_size,
            inverse_mass_matrix,
            update.num_integration_steps,
        )
        return state, info.acceptance_rate

    keys = jax.random.split(rng_key, update.num_steps)
    state, acceptance = jax.lax.scan(transition, state, keys)
    new_unconstrained = unravel(state.position)
    constrained = {name: transforms[name](value) for name, value in new_unconstrained.items()}
    return constrained, jnp.mean(acceptance)
