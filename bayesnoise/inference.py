"""The driver: run a sampler over the time grid for many images and trajectories at once.

The driver owns time: it builds the grid, starts every trajectory (from the SDE's prior, or
from the observation diffused to t0 < 1), and calls the sampler's pure step
``step(key, state, target, observation, t, t_next, options)`` through ONE ``eqx.filter_jit``
function whose arguments are the sampler (static), the target (networks and operators as array
inputs, never compiled-in constants), the positions, the observations and the options (traced
numbers). Two models of equal shapes therefore share one compilation, and sweeping an option
never recompiles.

Every (chain, draw) is an independent reverse-diffusion trajectory. Images x trajectories are
flattened into one batch axis, vmapped, and sharded over all JAX devices (a 1-D mesh); each
trajectory's random numbers depend only on (seed, step, trajectory index), so results do not
depend on the number of devices. Each trajectory is guarded against NaN/inf and runaway values
(|value| >= a bound set by the scale of the data, :mod:`bayesnoise.divergence`): a diverged one
is frozen and flagged, never averaged in.

On CPU the step is driven from a Python loop: inside ``lax.scan`` XLA runs the input-gradient
convolution of a network's VJP on a slow path, 1.3-5x slower per step (jax issue 12868);
elsewhere chunks of steps run inside ``lax.scan``. Both give the same samples.

Forward-model parameters theta (latent sites without a score prior) are carried per trajectory
and updated after each step by :func:`bayesnoise.parameters.update_parameters` (and, with a
``RescalingMove``, moved with (x, n) after the last step; with ``num_passes`` > 1, (x, n) are
then redrawn given each trajectory's theta and moved again, and with a stray check the strays
first take the theta of a kept trajectory of their image; with ``plug_in``, x and n are drawn
once more at each image's posterior mean of theta); models without them run exactly as before.

With a :class:`~bayesnoise.stray.StrayCheck`, the end points are compared by their density on
y's fiber (the priors', and the likelihood's volume when theta is unknown) and the trajectories
far below their image's best are flagged and left out, like diverged ones.
"""

from __future__ import annotations

import collections
import math
import time as wallclock

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from tqdm.auto import tqdm

from bayesnoise.divergence import automatic_divergence_bound, observation_limit
from bayesnoise.linear_solve import pseudo_inverse
from bayesnoise.output import measurement_std_of, to_datatree
from bayesnoise.parameters import ParameterUpdate, initial_parameters, update_parameters
from bayesnoise.rescaling import rescale
from bayesnoise.samplers.base import SamplerState
from bayesnoise.samplers.registry import get_sampler
from bayesnoise.sde import time_grid
from bayesnoise.stray import StrayCheck, end_point_log_density, strays
from bayesnoise.stray import check_target as check_stray_target  # before sampling
from bayesnoise.target import posterior_target

__all__ = ["sample", "TRACE_COUNTS"]

TRACE_COUNTS: collections.Counter = collections.Counter()
"""How often each sampler's step function was traced (compiled); for recompilation tests."""

LOOPS = ("auto", "python", "scan")

_UNBOUNDED = float(np.finfo(np.float32).max)
"""The bound of callers that pass none (e.g. ``bayesnoise bench``): only NaN/inf diverge."""


class _Carry(eqx.Module):
    positions: dict
    diverged: jax.Array
    solver_failures: jax.Array
    solver_steps_max: jax.Array
    parameters: dict = eqx.field(default_factory=dict)
    parameter_acceptance: jax.Array | None = None


