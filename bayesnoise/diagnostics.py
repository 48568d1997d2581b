"""Diagnostics of a posterior DataTree whose draws are independent trajectories.

Every (chain, draw) of these samplers is an independent reverse-diffusion trajectory, not a
step of a Markov chain, so the headline numbers are those of independent Monte Carlo: the
number of usable draws N, the Monte Carlo standard error of the posterior mean (sd / sqrt(N))
and of the posterior standard deviation, divergences, solver failures, and a split check that
two independent halves of the draws agree. R-hat and ESS (arviz-stats) measure the mixing of
dependent draws; they are kept in a secondary block, ``dependent_draw_diagnostics``.
"""

from __future__ import annotations

import math
from statistics import NormalDist

import arviz_stats
import numpy as np

__all__ = ["summarize", "SPLIT_CHECK_LEVEL"]

SPLIT_CHECK_LEVEL = 0.05
"""Family-wise level of the split check (Bonferroni over the elements of a latent)."""


def _finite_or_none(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _monte_carlo_errors(draws) -> dict:
    """Standard errors of the mean and of the sd of independent draws, per element.

    mean: sd / sqrt(N). sd: by the delta method, sqrt((m4 - sd^4) / N) / (2 sd), with m4 the
    fourth central moment (no normality assumed).
    """
    num_draws = draws.shape[0]
    centred = draws - draws.mean(axis=0)
    sd = draws.std(axis=0, ddof=1)
    fourth_moment = np.mean(centred**4, axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        mcse_sd = np.sqrt(np.maximum(fourth_moment - sd**4, 0.0) / num_draws) / (2 * sd)
    mcse_sd = np.where(sd > 0, mcse_sd, 0.0)
    mcse_mean = sd / math.sqrt(num_draws)
    return {
        "mcse_mean_median": float(np.median(mcse_mean)),
        "mcse_mean_max": float(np.max(mcse_mean)),
        "mcse_sd_median": float(np.median(mcse_sd)),
        "mcse_sd_max": float(np.max(mcse_sd)),
    }


def _split_check(draws) -> dict:
    """Two-sample z-test of the means of the first and second half of the draws, per element.

    Independent draws of one posterior agree up to Monte Carlo error; the fraction of elements
    with |z| beyond the Bonferroni threshold Phi^-1(1 - level / (2 elements)) should be 0.
    """
    half = draws.shape[0] // 2
    first, second = draws[:half], draws[half:]
    variance = first.var(axis=0, ddof=1) / len(first) + second.var(axis=0, ddof=1) / len(second)
    difference = first.mean(axis=0) - second.mean(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(variance > 0, np.abs(difference) / np.sqrt(variance), 0.0)
    threshold = NormalDist().inv_cdf(1 - SPLIT_CHECK_LEVEL / (2 * draws.shape[1]))
    return {
        "fraction_beyond_threshold": float(np.mean(z > threshold)),
        "threshold_z": threshold,
        "max_abs_z": float(np.max(z)),
        "draws_per_half": [len(first), len(second)],
    }


def _dependent_draw_diagnostics(tree) -> dict:
    """R-hat and ESS of each latent (arviz-stats): meaningful only for dependent draws."""
    block = {
        "note": "R-hat and ESS measure the mixing of dependent (MCMC) draws; these draws are "
        "independent trajectories, so read the Monte Carlo errors and the split check instead."
    }
    for name in tree["posterior"].data_vars:
        rhat = arviz_stats.rhat(tree, var_names=[name])[name]
        ess_bulk = arviz_stats.ess(tree, var_names=[name], method="bulk")[name]
        ess_tail = arviz_stats.ess(tree, var_names=[name], method="tail")[name]
        block[name] = {
            "rhat_median": _finite_or_none(np.median(rhat)),
            "rhat_max": _finite_or_none(np.max(rhat)),
            "ess_bulk_min": _finite_or_none(np.min(ess_bulk)),
            "ess_tail_min": _finite_or_none(np.min(ess_tail)),
        }
    return block


def _parameter_posterior(draws) -> dict:
    """Posterior mean, sd and central 90% interval of a forward-model parameter, per element
    (plain numbers for a scalar). Each trajectory contributes one draw, so these are
    independent draws like those of x and n."""
    lower, upper = np.quantile(draws, [0.05, 0.95], axis=0)
    values = {
        "mean": draws.mean(axis=0),
        "sd": draws.std(axis=0, ddof=1),
        "interval_90": np.stack([lower, upper], axis=-1),
    }
    if draws.shape[1] == 1:
        return {key: value[0].tolist() for key, value in values.items()}
    return {key: value.tolist() for key, value in values.items()}


def summarize(tree) -> dict:
    """A JSON-ready summary of a posterior of independent draws.

    Top level: draws, divergences, strays (when checked, :mod:`bayesnoise.stray`; theta's own
    too with ``plug_in``), solver failures, the final residual norm. Per latent: the number of
    usable (neither diverged nor stray) draws, the median and max over elements of the Monte
    Carlo standard error of the posterior mean and sd, and the split check (see
    :func:`_split_check`). Forward-model parameters (named in the ``forward_model_parameters``
    attribute) also get ``posterior``: mean, sd and central 90% interval, and the summary the
    mean HMC acceptance of their updates. ``dependent_draw_diagnostics``: R-hat and ESS,
    secondary.
    """
    posterior = tree["posterior"]
    stats = tree["sample_stats"]
    num_chains, num_draws = posterior.sizes["chain"], posterior.sizes["draw"]
    diverging = np.asarray(stats["diverging"])
    summary = {
        "num_chains": num_chains,
        "num_draws": num_draws,
        "num_trajectories": int(diverging.size),
        "num_diverged": int(diverging.sum()),
        "final_residual_norm_mean": _finite_or_none(np.nanmean(stats["residual_norm"])),
    }
    if "stray" in stats:
        summary["num_strays"] = int(np.asarray(stats["stray"]).sum())
    if "parameter_stray" in stats:  # plug_in: theta's draws have their own strays
        summary["num_parameter_strays"] = int(np.asarray(stats["parameter_stray"]).sum())
    if "solver_failures" in stats:
        failures = np.asarray(stats["solver_failures"])
        summary["num_trajectories_with_solver_failures"] = int(np.sum(failures > 0))
    if "spread_scale" in posterior.attrs:  # draws rescaled after sampling: say so
        summary["spread_scale"] = float(posterior.attrs["spread_scale"])
    if "divergence_bound" in posterior.attrs:
        summary["divergence_bound"] = float(posterior.attrs["divergence_bound"])
    parameter_names = str(posterior.attrs.get("forward_model_parameters", "")).split()
    if "parameter_acceptance_rate" in stats:
        summary["parameter_acceptance_rate_mean"] = _finite_or_none(
            np.nanmean(stats["parameter_acceptance_rate"])
        )
    for name in posterior.data_vars:
        # (chain, draw, *elements) -> (draw in (chain, draw) order, element); float64 moments
        per_draw = np.asarray(posterior[name], dtype=np.float64).reshape(num_chains * num_draws, -1)
        used = np.all(np.isfinite(per_draw), axis=1)
        latent = {"num_elements": per_draw.shape[1], "num_draws_used": int(used.sum())}
        draws = per_draw[used]
        if len(draws) >= 2:
            latent.update(_monte_carlo_errors(draws))
        if len(draws) >= 4:
            latent["split_check"] = _split_check(draws)
        if name in parameter_names and len(draws) >= 2:
            latent["posterior"] = _parameter_posterior(draws)
        if f"{name}_spread_scale" in posterior.attrs:  # widened after sampling
            latent["spread_scale"] = float(posterior.attrs[f"{name}_spread_scale"])
        summary[name] = latent
    if num_chains >= 2 and num_draws >= 2:
        summary["dependent_draw_diagnostics"] = _dependent_draw_diagnostics(tree)
    return summary
