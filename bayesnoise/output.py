"""Samples and per-trajectory statistics -> an ArviZ DataTree, saved atomically as netCDF."""

from __future__ import annotations

from pathlib import Path

import arviz_base
import numpy as np

from bayesnoise.atomic import atomic_path

__all__ = ["to_datatree", "save_datatree", "measurement_std_of"]

_EVENT_DIMS = {1: ("element",), 2: ("height", "width"), 3: ("height", "width", "channel")}
"""ArviZ-style names of a latent's (or the observation's) event dimensions, by rank."""


def _event_dims(name, shape, taken):
    """Named dims of a variable of event ``shape``: the shared names of its rank
    (``height, width, channel``; ``element``), each prefixed with ``name`` where ``taken``
    already gives it another size; ``{name}_dim_i`` for other ranks. ``taken`` is updated."""
    names = _EVENT_DIMS.get(len(shape), [f"{name}_dim_{i}" for i in range(len(shape))])
    dims = []
    for dim, size in zip(names, shape, strict=True):
        dim = dim if taken.setdefault(dim, size) == size else f"{name}_{dim}"
        taken.setdefault(dim, size)
        dims.append(dim)
    return dims


def measurement_std_of(target, observation):
    """The likelihood's standard deviation of every element of y (sqrt of its variance)."""
    position = {name: np.zeros(shape, np.float32) for name, shape in target.latent_shapes.items()}
    variance = target.observation_distribution(position, observation).variance
    return np.broadcast_to(np.sqrt(np.asarray(variance)), np.shape(observation))


