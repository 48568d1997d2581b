"""An unknown forward-model parameter theta, sampled with (x, n), against known and wrong theta.

    python analyses/unknown_parameters.py [--model digits_unknown_mixing] [--pairs 16] [--first K]
        [--json out.json] [--conditioning point] [--draws N] [--start-time T0] [--steps N]
        [--guidance-weight W] [--no-rescaling] [--passes P] [--references-from F.json]
        [--wrong-from F.json] [--no-stray-check] [--no-references] [--no-plug-in]
        [--spread-scale-from VALIDATION.json]
        [--split {test,validation,heldout}]

A model file with one unknown parameter defines ``PARAMETER`` (its site name), ``model``
(theta a NumPyro site), ``fixed_model(value)`` (theta known) and ``simulate(k)`` (test pair k
with its own theta_k in ``truth[PARAMETER]``): ``models/digits_unknown_mixing.py`` (y = (1 -
alpha) x + alpha n, alpha_k ~ U(0.3, 0.7), prior Beta(2, 2)) and
``models/deblur_unknown_width.py`` (y = K_w * x + stripes, w_k ~ U(0.7, 1.4), prior
LogNormal(0, 0.25)). Each pair is sampled three ways with the model file's defaults (the
options override them, for all three runs alike): theta unknown (sampled jointly,
:mod:`bayesnoise.parameters`), theta known (the true theta_k), and theta fixed at its prior
mean (a wrong value: 0.5, 1.03). Reported: the error of theta's posterior mean, the coverage
of its central 90% interval, and the PSNR of x's posterior mean for each run. The model file's
``parameter_update`` (if any) is used with ``--conditioning``; ``--no-rescaling`` drops its
``RescalingMove``; ``--passes`` sets its ``num_passes``. ``--references-from`` takes the known-
and wrong-theta PSNRs from an earlier JSON of the same model and sampler settings, on at least
as many pairs (they do not depend on the theta updates); ``--wrong-from`` takes only the
wrong-theta PSNRs, whatever that JSON's stray check. The model file's ``stray_check``
(:mod:`bayesnoise.stray`; ``--no-stray-check`` drops it) applies to all three runs alike.
``--no-plug-in`` drops the model file's plug-in pass (``ParameterUpdate(plug_in=True)``: x
drawn again at theta's posterior mean), leaving one stage. ``--no-references`` runs theta
unknown only (theta's figures and x's PSNR; for validation runs). ``--pool A.json B.json ...``
samples nothing: it pools earlier runs of the same model and settings on disjoint pairs into one
result.
``--spread-scale-from V.json`` (a run on the validation split, same settings) fits a spread
scale of theta's draws there and reports the coverage it gives this run (or pool).
``--split heldout`` (digits model) mixes Fashion-MNIST test images 1000- with held-out digits
500- (``analyses/splits.py``; not shipped) at alpha from seeds 20 000 + k: the check that a
figure is not particular to the shipped pairs.
Every result gives the PSNR gap to the known-theta run per pair with its standard error.
"""

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import numpy as np
import splits

import bayesnoise as bn
from bayesnoise.atomic import atomic_write_bytes
from bayesnoise.calibration import (
    fit_spread_scale,
    interval_coverage,
    randomised_pit,
    scale_spread,
)
from bayesnoise.metrics import psnr
from bayesnoise.model_file import load_model_file
from bayesnoise.parameters import CONDITIONINGS, ParameterUpdate
from bayesnoise.target import posterior_target

MODELS = Path(__file__).resolve().parents[1] / "models"


def posterior_mean_psnr(tree, truths):
    """PSNR of each image's posterior mean of x (non-diverged draws) against its truth."""
    draws = np.asarray(tree.posterior["x"])  # (chain, draw, image, ...)
    draws = draws.reshape((-1,) + draws.shape[2:])
    return [float(psnr(np.nanmean(draws[:, k], axis=0), truth)) for k, truth in enumerate(truths)]


