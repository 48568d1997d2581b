"""Why alpha's posterior mean regresses to 0.5 on the digits: diagnostics of the study.

    python analyses/parameter_diagnostics.py self-consistency [--pairs 16] [--json F]
    python analyses/parameter_diagnostics.py plug-in --from F.json [--pairs 16] [--first K]
    python analyses/parameter_diagnostics.py anchor --from F.json [--json F]
    python analyses/parameter_diagnostics.py fiber [--pairs 16] [--json F]
    python analyses/parameter_diagnostics.py draw-fiber [--pairs 16] [--json F]
    python analyses/parameter_diagnostics.py stray-tolerance [--pairs 16] [--first K] [--json F]
    python analyses/parameter_diagnostics.py truth-density [--pairs 16] [--first K] [--json F]
    python analyses/parameter_diagnostics.py alpha-grid --from F.json [--pairs 16] [--first K]

All on ``models/digits_unknown_mixing.py``'s test pairs (``simulate(k)``, alpha_k ~ U(0.3, 0.7))
with its defaults and 2 x 8 draws, as ``analyses/unknown_parameters.py``:

- ``self-consistency``: alpha known; the least-squares alpha of each final draw,
  argmin_a ||y - (1 - a) x - a n||. If it reproduces the alpha the sampler was given, the
  draws carry no information that would move alpha (an EM step with the sampler as its E-step
  returns its input), so alpha can only be learned inside the reverse process.
- ``plug-in``: alpha fixed at an earlier run's posterior mean (``--from``, the JSON of
  ``unknown_parameters.py``, on that run's pairs: test, validation or held-out): the PSNR of x
  with an empirical-Bayes plug-in (the model file's stray check applies, as in the known-alpha
  reference), beside that run's unknown- and known-alpha PSNRs.
- ``anchor``: alpha unknown, but every trajectory of pair k starts from the minimum-norm split
  of y at the earlier run's posterior mean of alpha_k instead of the prior mean 0.5 (patched
  into the driver's start; the only change). If the regression to 0.5 came from the common
  start, it would shrink.
- ``fiber``: how much the priors alone say about alpha, whatever the sampler does: the density
  of :class:`bayesnoise.rescaling.RescalingMove`'s fiber (rescaling x by (1 - alpha) / (1 -
  alpha') and n by alpha / alpha', which keeps y's prediction) through each pair's TRUE (x, n):
  its mean, sd, and whether its central 90% holds the true alpha.
- ``draw-fiber``: the same profile through each draw of the known-alpha sampler (the right
  split, but the sampler's statistics, e.g. its smoothing): its mean over draws against the
  truth. A bias here is the move's with right splits; ``fiber`` minus ``draw-fiber`` is what
  the draws' statistics cost.
- ``stray-tolerance``: on VALIDATION pairs (``analyses/splits.py``, mixed by the model file's
  ``mix``), alpha unknown, every trajectory's end-point log density recorded
  (:class:`bayesnoise.stray.StrayCheck` with an infinite tolerance), then for each tolerance of
  a grid the trajectories within it of their pair's best are kept: the PSNR of x's mean,
  alpha's error and coverage, and the kept fraction. The model file's tolerance is chosen
  here, never on the test pairs.
- ``truth-density``: on the same validation pairs, every end point's log density (as
  ``stray-tolerance``) of the alpha-unknown run against those of the TRUE (x, n, alpha) and of
  the known-alpha run's end points (at the true alpha), with the same random numbers. Where the
  unknown run's best end point is denser than the known run's best but further from x, the
  density prefers the wrong split (the model's or the ELBO's doing, not the search's); where
  the truth and the known run's best are denser, the sampler did not reach them (the search's).
- ``alpha-grid``: on the same validation pairs, the known-alpha sampler at a grid of alpha
  around an earlier validation run's posterior mean (``--from``), every end point's log density
  scored as in ``truth-density`` (log p(alpha) and the fiber's volume included), and the grid
  value whose densest end point is the densest: does the density, given draws at the right
  alpha, pick alpha better than the alpha-unknown sampler does? The PSNR of x's mean (the
  draws within the stray tolerance of their alpha's best) at the picked alpha and at the run's.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import splits
from unknown_parameters import (
    gap_summary,
    posterior_mean_psnr,
    theta_figures,
    theta_summary,
    write_result,
)

import bayesnoise as bn
import bayesnoise.inference
from bayesnoise.calibration import randomised_pit
from bayesnoise.linear_solve import pseudo_inverse
from bayesnoise.metrics import psnr
from bayesnoise.model_file import load_model_file
from bayesnoise.rescaling import RescalingMove, fiber_log_density, mixing_gains
from bayesnoise.stray import StrayCheck, end_point_log_density, strays
from bayesnoise.target import posterior_target

MODEL_FILE = Path(__file__).resolve().parents[1] / "models" / "digits_unknown_mixing.py"
DRAWS = 8


def self_consistency(module, simulated, settings):
    rows = []
    for y, truth in simulated:
        alpha = float(truth["alpha"])
        tree = bn.sample(module.fixed_model(alpha), y, **settings)
        x = np.asarray(tree.posterior["x"]).reshape(-1, y.size)
        n = np.asarray(tree.posterior["n"]).reshape(-1, y.size)
        fitted = np.sum((y.reshape(-1) - x) * (n - x), 1) / np.sum((n - x) ** 2, 1)
        rows.append((alpha, float(np.mean(fitted)), float(np.std(fitted))))
    given, fitted, spread = (np.array(column) for column in zip(*rows, strict=True))
    return {
        "alpha_given": given.tolist(),
        "alpha_fitted_mean": fitted.tolist(),
        "alpha_fitted_sd": spread.tolist(),
        "mean_abs_difference": float(np.mean(np.abs(fitted - given))),
        "slope_of_fitted_on_given": float(np.polyfit(given, fitted, 1)[0]),
    }


def plug_in(module, simulated, settings, estimates):
    scores = []
    for (y, truth), alpha in zip(simulated, estimates, strict=True):
        tree = bn.sample(module.fixed_model(float(alpha)), y, **settings)
        x = np.asarray(tree.posterior["x"]).reshape((-1,) + truth["x"].shape)
        scores.append(float(psnr(np.nanmean(x, axis=0), truth["x"])))
    return {
        "alpha_plugged_in": list(map(float, estimates)),
        "psnr_db": scores,
        "psnr_mean_db": float(np.mean(scores)),
    }


def anchored_start(anchors):
    """The driver's start solver with alpha at ``anchors[k]`` for image k (not the prior mean)."""

    @eqx.filter_jit
    def minimum_norm_solutions(target, observations):
        zeros = {name: jnp.zeros(shape) for name, shape in target.latent_shapes.items()}

        def one(observation, alpha):
            bound = target.with_parameters({"alpha": alpha})
            return pseudo_inverse(bound.predicted_observation, zeros, observation)[0]

        return jax.vmap(one)(observations, anchors)

    return minimum_norm_solutions


