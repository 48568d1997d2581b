"""An unknown mixing weight: digits on clothing mixed as y = (1 - alpha) x + alpha n.

    python analyses/unknown_parameters.py [--pairs 16] [--json out.json] [--conditioning point]
        [--draws N] [--start-time T0] [--steps N]

Held-out pair k of the shipped test set is mixed with alpha_k ~ U(0.3, 0.7)
(``models/digits_unknown_mixing.py``'s ``simulate(k)``) and sampled three ways with the model
file's defaults (DDIM steps with joint DPS, 50 steps from t0 = 0.4, 2 x 4 draws; the options
override them, for all three runs alike): alpha unknown with a
Beta(2, 2) prior (sampled jointly, :mod:`bayesnoise.parameters`), alpha known (the true
alpha_k), and alpha fixed at a wrong 0.5. Reported: the error of alpha's posterior mean, the
coverage of its central 90% interval, and the PSNR of x's posterior mean for each run.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import bayesnoise as bn
from bayesnoise.atomic import atomic_write_bytes
from bayesnoise.calibration import interval_coverage, randomised_pit
from bayesnoise.metrics import psnr
from bayesnoise.model_file import load_model_file
from bayesnoise.parameters import CONDITIONINGS, ParameterUpdate

MODEL_FILE = Path(__file__).resolve().parents[1] / "models" / "digits_unknown_mixing.py"


def posterior_mean_psnr(tree, truths):
    """PSNR of each image's posterior mean of x (non-diverged draws) against its truth."""
    draws = np.asarray(tree.posterior["x"])  # (chain, draw, image, ...)
    draws = draws.reshape((-1,) + draws.shape[2:])
    return [float(psnr(np.nanmean(draws[:, k], axis=0), truth)) for k, truth in enumerate(truths)]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=16)
    parser.add_argument("--json", type=Path)
    parser.add_argument(
        "--conditioning", choices=CONDITIONINGS, default="point", help="of the theta updates"
    )
    parser.add_argument("--draws", type=int, help="draws per chain (default: the model file's)")
    parser.add_argument("--start-time", type=float, help="t0 (default: the model file's)")
    parser.add_argument("--steps", type=int, help="reverse steps (default: the model file's)")
    args = parser.parse_args()
    module = load_model_file(MODEL_FILE)
    settings = {**module.defaults, "progress": False}
    overrides = {"num_draws": args.draws, "start_time": args.start_time, "num_steps": args.steps}
    settings.update({name: value for name, value in overrides.items() if value is not None})
    simulated = [module.simulate(seed) for seed in range(args.pairs)]
    observations = np.stack([observation for observation, _ in simulated])
    truths = [truth["x"] for _, truth in simulated]
    alphas = np.array([truth["alpha"] for _, truth in simulated], dtype=np.float64)

    def fixed_mixing(alpha):
        return bn.joint_model(
            module.signal_prior, module.noise_prior, mixing=float(alpha), measurement_std=0.01
        )

    started = time.perf_counter()
    update = ParameterUpdate(conditioning=args.conditioning)
    unknown = bn.sample(module.model, observations, parameter_update=update, **settings)
    unknown_seconds = time.perf_counter() - started
    alpha_draws = np.asarray(unknown.posterior["alpha"]).reshape(-1, args.pairs)
    alpha_mean = np.nanmean(alpha_draws, axis=0)
    lower, upper = np.nanquantile(alpha_draws, [0.05, 0.95], axis=0)
    # Coverage of the central 90% interval from the rank of the truth among the draws
    # (randomised PIT: exact for any number of draws; sample quantiles of few draws undercover).
    pit = np.array(
        [
            randomised_pit(column[np.isfinite(column)], np.float64(alpha), seed=k)
            for k, (column, alpha) in enumerate(zip(alpha_draws.T, alphas, strict=True))
        ]
    )
    wrong = bn.sample(fixed_mixing(0.5), observations, **settings)
    known_psnr = []
    for k, alpha in enumerate(alphas):
        tree = bn.sample(fixed_mixing(alpha), observations[k], **settings)
        draws = np.asarray(tree.posterior["x"]).reshape((-1,) + truths[k].shape)
        known_psnr.append(float(psnr(np.nanmean(draws, axis=0), truths[k])))
    runs = {
        "unknown_alpha": posterior_mean_psnr(unknown, truths),
        "known_alpha": known_psnr,
        "fixed_alpha_0.5": posterior_mean_psnr(wrong, truths),
    }
    result = {
        "pairs": args.pairs,
        "settings": {key: value for key, value in settings.items() if key != "progress"},
        "alpha_true": alphas.tolist(),
        "alpha_posterior_mean": alpha_mean.tolist(),
        "alpha_abs_error_mean": float(np.mean(np.abs(alpha_mean - alphas))),
        "alpha_abs_error_max": float(np.max(np.abs(alpha_mean - alphas))),
        "alpha_interval_90_width_mean": float(np.mean(upper - lower)),
        "alpha_interval_90_coverage": float(interval_coverage(pit, (0.9,))[0]),
        "alpha_pit": pit.tolist(),
        "conditioning": args.conditioning,
        "psnr_mean_db": {name: float(np.mean(values)) for name, values in runs.items()},
        "psnr_std_db": {name: float(np.std(values)) for name, values in runs.items()},
        "psnr_db": runs,
        "diverged_unknown_alpha": int(unknown.sample_stats["diverging"].sum()),
        "parameter_acceptance_rate_mean": float(
            np.nanmean(unknown.sample_stats["parameter_acceptance_rate"])
        ),
        "unknown_alpha_seconds": unknown_seconds,
    }
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        atomic_write_bytes(args.json, (text + "\n").encode())
    return 0


if __name__ == "__main__":
    sys.exit(main())