def theta_figures(thetas, means, pit) -> dict:
    """Figures of theta over pairs: its posterior means against the truths, and the coverage of
    the central 90% interval from the truths' PIT values."""
    thetas, means, pit = (np.asarray(values, dtype=np.float64) for values in (thetas, means, pit))
    return {
        "theta_true": thetas.tolist(),
        "theta_posterior_mean": means.tolist(),
        "theta_abs_error_mean": float(np.mean(np.abs(means - thetas))),
        "theta_abs_error_max": float(np.max(np.abs(means - thetas))),
        "theta_signed_error_mean": float(np.mean(means - thetas)),
        "theta_interval_90_coverage": float(interval_coverage(pit, (0.9,))[0]),
        "theta_slope_of_mean_on_truth": float(np.polyfit(thetas, means, 1)[0]),
        "theta_pit": pit.tolist(),
    }


def theta_summary(tree, parameter: str, thetas) -> dict:
    """theta's posterior mean per pair, its error, and the coverage and width of its central
    90% interval (from the randomised PIT of the truth among the draws: exact for any number
    of draws, where sample quantiles of few draws undercover)."""
    draws = np.asarray(tree.posterior[parameter]).reshape(-1, len(thetas))
    mean = np.nanmean(draws, axis=0)
    lower, upper = np.nanquantile(draws, [0.05, 0.95], axis=0)
    pit = np.array(
        [
            randomised_pit(column[np.isfinite(column)], np.float64(theta), seed=k)
            for k, (column, theta) in enumerate(zip(draws.T, thetas, strict=True))
        ]
    )
    return {
        **theta_figures(thetas, mean, pit),
        "theta_interval_90_width_mean": float(np.mean(upper - lower)),
        "theta_draws": [column[np.isfinite(column)].tolist() for column in draws.T],
    }


def gap_summary(gap) -> dict:
    """Mean of per-pair PSNR differences, the standard error of that mean (pairs are
    independent; None for one pair) and their median."""
    gap = np.asarray(gap, dtype=np.float64)
    return {
        "mean": float(np.mean(gap)),
        "standard_error": float(np.std(gap, ddof=1) / np.sqrt(gap.size)) if gap.size > 1 else None,
        "median": float(np.median(gap)),
    }


def psnr_figures(runs: dict) -> dict:
    """Mean and std of each run's PSNR, and the per-pair gap known - unknown (and unknown -
    wrong) with the standard error of its mean (pairs are independent) and its median."""
    arrays = {key: np.asarray(values, dtype=np.float64) for key, values in runs.items()}
    gaps = {}  # none without the references (--no-references)
    if "known" in arrays:
        gaps["known_minus_unknown"] = arrays["known"] - arrays["unknown"]
    if "fixed_at_prior_mean" in arrays:
        gaps["unknown_minus_fixed_at_prior_mean"] = (
            arrays["unknown"] - arrays["fixed_at_prior_mean"]
        )
    return {
        "psnr_mean_db": {key: float(np.mean(values)) for key, values in arrays.items()},
        "psnr_std_db": {key: float(np.std(values)) for key, values in arrays.items()},
        "psnr_gap_db": {key: gap_summary(gap) for key, gap in gaps.items()},
        "psnr_db": {key: values.tolist() for key, values in arrays.items()},
    }


# Fields that must agree for runs to be pooled (their sampler, theta update and model), with
# the value of those that runs written before the field existed lack.
POOLED_FIELDS = (
    "model",
    "parameter",
    "split",
    "settings",
    "rescaling",
    "num_passes",
    "plug_in",
    "conditioning",
    "stray_check",
)
FIELD_DEFAULTS = {
    "num_passes": 1,
    "plug_in": False,
    "first": 0,
    "split": "test",
    "stray_check": None,
}


