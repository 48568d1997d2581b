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
import numpyro
import numpyro.distributions as dist
import numpyro.handlers as handlers
from jax.flatten_util import ravel_pytree
from numpyro.infer.util import potential_energy

from bayesnoise.rescaling import RescalingMove
from bayesnoise.target import OBSERVED_SITE

__all__ = ["ParameterUpdate", "initial_parameters", "update_parameters", "CONDITIONINGS"]

CONDITIONINGS = ("point", "gaussian")


class ParameterUpdate(eqx.Module):
    """How theta is updated after each (x, n) step.

    Parameters
    ----------
    num_steps : HMC transitions per diffusion step.
    num_integration_steps : leapfrog steps per HMC transition.
    step_size : leapfrog step, in units of the conditional's standard deviation.
    num_newton_steps : diagonal Newton steps that locate the conditional's mode (for the mass
        matrix only; the HMC transitions keep the conditional exact whatever they find).
    conditioning : ``"point"``: p(y | x0_hat, n0_hat, theta), Tweedie's estimates as if exact;
        ``"gaussian"``: p(y | x_t, n_t, theta) ~ N(A x0_hat + B n0_hat, Sigma_y + v_t(theta) I)
        with v_t the average variance Tweedie's covariance puts on A x0 + B n0 (scalar, as
        PiGDM's r_t^2; :func:`_tweedie_variances`). Both equal the exact conditional at t = 0.
    num_probes : Hutchinson probes for the traces in ``"gaussian"`` conditioning.
    rescaling : a :class:`~bayesnoise.rescaling.RescalingMove` taken by every trajectory after
        the reverse diffusion (theta and (x, n) moved together, decided by the priors), or None.
    num_passes : reverse diffusions per trajectory. Pass 1 is Gibbs-within-diffusion as above;
        each later pass redraws (x, n) given the trajectory's theta (held fixed: the known-theta
        sampler, restarted from y under that theta), then takes the rescaling move: a Gibbs
        sweep of p(x, n | theta, y) and the fiber move. (x, n) forget pass 1's split; theta
        moves only along fibers, so it mixes slowly across passes. With a stray check
        (:mod:`bayesnoise.stray`) every pass but the last ends with it, and each stray takes
        the theta of a kept trajectory of its image, drawn uniformly (a resampling step, as in
        sequential Monte Carlo): later passes redraw (x, n) under the theta of the right splits.
    plug_in : after the passes, one more reverse diffusion with every trajectory's theta set
        to its image's posterior mean over the kept (neither stray nor diverged) trajectories:
        empirical Bayes, x and n drawn from p(x, n | theta_hat, y), whose spread leaves theta's
        uncertainty out. theta's draws (and their interval) stay those of the passes before.
        On the digits with unknown mixing x gains 0.1-0.5 dB over one stage (README, "Unknown
        forward-model parameters").
    """

    num_steps: int = eqx.field(static=True, default=3)
    num_integration_steps: int = eqx.field(static=True, default=4)
    step_size: float = 0.6
    num_newton_steps: int = eqx.field(static=True, default=8)
    conditioning: str = eqx.field(static=True, default="point")
    num_probes: int = eqx.field(static=True, default=1)
    rescaling: RescalingMove | None = None
    num_passes: int = eqx.field(static=True, default=1)
    plug_in: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        if not isinstance(self.plug_in, bool):
            raise TypeError(f"plug_in must be True or False. Got {self.plug_in!r}.")
        if self.conditioning not in CONDITIONINGS:
            raise ValueError(
                f"conditioning must be one of {CONDITIONINGS}. Got {self.conditioning!r}."
            )
        if (
            isinstance(self.num_probes, bool)
            or not isinstance(self.num_probes, int)
            or self.num_probes < 1
        ):
            raise ValueError(f"num_probes must be a positive integer. Got {self.num_probes!r}.")
        for name in ("num_steps", "num_integration_steps", "num_newton_steps", "num_passes"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive integer. Got {name}={value!r}.")
        if self.rescaling is not None and not isinstance(self.rescaling, RescalingMove):
            raise TypeError(
                "rescaling must be a bayesnoise.rescaling.RescalingMove or None. "
                f"Got {type(self.rescaling).__name__}."
            )
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


class _WidenObservation(numpyro.primitives.Messenger):
    """Adds ``extra_variance(theta)`` to the variance of the Gaussian observed site ``y``."""

    def __init__(self, fn, extra_variance):
        self.extra_variance = extra_variance
        super().__init__(fn)

    def process_message(self, msg):
        if msg["name"] != OBSERVED_SITE:
            return
        base = msg["fn"]
        if not isinstance(base.base_dist, dist.Normal):
            raise ValueError(
                "ParameterUpdate(conditioning='gaussian') needs a Gaussian likelihood. "
                f"Got {type(base.base_dist).__name__}; use conditioning='point'."
            )
        scale = jnp.sqrt(base.variance + self.extra_variance)
        msg["fn"] = dist.Normal(base.mean, scale).to_event(base.reinterpreted_batch_ndims)


def _tweedie_variances(target, position, time, rng_key, num_probes) -> dict:
    """tr(Cov[site_0 | site_t]) / size per site, Cov = (s_t^2 / a_t) d site0_hat / d site_t
    (Tweedie's second moment), by Hutchinson's estimator with Rademacher probes."""
    s_t = target.sde.marginal_std(time)
    a_t = target.sde.marginal_mean_coefficient(time)

    def denoise(point):
        return target.tweedie_denoise(point, time)[0]

    def quadratic_form(key):
        keys = jax.random.split(key, len(position))
        probe = {
            name: jax.random.rademacher(k, value.shape, dtype=value.dtype)
            for (name, value), k in zip(position.items(), keys, strict=True)
        }
        tangent = jax.jvp(denoise, (position,), (probe,))[1]
        return {name: jnp.mean(probe[name] * tangent[name]) for name in position}

    forms = jax.vmap(quadratic_form)(jax.random.split(rng_key, num_probes))
    return {name: jnp.maximum(s_t**2 / a_t * jnp.mean(v), 0.0) for name, v in forms.items()}


def _propagated_variance(target, parameters, variances, rng_key, num_probes):
    """Average over y's elements of sum_site v_site ||J_site(theta)||_F^2 / m, J_site the
    linear map site -> A x + B n at theta (Hutchinson, fixed probes so theta's density is
    smooth)."""
    bound = target.with_parameters(parameters)
    zeros = {name: jnp.zeros(shape) for name, shape in target.latent_shapes.items()}
    offset = bound.predicted_observation(zeros)
    total = 0.0
    for index, (name, variance) in enumerate(variances.items()):
        keys = jax.random.split(jax.random.fold_in(rng_key, index), num_probes)

        def squared_gain(key, name=name):
            probe = jax.random.rademacher(key, zeros[name].shape, dtype=jnp.float32)
            mapped = bound.predicted_observation({**zeros, name: probe}) - offset
            return jnp.mean(mapped**2)

        total = total + variance * jnp.mean(jax.vmap(squared_gain)(keys))
    return total


def conditional_logdensity_fn(target, denoised: dict, observation, extra_variance=None):
    """log p(theta | y, x0_hat, n0_hat) + const, of theta's unconstrained values (a dict).

    ``extra_variance(theta)`` (constrained theta) is added to y's variance when given.
    """
    model = target.model
    transforms = target.parameter_transforms
    kwargs = {"observation": observation, "diffusion_time": 0.0}

    def logdensity_fn(unconstrained: dict):
        widened = model
        if extra_variance is not None:
            constrained = {name: transforms[name](v) for name, v in unconstrained.items()}
            widened = _WidenObservation(model, extra_variance(constrained))
        with_signals = handlers.substitute(widened, data=denoised)
        parameters_only = handlers.block(with_signals, hide=list(target.latent_names))
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
    extra_variance = None
    if update.conditioning == "gaussian":
        probe_key, rng_key = jax.random.split(rng_key)
        variances = _tweedie_variances(target, position, time, probe_key, update.num_probes)
        variances = jax.lax.stop_gradient(variances)

        def extra_variance(theta):
            return _propagated_variance(target, theta, variances, probe_key, update.num_probes)

    dict_logdensity_fn = conditional_logdensity_fn(target, denoised, observation, extra_variance)

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
