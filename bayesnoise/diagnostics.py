"""Diagnostics of a posterior DataTree: R-hat, ESS (arviz-stats), divergences, residuals.

Every (chain, draw) of a diffusion sampler is an independent trajectory, so R-hat near 1 and a
bulk ESS near chains x draws are what a healthy run shows; a diverged trajectory is NaN in the
posterior, which makes the R-hat/ESS of that latent NaN (reported as null), never hidden.
"""

from __future__ import annotations

import math

import arviz_stats
import numpy as np

__all__ = ["summarize"]


def _finite_or_none(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def summarize(tree) -> dict:
    """A JSON-ready summary: per latent, median and max R-hat, min bulk/tail ESS over elements.

    With few draws the maximum over many pixels is dominated by estimation noise (split R-hat
    from 8 draws is noisy), so read it together with the median.
    """
    posterior = tree["posterior"]
    stats = tree["sample_stats"]
    num_chains, num_draws = posterior.sizes["chain"], posterior.sizes["draw"]
    summary = {
        "num_chains": num_chains,
        "num_draws": num_draws,
        "num_trajectories": int(np.asarray(stats["diverged"]).size),
        "num_diverged": int(np.asarray(stats["diverged"]).sum()),
        "final_residual_norm_mean": _finite_or_none(np.nanmean(stats["residual_norm"])),
    }
    if num_chains * num_draws < 4 or num_draws < 2:
        summary["note"] = "R-hat and ESS need at least 2 chains x 2 draws."
        return summary
    for name in posterior.data_vars:
        rhat = arviz_stats.rhat(tree, var_names=[name])[name]
        ess_bulk = arviz_stats.ess(tree, var_names=[name], method="bulk")[name]
        ess_tail = arviz_stats.ess(tree, var_names=[name], method="tail")[name]
        summary[name] = {
            "num_elements": int(np.size(rhat)),
            "rhat_median": _finite_or_none(np.median(rhat)),
            "rhat_max": _finite_or_none(np.max(rhat)),
            "ess_bulk_min": _finite_or_none(np.min(ess_bulk)),
            "ess_tail_min": _finite_or_none(np.min(ess_tail)),
        }
    return summary