def anchor(module, simulated, settings, estimates):
    observations = np.stack([y for y, _ in simulated])
    alphas = np.array([truth["alpha"] for _, truth in simulated], dtype=np.float64)
    original = bayesnoise.inference._minimum_norm_solutions
    bayesnoise.inference._minimum_norm_solutions = anchored_start(jnp.asarray(estimates))
    try:
        started = time.perf_counter()
        tree = bn.sample(module.model, observations, **settings)
        seconds = time.perf_counter() - started
    finally:
        bayesnoise.inference._minimum_norm_solutions = original
    scores = posterior_mean_psnr(tree, [truth["x"] for _, truth in simulated])
    return {
        "anchors": list(map(float, estimates)),
        **theta_summary(tree, "alpha", alphas),
        "psnr_db": scores,
        "psnr_mean_db": float(np.mean(scores)),
        "seconds": seconds,
    }


jitted_fiber_log_density = eqx.filter_jit(fiber_log_density)


def fiber_profile(target, move, position, alpha, y, key):
    """The fiber's density of alpha through ``position``: its mean, sd and central 90%."""
    log_density, grid, _ = jitted_fiber_log_density(
        target, position, {"alpha": jnp.asarray(alpha)}, jnp.asarray(y), key, move
    )
    weights = np.exp(np.asarray(log_density) - np.max(log_density))
    weights /= weights.sum()
    alphas = np.asarray(grid["alpha"], dtype=np.float64)
    mean = float(np.sum(weights * alphas))
    cdf = np.cumsum(weights)
    lower, upper = alphas[np.searchsorted(cdf, 0.05)], alphas[np.searchsorted(cdf, 0.95)]
    sd = float(np.sqrt(np.sum(weights * (alphas - mean) ** 2)))
    return mean, sd, lower, upper