def pool(paths) -> dict:
    """One result from earlier runs of the same model and settings on disjoint pairs, joined in
    the order of their pairs."""
    results = [{**FIELD_DEFAULTS, **json.loads(Path(path).read_text())} for path in paths]
    order = sorted(range(len(paths)), key=lambda index: results[index]["first"])
    results, paths = [results[index] for index in order], [paths[index] for index in order]
    for path, result in zip(paths[1:], results[1:], strict=True):
        differing = [field for field in POOLED_FIELDS if result.get(field) != results[0].get(field)]
        if sorted(result["psnr_db"]) != sorted(results[0]["psnr_db"]):
            raise ValueError(
                f"--pool needs runs with the same references (--no-references skips them). "
                f"{path} has {sorted(result['psnr_db'])}, {paths[0]} "
                f"{sorted(results[0]['psnr_db'])}."
            )
        if differing:
            raise ValueError(
                f"--pool needs runs of the same model and settings. {path} differs from "
                f"{paths[0]} in {differing}: {[result.get(field) for field in differing]} "
                f"against {[results[0].get(field) for field in differing]}."
            )
    ranges = [
        (result["first"], result["first"] + result["pairs"], path)
        for result, path in zip(results, paths, strict=True)
    ]
    for (_, stop, earlier), (start, _, later) in zip(ranges[:-1], ranges[1:], strict=True):
        if start < stop:
            raise ValueError(
                f"--pool needs disjoint pairs. {earlier} ends at pair {stop - 1}, {later} "
                f"starts at pair {start}."
            )
    joined = {
        key: [value for result in results for value in result.get(key, [])]
        for key in ("theta_true", "theta_posterior_mean", "theta_pit", "theta_draws")
    }
    runs = {
        key: [value for result in results for value in result["psnr_db"][key]]
        for key in results[0]["psnr_db"]
    }
    pairs = sum(result["pairs"] for result in results)
    return {
        **{field: results[0].get(field) for field in POOLED_FIELDS},
        "pairs": pairs,
        "pair_ranges": [[start, stop - 1] for start, stop, _ in ranges],
        "pooled_from": [str(path) for path in paths],
        "theta_fixed_wrong": results[0]["theta_fixed_wrong"],
        **theta_figures(joined["theta_true"], joined["theta_posterior_mean"], joined["theta_pit"]),
        "theta_interval_90_width_mean": float(
            sum(r["theta_interval_90_width_mean"] * r["pairs"] for r in results) / pairs
        ),
        # runs written before the draws were kept have none
        **({"theta_draws": joined["theta_draws"]} if len(joined["theta_draws"]) == pairs else {}),
        **psnr_figures(runs),
        "diverged_unknown": int(sum(result["diverged_unknown"] for result in results)),
        **{
            key: None
            if any(result.get(key) is None for result in results)
            else int(sum(result[key] for result in results))
            for key in ("strays_unknown", "strays_known")
        },
        "unknown_seconds": float(sum(result["unknown_seconds"] for result in results)),
    }


def with_spread_scale(result: dict, validation: dict, source: Path) -> dict:
    """``result`` with theta's coverage after its draws are pushed from their mean by the
    spread scale fitted (:func:`bayesnoise.calibration.fit_spread_scale`, 50% and 90%
    intervals) on ``validation``, an earlier run on the validation split of the same model
    and settings: a post-hoc widening of theta's interval, never fitted on the pairs it is
    reported on."""
    validation = {**FIELD_DEFAULTS, **validation}
    differing = [
        field
        for field in POOLED_FIELDS
        if field not in ("split", "plug_in") and validation.get(field) != result.get(field)
    ]
    if validation["split"] != "validation" or differing or "theta_draws" not in validation:
        raise ValueError(
            f"--spread-scale-from needs a run on the validation split of the same model and "
            f"settings, with theta's draws. {source} is on split {validation['split']}, "
            f"differs in {differing}, has draws: {'theta_draws' in validation}."
        )
    if "theta_draws" not in result:
        raise ValueError("--spread-scale-from needs this run's theta draws (newer runs keep them).")
    scale, validation_coverage = fit_spread_scale(
        [
            (np.asarray(draws), np.float64(theta))
            for draws, theta in zip(
                validation["theta_draws"], validation["theta_true"], strict=True
            )
        ]
    )
    pit = [
        randomised_pit(scale_spread(np.asarray(draws), scale), np.float64(theta), seed=k)
        for k, (draws, theta) in enumerate(
            zip(result["theta_draws"], result["theta_true"], strict=True)
        )
    ]
    return {
        **result,
        "theta_spread_scale": {
            "scale": scale,
            "fitted_on": str(source),
            "validation_coverage_50_90": validation_coverage,
        },
        "theta_interval_90_coverage_scaled": float(interval_coverage(np.array(pit), (0.9,))[0]),
        "theta_interval_50_coverage_scaled": float(interval_coverage(np.array(pit), (0.5,))[0]),
        "theta_pit_scaled": [float(value) for value in pit],
    }