@eqx.filter_jit
def _advance(
    sampler,
    target,
    carry,
    base_key,
    trajectory_ids,
    observations,
    options,
    grid,
    first,
    length,
    divergence_bound=_UNBOUNDED,
    parameter_update=None,
):
    """Advance every trajectory of the flat batch by ``length`` steps from step ``first``.

    A trajectory with a value that is NaN, infinite or of magnitude >= ``divergence_bound`` (a
    traced scalar) keeps its last position and is flagged diverged. With forward-model
    parameters, each step of (x, n) (theta fixed) is followed by ``parameter_update`` of theta
    (None: theta stays fixed, the later passes of :class:`~bayesnoise.parameters.ParameterUpdate`).
    """
    TRACE_COUNTS[sampler.name] += 1

    def one_trajectory(position, parameters, diverged, key, observation, time, next_time):
        # priors that read y (conditional networks) get this trajectory's observation
        observed_target = target.with_observation(observation)
        bound_target = observed_target.with_parameters(parameters)
        state, info = sampler.step(
            key, SamplerState(position), bound_target, observation, time, next_time, options
        )
        finite = jnp.all(
            jnp.stack(
                [
                    jnp.all(jnp.isfinite(value) & (jnp.abs(value) < divergence_bound))
                    for value in jax.tree.leaves(state.position)
                ]
            )
        )
        kept = jax.tree.map(lambda new, old: jnp.where(finite, new, old), state.position, position)
        acceptance = jnp.zeros(())
        if target.parameter_names and parameter_update is not None:
            parameters, acceptance = update_parameters(
                jax.random.fold_in(key, 1),
                parameters,
                observed_target,
                kept,
                observation,
                next_time,
                parameter_update,
            )
            finite = finite & jnp.all(
                jnp.stack([jnp.all(jnp.isfinite(value)) for value in jax.tree.leaves(parameters)])
            )
        return kept, parameters, diverged | ~finite, info, acceptance

    over_batch = jax.vmap(one_trajectory, in_axes=(0, 0, 0, 0, 0, None, None))

    def body(carry, step_index):
        step_key = jax.random.fold_in(base_key, step_index)
        keys = jax.vmap(jax.random.fold_in, in_axes=(None, 0))(step_key, trajectory_ids)
        positions, parameters, diverged, info, acceptance = over_batch(
            carry.positions,
            carry.parameters,
            carry.diverged,
            keys,
            observations,
            grid[step_index],
            grid[step_index + 1],
        )
        carry = _Carry(
            positions,
            diverged,
            carry.solver_failures + (~info.solver_converged).astype(jnp.int32),
            jnp.maximum(carry.solver_steps_max, info.solver_steps),
            parameters,
            carry.parameter_acceptance + acceptance
            if target.parameter_names
            else carry.parameter_acceptance,
        )
        return carry, info.residual_norm

    indices = first + jnp.arange(length)
    if length == 1:
        carry, residual = body(carry, indices[0])
        return carry, residual[None]
    return jax.lax.scan(body, carry, indices)


@eqx.filter_jit
def _rescale_trajectories(target, carry, observations, trajectory_ids, key, move):
    """Every trajectory after ``move`` (:func:`bayesnoise.rescaling.rescale`); diverged ones
    keep their state."""

    def one(arguments):
        position, parameters, diverged, observation, trajectory = arguments
        moved = rescale(
            target.with_observation(observation),
            position,
            parameters,
            observation,
            jax.random.fold_in(key, trajectory),
            move,
        )
        return jax.tree.map(
            lambda new, old: jnp.where(diverged, old, new), moved, (position, parameters)
        )

    positions, parameters = jax.lax.map(
        one,
        (carry.positions, carry.parameters, carry.diverged, observations, trajectory_ids),
        batch_size=8,
    )
    return eqx.tree_at(lambda c: (c.positions, c.parameters), carry, (positions, parameters))


@eqx.filter_jit
def _end_point_log_densities(target, carry, observations, image_ids, key, check):
    """Every trajectory's end-point log density (:func:`bayesnoise.stray.end_point_log_density`),
    with the same random numbers for the trajectories of one image."""

    def one(arguments):
        position, parameters, observation, image = arguments
        observed_target = target.with_observation(observation)
        return end_point_log_density(
            observed_target, position, parameters, jax.random.fold_in(key, image), check
        )

    return jax.lax.map(
        one, (carry.positions, carry.parameters, observations, image_ids), batch_size=16
    )


def _seed_keys(seed: int):
    """``sample``'s two root keys: the start's (and theta's, the restarts', the stray
    check's, folded in) and the steps'."""
    return jax.random.split(jax.random.key(seed))


def end_point_key(seed: int):
    """The key of the stray check's random numbers in ``sample(..., seed=seed)``; image k of
    the batch uses ``jax.random.fold_in(end_point_key(seed), k)``."""
    return jax.random.fold_in(_seed_keys(seed)[0], 3)