def to_datatree(
    *,
    positions,
    observations,
    diverged,
    final_residual,
    residual_trace,
    num_chains,
    solver_failures=None,
    solver_steps_max=None,
    predicted_observations=None,
    measurement_std=None,
    predictive_std=None,
    parameter_acceptance=None,
    stray=None,
    end_point_log_density=None,
    parameter_left_out=None,
    parameter_stray=None,
    plug_in_parameters=None,
    time_grid=None,
    seed=0,
    single_image,
    attrs,
):
    """Arrange (image, trajectory, ...) arrays as ArviZ's (chain, draw, [image], ...).

    Groups: ``posterior`` (x, n), ``observed_data`` (y), ``sample_stats`` (``diverging``,
    residual norms, solver counts), and, when given, ``posterior_predictive`` (y drawn from the
    likelihood around ``predicted_observations`` = A x + B n of each draw, with
    ``measurement_std``) and ``constant_data`` (``measurement_std``, ``time_grid``). Event
    dimensions are named as ArviZ expects and shared between x, n and y where sizes agree
    (``height``, ``width``, ``channel``; ``element`` for vectors).

    Draws of diverged trajectories are NaN in the posterior and the posterior predictive, never
    silently averaged: ``sample_stats.diverging`` says which (``diverged`` is the same values
    under the former name, kept for older scripts). ``solver_failures`` counts the steps of
    each trajectory whose linear solve stopped at its iteration limit (0 is healthy).

    Forward-model parameters are posterior variables like x and n (scalars get no event
    dims). ``predictive_std`` (image, trajectory, ...), when given, is each draw's likelihood
    std for the posterior predictive (a theta may set it) in place of ``measurement_std``;
    ``parameter_acceptance`` is each trajectory's mean HMC acceptance of theta's updates.

    ``stray`` (image, trajectory), when given, flags trajectories left out like diverged ones
    (NaN; :mod:`bayesnoise.stray`), in ``sample_stats.stray`` beside ``end_point_log_density``.

    When theta's draws come from earlier passes than (x, n) (``ParameterUpdate(plug_in=True)``),
    ``parameter_left_out`` (image, trajectory) is theta's own mask of diverged and stray draws
    in place of the one above, ``parameter_stray`` (its strays) goes to
    ``sample_stats.parameter_stray`` and ``plug_in_parameters`` (``{name: (image, ...)}``, the
    value x and n were drawn at) to ``constant_data.<name>_plug_in``.
    """
    diverged = np.asarray(diverged)
    left_out = diverged if stray is None else diverged | np.asarray(stray)

    def arrange(values):  # (image, trajectory, ...) -> (chain, draw, [image,] ...)
        values = np.asarray(values)
        num_images, num_trajectories = values.shape[:2]
        values = values.reshape(
            (num_images, num_chains, num_trajectories // num_chains) + values.shape[2:]
        )
        values = np.moveaxis(values, 0, 2)
        return values[:, :, 0] if single_image else values

    def without_left_out(values, mask=left_out):
        values = np.asarray(values, dtype=np.float32).copy()
        values[mask] = np.nan
        return arrange(values)

    image_dims = [] if single_image else ["image"]
    posterior, dims, taken = {}, {}, {}
    latent_dims = {}
    for name, values in positions.items():
        plugged_in = name in (plug_in_parameters or {})  # theta's draws from earlier passes
        posterior[name] = without_left_out(values, parameter_left_out if plugged_in else left_out)
        latent_dims[name] = _event_dims(name, np.shape(values)[2:], taken)
        dims[name] = image_dims + latent_dims[name]
    observed = np.asarray(observations)
    observed = observed[0] if single_image else observed
    event_shape = np.shape(observations)[1:]
    matching = [name for name, values in positions.items() if np.shape(values)[2:] == event_shape]
    y_dims = latent_dims[matching[0]] if matching else _event_dims("y", event_shape, dict(taken))
    dims["y"] = dims["measurement_std"] = image_dims + y_dims
    # residual_trace: (step, image, trajectory) -> (chain, draw, [image,] step)
    trace = np.moveaxis(np.asarray(residual_trace), 0, -1)
    dims["residual_norm_trace"] = image_dims + ["step"]
    dims["diverging"] = dims["diverged"] = dims["residual_norm"] = image_dims
    sample_stats = {
        "diverging": arrange(diverged),
        "diverged": arrange(diverged),
        "residual_norm": arrange(final_residual),
        "residual_norm_trace": arrange(trace),
    }
    if parameter_acceptance is not None:
        sample_stats["parameter_acceptance_rate"] = arrange(parameter_acceptance)
        dims["parameter_acceptance_rate"] = image_dims
    if stray is not None:
        sample_stats["stray"] = arrange(stray)
        sample_stats["end_point_log_density"] = arrange(end_point_log_density)
        dims["stray"] = dims["end_point_log_density"] = image_dims
    if parameter_stray is not None:
        sample_stats["parameter_stray"] = arrange(parameter_stray)
        dims["parameter_stray"] = image_dims
    if solver_failures is not None:
        sample_stats["solver_failures"] = arrange(solver_failures)
        sample_stats["solver_steps_max"] = arrange(solver_steps_max)
        dims["solver_failures"] = dims["solver_steps_max"] = image_dims
    groups = {"posterior": posterior, "observed_data": {"y": observed}}
    groups["sample_stats"] = sample_stats
    constant_data = {}
    if measurement_std is not None:
        std = np.asarray(measurement_std, dtype=np.float32)
        constant_data["measurement_std"] = std[0] if single_image else std
    if time_grid is not None:
        constant_data["time_grid"] = np.asarray(time_grid, dtype=np.float32)
        dims["time_grid"] = ["time_index"]
    for name, values in (plug_in_parameters or {}).items():
        values = np.asarray(values, dtype=np.float32)
        constant_data[f"{name}_plug_in"] = values[0] if single_image else values
        dims[f"{name}_plug_in"] = image_dims + latent_dims[name]
    if constant_data:
        groups["constant_data"] = constant_data
    if predicted_observations is not None:
        predicted = np.asarray(predicted_observations, dtype=np.float32)
        if predictive_std is not None:
            std = np.asarray(predictive_std, dtype=np.float32)
        else:
            std = np.broadcast_to(
                np.float32(0.0)
                if measurement_std is None
                else np.asarray(measurement_std)[:, None],
                predicted.shape,
            )
        noise = np.random.default_rng(seed).standard_normal(predicted.shape, dtype=np.float32)
        groups["posterior_predictive"] = {"y": without_left_out(predicted + std * noise)}
    return arviz_base.from_dict(
        groups, dims=dims, attrs={"posterior": attrs, "sample_stats": attrs}
    )


def save_datatree(tree, path) -> Path:
    """Write ``tree`` as netCDF at ``path`` atomically (a temporary file, then a rename).

    The file gets the mode ``0o666 & ~umask``, like any file a user's program creates.
    """
    path = Path(path)
    with atomic_path(path) as temporary:
        tree.to_netcdf(temporary, engine="h5netcdf")
    return path
