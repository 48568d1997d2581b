"""Samples and per-trajectory statistics -> an ArviZ DataTree, saved atomically as netCDF."""

from __future__ import annotations

from pathlib import Path

import arviz_base
import numpy as np

from bayesnoise.atomic import atomic_path

__all__ = ["to_datatree", "save_datatree"]


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
    single_image,
    attrs,
):
    """Arrange (image, trajectory, ...) arrays as ArviZ's (chain, draw, [image], ...).

    Draws of diverged trajectories are set to NaN in the posterior, never silently averaged:
    ``sample_stats.diverged`` says which. ``solver_failures`` counts the steps of each
    trajectory whose linear solve stopped at its iteration limit (0 is healthy).
    """
    diverged = np.asarray(diverged)

    def arrange(values):  # (image, trajectory, ...) -> (chain, draw, [image,] ...)
        values = np.asarray(values)
        num_images, num_trajectories = values.shape[:2]
        values = values.reshape(
            (num_images, num_chains, num_trajectories // num_chains) + values.shape[2:]
        )
        values = np.moveaxis(values, 0, 2)
        return values[:, :, 0] if single_image else values

    image_dims = [] if single_image else ["image"]
    posterior, dims = {}, {}
    for name, values in positions.items():
        values = np.asarray(values, dtype=np.float32).copy()
        values[diverged] = np.nan
        posterior[name] = arrange(values)
        dims[name] = image_dims + [f"{name}_dim_{i}" for i in range(values.ndim - 2)]
    observed = np.asarray(observations)
    observed = observed[0] if single_image else observed
    dims["y"] = image_dims + [f"y_dim_{i}" for i in range(observed.ndim - len(image_dims))]
    # residual_trace: (step, image, trajectory) -> (chain, draw, [image,] step)
    trace = np.moveaxis(np.asarray(residual_trace), 0, -1)
    dims["residual_norm_trace"] = image_dims + ["step"]
    dims["diverged"] = dims["residual_norm"] = image_dims
    solver_stats = {}
    if solver_failures is not None:
        solver_stats["solver_failures"] = arrange(solver_failures)
        solver_stats["solver_steps_max"] = arrange(solver_steps_max)
        dims["solver_failures"] = dims["solver_steps_max"] = image_dims
    return arviz_base.from_dict(
        {
            "posterior": posterior,
            "observed_data": {"y": observed},
            "sample_stats": {
                "diverged": arrange(diverged),
                "residual_norm": arrange(final_residual),
                "residual_norm_trace": arrange(trace),
                **solver_stats,
            },
        },
        dims=dims,
        attrs={"posterior": attrs, "sample_stats": attrs},
    )


def save_datatree(tree, path) -> Path:
    """Write ``tree`` as netCDF at ``path`` atomically (a temporary file, then a rename).

    The file gets the mode ``0o666 & ~umask``, like any file a user's program creates.
    """
    path = Path(path)
    with atomic_path(path) as temporary:
        tree.to_netcdf(temporary, engine="h5netcdf")
    return path