def _means_over_kept(parameters: dict, left_out) -> dict:
    """Per image, theta's mean over its kept trajectories (over all where none is kept).
    ``parameters``: ``{name: (image, trajectory, ...)}``; ``left_out``: ``(image, trajectory)``."""
    kept = ~np.asarray(left_out)
    kept[~kept.any(axis=1)] = True
    means = {}
    for name, value in parameters.items():
        value = np.asarray(value, dtype=np.float64)
        where = np.broadcast_to(kept.reshape(kept.shape + (1,) * (value.ndim - 2)), value.shape)
        means[name] = np.mean(value, axis=1, where=where).astype(np.float32)
    return means


def _resampled_rows(stray, diverged, rows, num_trajectories, pass_index, seed):
    """For every row of the flat batch, the row whose theta it takes into the next pass: its
    own, or for a stray a kept (neither stray nor diverged) trajectory of the same image drawn
    uniformly (a resampling step, as in sequential Monte Carlo). ``stray``, ``diverged``:
    ``(image, trajectory)``; ``rows``: the flat batch's (padded) rows."""
    rng = np.random.default_rng([seed, pass_index])
    sources = np.arange(stray.size)
    for image, (image_strays, image_diverged) in enumerate(zip(stray, diverged, strict=True)):
        kept = np.flatnonzero(~image_strays & ~image_diverged)
        lost = np.flatnonzero(image_strays)
        if kept.size and lost.size:
            first = image * num_trajectories
            sources[first + lost] = first + rng.choice(kept, size=lost.size)
    return sources[rows]


def _initial_positions(target, key, observations, num_trajectories, start_time):
    """Draws from the SDE's prior at t = 1, or the observation diffused to ``start_time``.

    For ``start_time < 1`` (SDEdit / CCDF) each site starts at a_t x_guess + s_t z, where
    ``x_guess`` is the minimum-norm solution of A x + B n = y. Shapes: (image, trajectory, ...).
    """
    sde = target.sde
    num_images = observations.shape[0]
    batch = (num_images, num_trajectories)
    keys = dict(
        zip(target.latent_names, jax.random.split(key, len(target.latent_names)), strict=True)
    )
    if start_time >= 1.0:
        return {
            name: sde.prior_sample(keys[name], batch + shape)
            for name, shape in target.latent_shapes.items()
        }
    guess = _minimum_norm_solutions(target, observations)
    a_t = sde.marginal_mean_coefficient(start_time)
    s_t = sde.marginal_std(start_time)
    return {
        name: a_t * guess[name][:, None]
        + s_t * jax.random.normal(keys[name], batch + target.latent_shapes[name])
        for name in target.latent_names
    }


@eqx.filter_jit
def _restarted_positions(target, key, observations, parameters, trajectory_ids, start_time):
    """Every trajectory of the flat batch started afresh, as :func:`_initial_positions` does
    but with the minimum-norm solution of A x + B n = y under the trajectory's own theta."""
    sde = target.sde
    a_t = sde.marginal_mean_coefficient(start_time)
    s_t = sde.marginal_std(start_time)
    zeros = {name: jnp.zeros(shape) for name, shape in target.latent_shapes.items()}

    def one(observation, values, trajectory):
        keys = jax.random.split(jax.random.fold_in(key, trajectory), len(target.latent_names))
        keys = dict(zip(target.latent_names, keys, strict=True))
        if start_time >= 1.0:
            return {name: sde.prior_sample(keys[name], zeros[name].shape) for name in zeros}
        predict = target.with_parameters(values).predicted_observation
        guess = pseudo_inverse(predict, zeros, observation)[0]
        return {
            name: a_t * guess[name] + s_t * jax.random.normal(keys[name], zeros[name].shape)
            for name in zeros
        }

    return jax.vmap(one)(observations, parameters, trajectory_ids)


@eqx.filter_jit
def _minimum_norm_solutions(target, observations):
    """Per image, the minimum-norm position with A x + B n = y (pseudo-inverse by CG)."""
    zeros = {name: jnp.zeros(shape) for name, shape in target.latent_shapes.items()}
    return jax.vmap(lambda y: pseudo_inverse(target.predicted_observation, zeros, y)[0])(
        observations
    )