def errors_against_truth(means, truths, prefix: str = "") -> dict:
    """Mean absolute and signed error of per-pair estimates of alpha, and their slope on it."""
    return {
        f"{prefix}abs_error_mean": float(np.mean(np.abs(means - truths))),
        f"{prefix}signed_error_mean": float(np.mean(means - truths)),
        f"{prefix}slope_on_truth": float(np.polyfit(truths, means, 1)[0]),
    }


def fiber(module, simulated):
    """The fiber's profile of alpha through each pair's true (x, n) (library's grid)."""
    target = posterior_target(module.model)
    move = RescalingMove(gains=mixing_gains)
    rows = []
    for k, (y, truth) in enumerate(simulated):
        position = {"x": jnp.asarray(truth["x"]), "n": jnp.asarray(truth["n"])}
        mean, sd, lower, upper = fiber_profile(
            target, move, position, truth["alpha"], y, jax.random.PRNGKey(k)
        )
        rows.append((mean, sd, lower <= truth["alpha"] <= upper))
    means, sds, covered = (np.array(column) for column in zip(*rows, strict=True))
    truths = np.array([truth["alpha"] for _, truth in simulated], dtype=np.float64)
    return {
        "alpha_true": truths.tolist(),
        "profile_mean": means.tolist(),
        "profile_sd": sds.tolist(),
        **errors_against_truth(means, truths, prefix="profile_"),
        "profile_sd_mean": float(np.mean(sds)),
        "profile_interval_90_coverage": float(np.mean(covered)),
    }


def draw_fiber(module, simulated, settings):
    """The fiber's profile of alpha through the known-alpha sampler's draws (the right split,
    the sampler's statistics): the alpha the move would give if every split were right."""
    target = posterior_target(module.model)
    move = RescalingMove(gains=mixing_gains)
    rows = []
    for k, (y, truth) in enumerate(simulated):
        alpha = float(truth["alpha"])
        tree = bn.sample(module.fixed_model(alpha), y, **settings)
        draws = {
            site: np.asarray(tree.posterior[site]).reshape((-1,) + truth[site].shape)
            for site in ("x", "n")
        }
        keys = jax.random.split(jax.random.PRNGKey(k), len(draws["x"]))
        means = [
            fiber_profile(target, move, {"x": x, "n": n}, alpha, y, key)[0]
            for x, n, key in zip(draws["x"], draws["n"], keys, strict=True)
        ]
        rows.append((float(np.mean(means)), float(np.std(means))))
    means, spreads = (np.array(column) for column in zip(*rows, strict=True))
    truths = np.array([truth["alpha"] for _, truth in simulated], dtype=np.float64)
    return {
        "alpha_true": truths.tolist(),
        "draw_profile_mean": means.tolist(),
        "draw_profile_mean_sd_over_draws": spreads.tolist(),
        **errors_against_truth(means, truths),
        "signed_error_standard_error": float(np.std(means - truths, ddof=1) / np.sqrt(len(means))),
    }


TOLERANCES = (25.0, 50.0, 100.0, 150.0, 200.0, 300.0, 500.0, math.inf)