def write_result(result: dict, path: Path | None) -> None:
    """Print ``result`` as JSON and write it to ``path`` (atomically) when given."""
    text = json.dumps(result, indent=2)
    print(text)
    if path:
        atomic_write_bytes(path, (text + "\n").encode())


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="digits_unknown_mixing", help="a file in models/")
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument(
        "--first", type=int, default=0, help="test pairs first .. first + pairs - 1"
    )
    parser.add_argument(
        "--split",
        choices=["test", "validation", "heldout"],
        default="test",
        help="test: the model file's simulate(k); validation/heldout: analyses/splits.py's "
        "images (not shipped), mixed by the file's mix(x, n, seed) (digits model only)",
    )
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--conditioning", choices=CONDITIONINGS, default="point", help="of the theta updates"
    )
    parser.add_argument("--draws", type=int, help="draws per chain (default: the model file's)")
    parser.add_argument("--start-time", type=float, help="t0 (default: the model file's)")
    parser.add_argument("--steps", type=int, help="reverse steps (default: the model file's)")
    parser.add_argument(
        "--guidance-weight", type=float, help="the sampler's guidance weight (default: the file's)"
    )
    parser.add_argument(
        "--no-rescaling", action="store_true", help="drop the model file's RescalingMove"
    )
    parser.add_argument("--passes", type=int, help="reverse passes (default: the model file's)")
    parser.add_argument(
        "--references-from", type=Path, help="known/wrong-theta PSNRs from an earlier JSON"
    )
    parser.add_argument(
        "--wrong-from", type=Path, help="only the wrong-theta PSNRs from an earlier JSON"
    )
    parser.add_argument(
        "--no-stray-check", action="store_true", help="drop the model file's stray check"
    )
    parser.add_argument(
        "--no-references",
        action="store_true",
        help="skip the known- and wrong-theta runs (theta's figures and x's PSNR only)",
    )
    parser.add_argument(
        "--no-plug-in",
        action="store_true",
        help="drop the model file's plug-in pass (x at theta's posterior mean): one stage",
    )
    parser.add_argument(
        "--spread-scale-from",
        type=Path,
        help="a validation run's JSON: fit a spread scale of theta's draws there and report "
        "the coverage it gives here",
    )
    parser.add_argument(
        "--pool", type=Path, nargs="+", help="pool earlier JSONs (disjoint pairs); no sampling"
    )
    args = parser.parse_args()

    def calibrated(result):
        if args.spread_scale_from is None:
            return result
        try:
            validation = json.loads(args.spread_scale_from.read_text())
            return with_spread_scale(result, validation, args.spread_scale_from)
        except ValueError as error:
            parser.error(str(error))

    if args.pool:
        try:
            pooled = pool(args.pool)
        except ValueError as error:
            parser.error(str(error))
        write_result(calibrated(pooled), args.json)
        return 0
    module = load_model_file(MODELS / f"{args.model}.py")
    parameter = module.PARAMETER
    settings = {**module.defaults, "progress": False}
    update = settings.pop("parameter_update", ParameterUpdate())
    stray_check = settings.pop("stray_check", None)
    if args.no_stray_check:
        stray_check = None
    update = dataclasses.replace(update, conditioning=args.conditioning)
    if args.no_rescaling:
        update = dataclasses.replace(update, rescaling=None)
    if args.passes is not None:
        update = dataclasses.replace(update, num_passes=args.passes)
    if args.no_plug_in:
        update = dataclasses.replace(update, plug_in=False)
    overrides = {"num_draws": args.draws, "start_time": args.start_time, "num_steps": args.steps}
    settings.update({key: value for key, value in overrides.items() if value is not None})
    if args.guidance_weight is not None:
        options = {**settings.get("sampler_options", {}), "guidance_weight": args.guidance_weight}
        settings["sampler_options"] = options
    if args.first < 0 or args.pairs < 1:
        parser.error(f"--first must be >= 0 and --pairs >= 1. Got {args.first}, {args.pairs}.")
    pair_ids = range(args.first, args.first + args.pairs)
    if args.split == "test":
        simulated = [module.simulate(seed) for seed in pair_ids]
    elif args.model != "digits_unknown_mixing":
        parser.error(
            f"--split {args.split} needs the digits model (its file's mix(x, n, seed) mixes "
            f"the split's images). Got --model {args.model}."
        )
    else:
        images, digits = splits.digit_pairs(args.split, pair_ids.stop)
        seed_offset = splits.SPLITS[args.split][2]
        simulated = [module.mix(images[k], digits[k], seed_offset + k) for k in pair_ids]
    observations = np.stack([observation for observation, _ in simulated])
    truths = [truth["x"] for _, truth in simulated]
    thetas = np.array([truth[parameter] for _, truth in simulated], dtype=np.float64)
    wrong_theta = float(posterior_target(module.model).parameter_values[parameter])
    recorded = {key: value for key, value in settings.items() if key != "progress"}
    check_record = None
    if stray_check is not None:
        check_record = {
            name: getattr(stray_check, name) for name in ("tolerance", "num_times", "min_time")
        }
    if args.references_from is not None and args.wrong_from is not None:
        parser.error("Give --references-from or --wrong-from, not both.")
    if args.no_references and (args.references_from or args.wrong_from):
        parser.error("--no-references takes no --references-from or --wrong-from.")
    references = {}
    # the known-theta run must have had this run's stray check; the wrong-theta one may not
    for path, keys, same_check_needed in (
        (args.references_from, ("known", "fixed_at_prior_mean"), True),
        (args.wrong_from, ("fixed_at_prior_mean",), False),
    ):
        if path is None:
            continue
        earlier = {**FIELD_DEFAULTS, **json.loads(path.read_text())}
        if (
            (earlier["model"], earlier["settings"]) != (args.model, recorded)
            or (same_check_needed and earlier["stray_check"] != check_record)
            or earlier["first"] != 0
            or earlier["split"] != args.split
            or earlier["pairs"] < args.first + args.pairs
        ):
            parser.error(
                f"{path} must hold the same model, split, settings (and, for "
                f"--references-from, stray check) and at least as many pairs. Got "
                f"{earlier['model']}, split {earlier['split']}, {earlier['pairs']} pairs, "
                f"{earlier['settings']}, stray check {earlier['stray_check']}; this run: "
                f"{args.model}, split {args.split}, pairs {pair_ids.start}-"
                f"{pair_ids.stop - 1}, {recorded}, stray check {check_record}."
            )
        references.update(
            {key: earlier["psnr_db"][key][pair_ids.start : pair_ids.stop] for key in keys}
        )
    started = time.perf_counter()
    unknown = bn.sample(
        module.model, observations, parameter_update=update, stray_check=stray_check, **settings
    )
    unknown_seconds = time.perf_counter() - started
    known_strays = None
    if "known" not in references and not args.no_references:
        known_psnr, known_strays = [], 0
        for k, theta in enumerate(thetas):
            tree = bn.sample(
                module.fixed_model(theta), observations[k], stray_check=stray_check, **settings
            )
            draws = np.asarray(tree.posterior["x"]).reshape((-1,) + truths[k].shape)
            known_psnr.append(float(psnr(np.nanmean(draws, axis=0), truths[k])))
            if stray_check is not None:
                known_strays += int(tree.sample_stats["stray"].sum())
        references["known"] = known_psnr
    if "fixed_at_prior_mean" not in references and not args.no_references:
        wrong = bn.sample(
            module.fixed_model(wrong_theta), observations, stray_check=stray_check, **settings
        )
        references["fixed_at_prior_mean"] = posterior_mean_psnr(wrong, truths)
    runs = {"unknown": posterior_mean_psnr(unknown, truths), **references}
    result = {
        "model": args.model,
        "parameter": parameter,
        "split": args.split,
        "pairs": args.pairs,
        "first": args.first,
        "settings": recorded,
        "rescaling": None
        if update.rescaling is None
        else {
            name: getattr(update.rescaling, name)
            for name in ("half_width", "num_points", "time", "num_sweeps")
        },
        "num_passes": update.num_passes,
        "plug_in": update.plug_in,
        "stray_check": check_record,
        "references_from": None if args.references_from is None else str(args.references_from),
        "wrong_from": None if args.wrong_from is None else str(args.wrong_from),
        "theta_fixed_wrong": wrong_theta,
        **theta_summary(unknown, parameter, thetas),
        "conditioning": args.conditioning,
        **psnr_figures(runs),
        "diverged_unknown": int(unknown.sample_stats["diverging"].sum()),
        "strays_unknown": None if stray_check is None else int(unknown.sample_stats["stray"].sum()),
        "strays_known": known_strays,
        "parameter_acceptance_rate_mean": float(
            np.nanmean(unknown.sample_stats["parameter_acceptance_rate"])
        ),
        "unknown_seconds": unknown_seconds,
    }
    write_result(calibrated(result), args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