def _check_inputs(
    target, observation, num_chains, num_draws, num_steps, start_time, divergence_bound
):
    for name, value in [("num_chains", num_chains), ("num_draws", num_draws)]:
        if not (isinstance(value, int) and value >= 1):
            raise ValueError(f"{name} must be a positive integer. Got {name}={value!r}.")
    if not (isinstance(num_steps, int) and num_steps >= 1):
        raise ValueError(f"num_steps must be a positive integer. Got num_steps={num_steps!r}.")
    if not 0.0 < start_time <= 1.0:
        raise ValueError(f"start_time must be in (0, 1]. Got start_time={start_time!r}.")
    observation = np.asarray(observation, dtype=np.float32)
    expected = target.observation_shape
    if observation.shape == expected:
        single = True
        observation = observation[None]
    elif observation.shape[1:] == expected:
        single = False
    else:
        raise ValueError(
            f"observation must have the model's observation shape {expected} "
            f"(or (num_images, *{expected})). Got observation.shape={observation.shape}."
        )
    if not np.all(np.isfinite(observation)):
        raise ValueError(
            f"observation must be finite. Got {int(np.sum(~np.isfinite(observation)))} "
            "NaN or infinite values."
        )
    largest, limit = float(np.max(np.abs(observation))), observation_limit(observation[0].size)
    if largest > limit:
        raise ValueError(
            f"observation must have max |value| <= {limit:.3g} (beyond it the squared residual of "
            f"its {observation[0].size} values overflows float32). Got max |value| = "
            f"{largest:.3g}; rescale the data and the model."
        )
    if divergence_bound is not None and not (
        isinstance(divergence_bound, int | float) and 0 < divergence_bound < math.inf
    ):
        raise ValueError(
            "divergence_bound must be a positive finite number or None (automatic). "
            f"Got divergence_bound={divergence_bound!r}."
        )
    return jnp.asarray(observation), single


def _gather(values) -> np.ndarray:
    """A sharded array as one host array (from every process when several hosts run)."""
    if jax.process_count() > 1:
        return np.asarray(multihost_utils.process_allgather(values, tiled=True))
    return np.asarray(values)


def _shard(tree, num_devices):
    """Place the leading (batch) axis of every leaf across all devices (a 1-D mesh)."""
    if num_devices == 1:
        return tree
    mesh = Mesh(np.asarray(jax.devices()), ("batch",))
    sharding = NamedSharding(mesh, PartitionSpec("batch"))
    return jax.device_put(tree, sharding)