def stray_tolerance(module, simulated, settings):
    """Figures of the unknown-alpha run for each tolerance of the stray check (one sampling
    run: the tolerance only decides which trajectories are averaged)."""
    check = settings.get("stray_check") or StrayCheck()
    settings = {**settings, "stray_check": dataclasses.replace(check, tolerance=math.inf)}
    observations = np.stack([y for y, _ in simulated])
    started = time.perf_counter()
    tree = bn.sample(module.model, observations, **settings)
    seconds = time.perf_counter() - started
    num_pairs = len(simulated)
    densities = np.asarray(tree.sample_stats["end_point_log_density"]).reshape(-1, num_pairs)
    diverged = np.asarray(tree.sample_stats["diverging"]).reshape(-1, num_pairs)
    xs = np.asarray(tree.posterior["x"]).reshape((-1, num_pairs) + simulated[0][1]["x"].shape)
    alphas = np.asarray(tree.posterior["alpha"]).reshape(-1, num_pairs)
    truths = np.array([truth["alpha"] for _, truth in simulated], dtype=np.float64)
    rows = []
    for tolerance in TOLERANCES:
        kept = ~diverged & ~np.asarray(strays(densities.T, diverged.T, tolerance)).T
        psnrs = [
            float(psnr(xs[kept[:, k], k].mean(axis=0), truth["x"]))
            for k, (_, truth) in enumerate(simulated)
        ]
        means = np.array([alphas[kept[:, k], k].mean() for k in range(num_pairs)])
        pit = [
            randomised_pit(alphas[kept[:, k], k].astype(np.float64), truths[k], seed=k)
            for k in range(num_pairs)
        ]
        figures = theta_figures(truths, means, pit)
        rows.append(
            {
                "tolerance": tolerance if math.isfinite(tolerance) else "inf",
                "psnr_mean_db": float(np.mean(psnrs)),
                "psnr_db": psnrs,
                "kept_fraction": float(kept.mean()),
                **{key: value for key, value in figures.items() if key != "theta_pit"},
            }
        )
        print(
            f"tolerance {tolerance:>6}: x {rows[-1]['psnr_mean_db']:.2f} dB, alpha abs error "
            f"{figures['theta_abs_error_mean']:.3f}, 90% coverage "
            f"{figures['theta_interval_90_coverage']:.2f}, kept {kept.mean():.2f}",
            flush=True,
        )
    return {"seconds": seconds, "rows": rows}


