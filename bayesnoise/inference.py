"""The driver: run a joint kernel over the time grid for many images and trajectories at once.

Every (chain, draw) is an independent reverse-diffusion trajectory; they are vmapped together
with the images, stepped by one jitted function, and guarded per trajectory against NaN/inf
and runaway values (|x| >= 1e6). On CPU the step is driven from a Python loop: inside
``lax.scan`` XLA runs the input-gradient convolution of a network's VJP on a slow path, 1.3-5x
slower per step (measured by ``analyses/benchmark_kernels.py``); elsewhere chunks of steps run
inside ``lax.scan``. The loop and the scan draw the same random numbers, so they give the same
samples.
"""

from __future__ import annotations

import collections
import functools
import math
import time as wallclock

import jax
import jax.numpy as jnp
import numpy as np
from tqdm.auto import tqdm

from bayesnoise.kernels import SAMPLERS
from bayesnoise.kernels.base import split_like
from bayesnoise.kernels.projection import pseudo_inverse
from bayesnoise.output import to_datatree
from bayesnoise.sde import time_grid
from bayesnoise.target import posterior_target

__all__ = ["sample", "TRACE_COUNTS"]

TRACE_COUNTS: collections.Counter = collections.Counter()
"""How often each sampler's step function was traced (compiled); for recompilation tests."""

LOOPS = ("auto", "python", "scan")

DIVERGENCE_BOUND = 1e6
"""A trajectory with a value that is NaN, infinite or of magnitude >= this has diverged."""


def _split_options(options: dict) -> tuple[dict, tuple]:
    """Floats (and dicts of floats) become traced arguments; the rest is static."""
    traced, static = {}, {}
    for name, value in options.items():
        is_float = isinstance(value, float)
        is_float_dict = isinstance(value, dict) and all(
            isinstance(v, int | float) for v in value.values()
        )
        if is_float or is_float_dict:
            traced[name] = jax.tree.map(lambda v: jnp.asarray(v, jnp.float32), value)
        else:
            static[name] = value
    return traced, tuple(sorted(static.items()))


@functools.lru_cache(maxsize=64)
def _runner(target, sampler: str, static_options: tuple, length: int):
    """A jitted function advancing every (image, trajectory) by ``length`` steps."""
    kernel_module = SAMPLERS[sampler]

    def one_step(state, diverged, key, observation, traced_options):
        algorithm = kernel_module.as_top_level_api(
            target, observation, **traced_options, **dict(static_options)
        )
        new_state, info = algorithm.step(key, state)
        finite = jnp.all(
            jnp.stack(
                [
                    jnp.all(jnp.isfinite(v) & (jnp.abs(v) < DIVERGENCE_BOUND))
                    for v in jax.tree.leaves(new_state.position)
                ]
            )
        )
        kept = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
        kept = kept._replace(time=new_state.time)
        return kept, diverged | ~finite, info.residual_norm

    over_trajectories = jax.vmap(one_step, in_axes=(0, 0, 0, None, None))
    over_images = jax.vmap(over_trajectories, in_axes=(0, 0, 0, 0, None))

    def advance(states, diverged, base_key, first_step, observations, traced_options, grid):
        TRACE_COUNTS[sampler] += 1
        shape = diverged.shape

        def body(carry, step_index):
            states, diverged = carry
            keys = jax.random.split(jax.random.fold_in(base_key, step_index), math.prod(shape))
            keys = keys.reshape(shape)
            options = {**traced_options, "time_step": grid[step_index] - grid[step_index + 1]}
            states = states._replace(time=jnp.full_like(states.time, grid[step_index]))
            states, diverged, residual = over_images(states, diverged, keys, observations, options)
            return (states, diverged), residual

        indices = first_step + jnp.arange(length)
        if length == 1:
            carry, residual = body((states, diverged), indices[0])
            return carry, residual[None]
        return jax.lax.scan(body, (states, diverged), indices)

    return jax.jit(advance, donate_argnums=(0, 1))


def _initial_positions(target, key, observations, num_trajectories, start_time):
    """Draws from the SDE's prior at t = 1, or the observation diffused to ``start_time``.

    For ``start_time < 1`` (SDEdit / CCDF) each site starts at a_t x_guess + s_t z, where
    ``x_guess`` is the minimum-norm solution of A x + B n = y.
    """
    sde = target.sde
    num_images = observations.shape[0]
    batch = (num_images, num_trajectories)
    keys = split_like(key, dict.fromkeys(target.latent_names))
    if start_time >= 1.0:
        return {
            name: sde.prior_sample(keys[name], batch + shape)
            for name, shape in target.latent_shapes.items()
        }
    zeros = {name: jnp.zeros(shape) for name, shape in target.latent_shapes.items()}
    guess = jax.jit(jax.vmap(lambda y: pseudo_inverse(target.predicted_observation, zeros, y)))(
        observations
    )
    a_t = sde.marginal_mean_coefficient(start_time)
    s_t = sde.marginal_std(start_time)
    return {
        name: a_t * guess[name][:, None]
        + s_t * jax.random.normal(keys[name], batch + target.latent_shapes[name])
        for name in target.latent_names
    }