def sample(
    model,
    observation,
    *,
    sampler="pigdm",
    num_chains: int = 4,
    num_draws: int = 4,
    num_steps: int = 500,
    seed: int = 0,
    start_time: float = 1.0,
    sampler_options: dict | None = None,
    time_spacing: str = "quadratic",
    loop: str = "auto",
    progress: bool = True,
    divergence_bound: float | None = None,
    parameter_update: ParameterUpdate | None = None,
    stray_check: StrayCheck | None = None,
):
    """Sample the joint posterior p(x, n | y) of a NumPyro ``model``.

    A model with forward-model parameters theta (latent sites without a score prior, e.g.
    ``alpha ~ Beta(2, 2)``) gets p(x, n, theta | y): theta starts from its prior in every
    trajectory and is updated after each step (:mod:`bayesnoise.parameters`); its draws are
    posterior variables beside x and n.

    Parameters
    ----------
    model : a model function (see :func:`bayesnoise.joint_model`).
    observation : y of the model's observation shape, or a batch ``(num_images, *shape)``.
    sampler : a name in :data:`bayesnoise.samplers.SAMPLERS` or a
        :class:`bayesnoise.samplers.Sampler` (e.g. ``bn.sampler("ddim", guidance="dps")``).
    num_chains, num_draws : independent trajectories per image, as chains x draws.
    num_steps : number of reverse-time steps from ``start_time`` to 0.
    start_time : 1 starts from the SDE's prior; t0 < 1 starts from the observation diffused to
        t0 (SDEdit / CCDF) and needs only ``num_steps`` steps over [0, t0].
    sampler_options : the sampler's options, in the shared vocabulary
        (:data:`bayesnoise.samplers.VOCABULARY`), e.g. ``{"guidance_weight": {"x": 0.5,
        "n": 0.5}}``. Unknown or irrelevant options are an error; numbers are traced.
    time_spacing : ``"uniform"`` (the paper's grid) or ``"quadratic"`` (finer near t = 0,
        see :func:`bayesnoise.sde.time_grid`).
    loop : ``"python"`` (a jitted step driven from Python), ``"scan"`` (chunks in
        ``lax.scan``) or ``"auto"`` (python on CPU, scan elsewhere).
    divergence_bound : a trajectory with a value of magnitude >= this has diverged (frozen,
        flagged in ``sample_stats.diverging``, NaN in the posterior). None (default): 100 x
        max(1, max |y|, the priors' data range, the SDE's std at t0), see
        :func:`bayesnoise.divergence.automatic_divergence_bound`. Recorded in the attrs.
    parameter_update : how theta is updated (a :class:`bayesnoise.parameters.ParameterUpdate`;
        default ``ParameterUpdate()``); unused by models without forward-model parameters. With
        ``num_passes`` > 1 the reverse diffusion runs that often; ``sample_stats`` holds the
        last pass's residual trace and pass 1's acceptance of theta. With ``stray_check`` too,
        the strays of each pass but the last take the theta of a kept trajectory of their
        image before the next (their number per pass: the ``resampled_strays`` attribute).
        With ``plug_in``, x and n come from one more pass at theta's posterior mean per image
        (``constant_data.<name>_plug_in``) and theta's draws from the passes before; those
        passes' strays are ``sample_stats.parameter_stray`` (theta's NaN), the plug-in pass's
        ``sample_stats.stray`` (x's and n's NaN).
    stray_check : a :class:`bayesnoise.stray.StrayCheck`: each trajectory's end point gets its
        log density on y's fiber (``sample_stats.end_point_log_density``: the priors' ELBOs,
        and log p(theta) and the fiber's volume when theta is unknown), and those more than
        ``tolerance`` below the best of their image are strays (``sample_stats.stray``, NaN in
        the posterior). None (default): no check.

    Returns
    -------
    An ArviZ ``xarray.DataTree`` with groups posterior, posterior_predictive, observed_data,
    constant_data and sample_stats.

    Examples
    --------
    >>> model = bayesnoise.load_model("models/gaussian_toy.py")  # doctest: +SKIP
    >>> tree = bayesnoise.sample(model, y, num_chains=4, num_draws=8)  # doctest: +SKIP
    """
    sampler = get_sampler(sampler)
    target = posterior_target(model)
    observations, single = _check_inputs(
        target, observation, num_chains, num_draws, num_steps, start_time, divergence_bound
    )
    if divergence_bound is None:
        divergence_bound = automatic_divergence_bound(target, observations, float(start_time))
    options = sampler.prepare_options(sampler_options, target.latent_names)
    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {LOOPS}. Got loop={loop!r}.")
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an integer in [0, 2**32). Got seed={seed!r}.")
    if loop == "auto":
        loop = "python" if jax.default_backend() == "cpu" else "scan"
    grid = time_grid(num_steps, float(start_time), spacing=time_spacing)
    parameter_update = parameter_update or ParameterUpdate()
    if not isinstance(parameter_update, ParameterUpdate):
        raise TypeError(
            "parameter_update must be a bayesnoise.parameters.ParameterUpdate. "
            f"Got {type(parameter_update).__name__}."
        )
    if stray_check is not None and not isinstance(stray_check, StrayCheck):
        raise TypeError(
            "stray_check must be a bayesnoise.stray.StrayCheck or None. "
            f"Got {type(stray_check).__name__}."
        )
    if stray_check is not None:
        check_stray_target(target)

    started = wallclock.perf_counter()
    init_key, step_key = _seed_keys(seed)
    num_images, num_trajectories = observations.shape[0], num_chains * num_draws
    positions = _initial_positions(
        target, init_key, observations, num_trajectories, float(start_time)
    )
    # Flatten (image, trajectory) into one batch axis, padded to a multiple of the devices.
    batch = num_images * num_trajectories
    num_devices = jax.device_count()
    padded = math.ceil(batch / num_devices) * num_devices
    rows = np.minimum(np.arange(padded), batch - 1)
    image_of_row = rows // num_trajectories

    def flat(values):
        return values.reshape((batch,) + values.shape[2:])[rows]

    parameter_key = jax.random.fold_in(init_key, 1)
    parameters = initial_parameters(target, parameter_key, (num_images, num_trajectories))
    carry = _Carry(
        positions={name: flat(value) for name, value in positions.items()},
        diverged=jnp.zeros(padded, dtype=bool),
        solver_failures=jnp.zeros(padded, dtype=jnp.int32),
        solver_steps_max=jnp.zeros(padded, dtype=jnp.int32),
        parameters={name: flat(value) for name, value in parameters.items()},
        parameter_acceptance=jnp.zeros(padded),
    )
    carry = _shard(carry, num_devices)
    trajectory_ids = _shard(jnp.asarray(rows, dtype=jnp.int32), num_devices)
    row_observations = _shard(observations[image_of_row], num_devices)

    def unflat(values):  # (padded, ...) -> (image, trajectory, ...)
        values = _gather(values)[:batch]
        return values.reshape((num_images, num_trajectories) + values.shape[1:])

    def check_end_points(carry, key):
        """The end points' log densities and which are strays, ``(image, trajectory)``."""
        densities = unflat(
            _end_point_log_densities(
                target,
                carry,
                row_observations,
                _shard(jnp.asarray(image_of_row, dtype=jnp.int32), num_devices),
                key,
                stray_check,
            )
        )
        return densities, np.asarray(
            strays(densities, unflat(carry.diverged), stray_check.tolerance)
        )

    chunk = 1 if loop == "python" else max(1, num_steps // 10)
    num_passes = parameter_update.num_passes if target.parameter_names else 1
    plug_in = bool(target.parameter_names) and parameter_update.plug_in
    resampled_strays = []
    joint_parameters = joint_left_out = joint_stray = None  # theta's draws, with plug_in
    restart_key = jax.random.fold_in(init_key, 2)
    total = (num_passes + plug_in) * num_steps
    with tqdm(total=total, disable=not progress, desc=sampler.name, unit="step") as bar:
        for pass_index in range(num_passes + plug_in):
            # pass 1 updates theta along the way; later ones redraw (x, n) with theta fixed
            pass_key = step_key if pass_index == 0 else jax.random.fold_in(restart_key, pass_index)
            plug_in_pass = pass_index == num_passes  # theta at its image's mean, kept there
            if plug_in_pass:
                joint_parameters = {name: unflat(v) for name, v in carry.parameters.items()}
                joint_left_out = unflat(carry.diverged)
                if stray_check is not None:
                    _, joint_stray = check_end_points(carry, end_point_key(seed))
                    joint_left_out = joint_left_out | joint_stray
                means = _means_over_kept(joint_parameters, joint_left_out)
                plugged = {name: jnp.asarray(mean[image_of_row]) for name, mean in means.items()}
                carry = eqx.tree_at(lambda c: c.parameters, carry, _shard(plugged, num_devices))
            if pass_index > 0:
                restarted = _restarted_positions(
                    target,
                    jax.random.fold_in(pass_key, num_steps + 1),
                    row_observations,
                    carry.parameters,
                    trajectory_ids,
                    float(start_time),
                )
                carry = eqx.tree_at(lambda c: c.positions, carry, restarted)
            residual_traces = []
            for first in range(0, num_steps, chunk):
                length = min(chunk, num_steps - first)
                carry, residuals = _advance(
                    sampler,
                    target,
                    carry,
                    pass_key,
                    trajectory_ids,
                    row_observations,
                    options,
                    grid,
                    jnp.asarray(first),
                    length,
                    jnp.asarray(divergence_bound, dtype=jnp.float32),
                    parameter_update if pass_index == 0 else None,
                )
                residual_traces.append(residuals)
                bar.update(length)
            if (
                target.parameter_names
                and parameter_update.rescaling is not None
                and not plug_in_pass
            ):
                carry = _rescale_trajectories(
                    target,
                    carry,
                    row_observations,
                    trajectory_ids,
                    jax.random.fold_in(pass_key, num_steps),
                    parameter_update.rescaling,
                )
            if stray_check is not None and pass_index < num_passes - 1:
                # strays take the theta of a kept trajectory of their image for the next pass
                _, pass_strays = check_end_points(carry, end_point_key(seed))
                sources = _resampled_rows(
                    pass_strays, unflat(carry.diverged), rows, num_trajectories, pass_index, seed
                )
                resampled_strays.append(int(pass_strays.sum()))
                parameters = {
                    name: jnp.asarray(_gather(value)[sources])
                    for name, value in carry.parameters.items()
                }
                carry = eqx.tree_at(lambda c: c.parameters, carry, _shard(parameters, num_devices))

    end_point_densities = stray = None
    if stray_check is not None:
        end_point_densities, stray = check_end_points(carry, end_point_key(seed))
    jax.block_until_ready(carry)
    wall_time = wallclock.perf_counter() - started

    final_positions = {name: unflat(value) for name, value in carry.positions.items()}
    final_parameters = {name: unflat(value) for name, value in carry.parameters.items()}
    predicted, draw_std = _predictive_moments(target, final_positions, final_parameters)
    final_residual = jnp.sqrt(
        jnp.sum((observations[:, None] - predicted) ** 2, axis=range(2, predicted.ndim))
    )
    residual_trace = np.concatenate([_gather(r) for r in residual_traces], axis=0)
    parameter_attrs = {}
    if target.parameter_names:
        parameter_attrs = {"forward_model_parameters": " ".join(target.parameter_names)}
    return to_datatree(
        positions={**final_positions, **(joint_parameters or final_parameters)},
        parameter_left_out=joint_left_out,
        parameter_stray=joint_stray,
        plug_in_parameters=None
        if joint_parameters is None
        else {name: value[:, 0] for name, value in final_parameters.items()},
        observations=observations,
        diverged=unflat(carry.diverged),
        stray=stray,
        end_point_log_density=end_point_densities,
        final_residual=final_residual,
        residual_trace=residual_trace[:, :batch].reshape(num_steps, num_images, num_trajectories),
        solver_failures=unflat(carry.solver_failures),
        solver_steps_max=unflat(carry.solver_steps_max),
        predicted_observations=predicted,
        measurement_std=None
        if target.parameter_names
        else np.broadcast_to(measurement_std_of(target, observations[0]), observations.shape),
        predictive_std=draw_std,
        parameter_acceptance=unflat(carry.parameter_acceptance) / num_steps
        if target.parameter_names
        else None,
        time_grid=grid,
        seed=seed,
        num_chains=num_chains,
        single_image=single,
        attrs={
            "sampler": sampler.name,
            "sampler_options": repr(sampler_options or {}),
            "num_steps": num_steps,
            "network_evaluations_per_prior": (num_passes + plug_in)
            * sampler.network_evaluations(num_steps, sampler_options)
            # every pass ends with the check when there is one
            + (0 if stray_check is None else (num_passes + plug_in) * stray_check.num_times),
            "start_time": float(start_time),
            "time_spacing": time_spacing,
            "seed": seed,
            "loop": loop,
            "backend": jax.default_backend(),
            "num_devices": num_devices,
            "wall_time_s": wall_time,
            "divergence_bound": float(divergence_bound),
            **parameter_attrs,
            **({} if stray_check is None else {"stray_tolerance": float(stray_check.tolerance)}),
            **({"resampled_strays": resampled_strays} if resampled_strays else {}),
            **({"plug_in": "x and n drawn at theta's posterior mean"} if plug_in else {}),
        },
    )


def _predictive_moments(target, positions, parameters):
    """A(x) + B(n) of every draw, and the likelihood's std of every draw when theta may set it
    (None without forward-model parameters). Shapes (image, trajectory, *observation_shape)."""
    if not target.parameter_names:
        return _predicted_observations(target, positions), None
    return _moments_with_parameters(target, positions, parameters)


@eqx.filter_jit
def _predicted_observations(target, positions):
    return jax.vmap(jax.vmap(target.predicted_observation))(positions)


@eqx.filter_jit
def _moments_with_parameters(target, positions, parameters):
    def one(position, values):
        bound = target.with_parameters(values)
        placeholder = jnp.zeros(target.observation_shape)
        likelihood = bound.observation_distribution(position, placeholder)
        std = jnp.broadcast_to(jnp.sqrt(likelihood.variance), target.observation_shape)
        return likelihood.mean, std

    return jax.vmap(jax.vmap(one))(positions, parameters)