def truth_density(module, simulated, settings):
    """Per pair: the end-point log densities of the truth and of the known-alpha run's best
    trajectory minus that of the unknown run's best; alpha and the PSNR of x of each best."""
    check = settings.get("stray_check") or StrayCheck()
    check = dataclasses.replace(check, tolerance=math.inf)
    observations = np.stack([y for y, _ in simulated])
    tree = bn.sample(module.model, observations, **{**settings, "stray_check": check})
    num_pairs = len(simulated)
    densities = np.asarray(tree.sample_stats["end_point_log_density"]).reshape(-1, num_pairs)
    alphas = np.asarray(tree.posterior["alpha"]).reshape(-1, num_pairs)
    xs = np.asarray(tree.posterior["x"]).reshape((-1, num_pairs) + simulated[0][1]["x"].shape)
    target = posterior_target(module.model)
    key = bayesnoise.inference.end_point_key(settings.get("seed", 0))

    @eqx.filter_jit
    def log_density(observation, point, image):  # point: x, n and alpha
        return end_point_log_density(
            target.with_observation(observation),
            {"x": point["x"], "n": point["n"]},
            {"alpha": point["alpha"]},
            jax.random.fold_in(key, image),
            check,
        )

    rows = []
    for k, (y, truth) in enumerate(simulated):
        observation, image = jnp.asarray(y), jnp.asarray(k)
        truth_density = float(log_density(observation, truth, image))
        usable = np.where(np.isfinite(densities[:, k]), densities[:, k], -np.inf)
        best = int(np.argmax(usable))
        known = bn.sample(module.fixed_model(float(truth["alpha"])), y, **settings)
        known_x, known_n = (
            np.asarray(known.posterior[name]).reshape((-1,) + truth["x"].shape) for name in "xn"
        )
        known_densities = np.array(
            [
                float(log_density(observation, {"x": x, "n": n, "alpha": truth["alpha"]}, image))
                for x, n in zip(known_x, known_n, strict=True)
            ]
        )
        known_best = int(
            np.argmax(np.where(np.isfinite(known_densities), known_densities, -np.inf))
        )
        rows.append(
            {
                "truth_minus_best_nats": truth_density - float(usable[best]),
                "known_best_minus_best_nats": float(known_densities[known_best] - usable[best]),
                "trajectories_above_truth": int(np.sum(usable > truth_density)),
                "alpha_true": float(truth["alpha"]),
                "alpha_of_best": float(alphas[best, k]),
                "psnr_of_best_db": float(psnr(xs[best, k], truth["x"])),
                "psnr_of_known_best_db": float(psnr(known_x[known_best], truth["x"])),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    margins = np.array([row["truth_minus_best_nats"] for row in rows])
    known_margins = np.array([row["known_best_minus_best_nats"] for row in rows])
    return {
        "truth_above_every_end_point": int(np.sum(margins > 0)),
        "truth_minus_best_nats_median": float(np.median(margins)),
        "known_best_above_best": int(np.sum(known_margins > 0)),
        "known_best_minus_best_nats_median": float(np.median(known_margins)),
        "rows": rows,
    }


GRID_OFFSETS = (-0.03, -0.015, 0.0, 0.015, 0.03)


def alpha_grid(module, simulated, settings, estimates):
    """Per pair: each grid alpha's end-point densities (the known-alpha sampler's draws), the
    alpha picked by the densest end point, and the PSNR of x's mean at it and at the estimate."""
    check = settings.get("stray_check") or StrayCheck()
    scoring = dataclasses.replace(check, tolerance=math.inf)
    target = posterior_target(module.model)
    # one key for every alpha and pair: the densities of one pair differ by alpha, not by noise
    key = jax.random.fold_in(bayesnoise.inference.end_point_key(settings.get("seed", 0)), 0)

    @eqx.filter_jit
    def log_densities(observation, xs, ns, alpha):
        bound = target.with_observation(observation)
        return jax.vmap(
            lambda x, n: end_point_log_density(
                bound, {"x": x, "n": n}, {"alpha": alpha}, key, scoring
            )
        )(xs, ns)

    rows = []
    for (y, truth), estimate in zip(simulated, estimates, strict=True):
        grid = np.clip(estimate + np.array(GRID_OFFSETS), 0.01, 0.99)
        best_densities, scores = [], []
        for alpha in grid:
            tree = bn.sample(
                module.fixed_model(float(alpha)), y, **{**settings, "stray_check": None}
            )
            xs, ns = (
                np.asarray(tree.posterior[name]).reshape((-1,) + truth["x"].shape) for name in "xn"
            )
            densities = np.asarray(log_densities(jnp.asarray(y), xs, ns, jnp.asarray(alpha)))
            usable = np.where(np.isfinite(densities), densities, -np.inf)
            kept = usable >= usable.max() - check.tolerance
            best_densities.append(float(usable.max()))
            scores.append(float(psnr(xs[kept].mean(axis=0), truth["x"])))
        picked = int(np.argmax(best_densities))
        rows.append(
            {
                "alpha_true": float(truth["alpha"]),
                "alpha_estimate": float(estimate),
                "alpha_grid": grid.tolist(),
                "best_log_density": best_densities,
                "psnr_db": scores,
                "alpha_picked": float(grid[picked]),
                "psnr_at_picked_db": scores[picked],
                "psnr_at_estimate_db": scores[GRID_OFFSETS.index(0.0)],
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    truths, picked, estimated = (
        np.array([row[field] for row in rows])
        for field in ("alpha_true", "alpha_picked", "alpha_estimate")
    )
    return {
        "grid_offsets": list(GRID_OFFSETS),
        "picked_abs_error_mean": float(np.mean(np.abs(picked - truths))),
        "estimate_abs_error_mean": float(np.mean(np.abs(estimated - truths))),
        "psnr_at_picked_mean_db": float(np.mean([row["psnr_at_picked_db"] for row in rows])),
        "psnr_at_estimate_mean_db": float(np.mean([row["psnr_at_estimate_db"] for row in rows])),
        "rows": rows,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "diagnostic",
        choices=[
            "self-consistency",
            "plug-in",
            "anchor",
            "fiber",
            "draw-fiber",
            "stray-tolerance",
            "truth-density",
            "alpha-grid",
        ],
    )
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument(
        "--first",
        type=int,
        default=0,
        help="pairs first, ... (of the --from run's split; stray-tolerance, truth-density: "
        "validation pairs; the others: test pairs)",
    )
    parser.add_argument("--from", dest="source", type=Path, help="unknown_parameters.py JSON")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    module = load_model_file(MODEL_FILE)
    settings = {**module.defaults, "progress": False, "num_draws": DRAWS}
    # the diagnostics look at the joint pass (one stage), never at a plug-in pass after it
    settings["parameter_update"] = dataclasses.replace(settings["parameter_update"], plug_in=False)
    pair_ids = range(args.first, args.first + args.pairs)
    earlier, estimates = {}, None
    if args.diagnostic in ("plug-in", "anchor", "alpha-grid"):
        if args.source is None:
            parser.error(f"{args.diagnostic} needs --from F.json (unknown_parameters.py output)")
        earlier = {"split": "test", **json.loads(args.source.read_text())}
        estimates = earlier["theta_posterior_mean"]
        if len(estimates) < pair_ids.stop or earlier.get("first") not in (0, None):
            parser.error(
                f"--from must hold the estimates of pairs 0-{pair_ids.stop - 1}. Got "
                f"{len(estimates)} from pair {earlier.get('first')} in {args.source}."
            )
        if args.diagnostic == "alpha-grid" and earlier["split"] != "validation":
            parser.error(
                f"alpha-grid needs --from a run on the validation split. Got {args.source} "
                f"(split {earlier['split']})."
            )
        estimates = estimates[pair_ids.start : pair_ids.stop]
    if args.diagnostic in ("stray-tolerance", "truth-density"):
        split = "validation"
    else:  # the --from run's pairs, or the test pairs
        split = earlier.get("split", "test")
    if split == "test":
        simulated = [module.simulate(k) for k in pair_ids]
    else:  # validation or held-out images (analyses/splits.py), mixed by the model file
        images, digits = splits.digit_pairs(split, pair_ids.stop)
        simulated = [
            module.mix(images[k], digits[k], splits.SPLITS[split][2] + k) for k in pair_ids
        ]
    if args.diagnostic == "plug-in":
        result = plug_in(module, simulated, settings, estimates)
        for name in ("unknown", "known"):
            if name in earlier["psnr_db"]:
                result[f"psnr_{name}_db"] = earlier["psnr_db"][name][pair_ids.start : pair_ids.stop]
        if "known" in earlier["psnr_db"]:
            result["known_minus_plug_in_db"] = gap_summary(
                np.array(result["psnr_known_db"]) - np.array(result["psnr_db"])
            )
    elif args.diagnostic == "alpha-grid":
        result = alpha_grid(module, simulated, settings, estimates)
    elif args.diagnostic == "stray-tolerance":
        result = stray_tolerance(module, simulated, settings)
    elif args.diagnostic == "truth-density":
        result = truth_density(module, simulated, settings)
    elif args.diagnostic == "self-consistency":
        result = self_consistency(module, simulated, settings)
    elif args.diagnostic == "fiber":
        result = fiber(module, simulated)
    elif args.diagnostic == "draw-fiber":
        result = draw_fiber(module, simulated, settings)
    else:
        result = anchor(module, simulated, settings, estimates)
    result = {"split": split, "first": args.first, **result}
    result = {"diagnostic": args.diagnostic, "pairs": args.pairs, **result}
    write_result(result, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