def _check_inputs(target, observation, sampler, num_chains, num_draws, num_steps, start_time):
    if sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}. Got sampler={sampler!r}.")
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
    return jnp.asarray(observation), single


def sample(
    model,
    observation,
    *,
    sampler: str = "pigdm",
    num_chains: int = 4,
    num_draws: int = 4,
    num_steps: int = 500,
    seed: int = 0,
    start_time: float = 1.0,
    sampler_options: dict | None = None,
    time_spacing: str = "quadratic",
    loop: str = "auto",
    progress: bool = True,
):
    """Sample the joint posterior p(x, n | y) of a NumPyro ``model``.

    Parameters
    ----------
    model : a model function (see :func:`bayesnoise.joint_model`).
    observation : y of the model's observation shape, or a batch ``(num_images, *shape)``.
    sampler : a name in :data:`bayesnoise.kernels.SAMPLERS`.
    num_chains, num_draws : independent trajectories per image, as chains x draws.
    num_steps : number of reverse-time steps from ``start_time`` to 0.
    start_time : 1 starts from the SDE's prior; t0 < 1 starts from the observation diffused to
        t0 (SDEdit / CCDF) and needs only ``num_steps`` steps over [0, t0].
    sampler_options : keyword arguments of the sampler's ``as_top_level_api`` (e.g.
        ``{"step_sizes": {"x": 0.5, "n": 0.5}}``). Floats are traced, so sweeping them does
        not recompile.
    time_spacing : ``"uniform"`` (the paper's grid) or ``"quadratic"`` (finer near t = 0,
        see :func:`bayesnoise.sde.time_grid`).
    loop : ``"python"`` (a jitted step driven from Python), ``"scan"`` (chunks in
        ``lax.scan``) or ``"auto"`` (python on CPU, scan elsewhere).

    Returns
    -------
    An ArviZ ``xarray.DataTree`` with groups posterior, observed_data, sample_stats.

    Examples
    --------
    >>> model = bayesnoise.load_model("models/gaussian_toy.py")  # doctest: +SKIP
    >>> tree = bayesnoise.sample(model, y, num_chains=4, num_draws=8)  # doctest: +SKIP
    """
    target = posterior_target(model)
    observations, single = _check_inputs(
        target, observation, sampler, num_chains, num_draws, num_steps, start_time
    )
    if loop not in LOOPS:
        raise ValueError(f"loop must be one of {LOOPS}. Got loop={loop!r}.")
    if loop == "auto":
        loop = "python" if jax.default_backend() == "cpu" else "scan"
    grid = time_grid(num_steps, float(start_time), spacing=time_spacing)
    options = {"time_step": float(grid[0] - grid[1]), "start_time": float(start_time)}
    options.update(sampler_options or {})
    traced_options, static_options = _split_options(options)

    started = wallclock.perf_counter()
    init_key, step_key = jax.random.split(jax.random.key(seed))
    num_trajectories = num_chains * num_draws
    positions = _initial_positions(
        target, init_key, observations, num_trajectories, float(start_time)
    )
    algorithm = SAMPLERS[sampler].as_top_level_api(
        target, observations[0], **traced_options, **dict(static_options)
    )
    states = jax.vmap(jax.vmap(algorithm.init))(positions)
    diverged = jnp.zeros((observations.shape[0], num_trajectories), dtype=bool)

    chunk = 1 if loop == "python" else max(1, num_steps // 10)
    residual_traces = []
    with tqdm(total=num_steps, disable=not progress, desc=sampler, unit="step") as bar:
        for first in range(0, num_steps, chunk):
            length = min(chunk, num_steps - first)
            advance = _runner(target, sampler, static_options, length)
            (states, diverged), residuals = advance(
                states, diverged, step_key, jnp.asarray(first), observations, traced_options, grid
            )
            residual_traces.append(residuals)
            bar.update(length)
    positions = jax.block_until_ready(states.position)
    wall_time = wallclock.perf_counter() - started

    final_residual = jax.jit(jax.vmap(jax.vmap(target.predicted_observation)))(positions)
    final_residual = jnp.sqrt(
        jnp.sum((observations[:, None] - final_residual) ** 2, axis=range(2, final_residual.ndim))
    )
    return to_datatree(
        positions=positions,
        observations=observations,
        diverged=diverged,
        final_residual=final_residual,
        residual_trace=jnp.concatenate(residual_traces, axis=0),
        num_chains=num_chains,
        single_image=single,
        attrs={
            "sampler": sampler,
            "sampler_options": repr(sampler_options or {}),
            "num_steps": num_steps,
            "start_time": float(start_time),
            "time_spacing": time_spacing,
            "seed": seed,
            "loop": loop,
            "backend": jax.default_backend(),
            "wall_time_s": wall_time,
        },
    )
