"""Does a stray check help a model file whose forward model is known? x's PSNR per tolerance.

    python analyses/stray_tolerance.py --model cs_sine [--pairs 32] [--first K] [--json F]

On VALIDATION pairs (``analyses/splits.py``: Fashion-MNIST test images 100-131 with the model
file's noise at seeds 10 000 + k, or held-out digits 100-131), never test pairs: one run of
``bn.sample(model, y, **defaults)`` with every trajectory's end-point log density recorded
(:class:`bayesnoise.stray.StrayCheck` with an infinite tolerance), then for each tolerance the
trajectories within it of their image's best are averaged: the mean PSNR of x's posterior mean
(clipped to [0, 1], as ``analyses/compare.py``) and the fraction kept. For models with unknown
parameters, ``analyses/parameter_diagnostics.py stray-tolerance`` also scores theta.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import time
from pathlib import Path

import numpy as np
import splits
from unknown_parameters import write_result

import bayesnoise as bn
from bayesnoise.metrics import psnr
from bayesnoise.stray import StrayCheck, strays

TOLERANCES = (10.0, 25.0, 50.0, 100.0, 150.0, 200.0, 300.0, 500.0, math.inf)


def tolerance_rows(truths, draws, densities, diverged) -> list[dict]:
    """Per tolerance, x's PSNR with the kept trajectories. ``draws`` (trajectory, image, ...),
    ``densities`` and ``diverged`` (trajectory, image)."""
    rows = []
    for tolerance in TOLERANCES:
        kept = ~diverged & ~np.asarray(strays(densities.T, diverged.T, tolerance)).T
        psnrs = [
            float(psnr(np.clip(draws[kept[:, k], k].mean(axis=0), 0.0, 1.0), truth))
            for k, truth in enumerate(truths)
        ]
        rows.append(
            {
                "tolerance": tolerance if math.isfinite(tolerance) else "inf",
                "psnr_mean_db": float(np.mean(psnrs)),
                "psnr_db": psnrs,
                "kept_fraction": float(kept.mean()),
            }
        )
        print(
            f"tolerance {tolerance:>6}: x {rows[-1]['psnr_mean_db']:.2f} dB, "
            f"kept {kept.mean():.2f}",
            flush=True,
        )
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="a file in models/ without parameters")
    parser.add_argument("--pairs", type=int, default=32)
    parser.add_argument("--first", type=int, default=0, help="validation pairs first, ...")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    if args.first < 0 or args.pairs < 1 or args.first + args.pairs > 32:
        parser.error(
            f"--first and --pairs must pick validation pairs within 0-31. "
            f"Got --first {args.first}, --pairs {args.pairs}."
        )
    module, x, _, y = splits.pairs(args.model, "validation", args.first + args.pairs)
    x, y = x[args.first :], y[args.first :]
    settings = {**module.defaults, "progress": False}
    check = settings.pop("stray_check", None) or StrayCheck()
    check = dataclasses.replace(check, tolerance=math.inf)
    if "parameter_update" in settings:  # the joint pass's end points, no plug-in pass after it
        settings["parameter_update"] = dataclasses.replace(
            settings["parameter_update"], plug_in=False
        )
    started = time.perf_counter()
    tree = bn.sample(module.model, y, stray_check=check, **settings)
    seconds = time.perf_counter() - started
    num_pairs = len(x)
    densities = np.asarray(tree.sample_stats["end_point_log_density"]).reshape(-1, num_pairs)
    diverged = np.asarray(tree.sample_stats["diverging"]).reshape(-1, num_pairs)
    draws = np.asarray(tree.posterior["x"]).reshape((-1, num_pairs) + x.shape[1:])
    result = {
        "model": args.model,
        "split": "validation",
        "first": args.first,
        "pairs": num_pairs,
        "settings": {key: value for key, value in settings.items() if key != "progress"},
        "seconds": seconds,
        "rows": tolerance_rows(x, draws, densities, diverged),
    }
    write_result(result, args.json)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
