"""Measure every kernel's error against the exact posterior on the Gaussian test problems.

For each (kernel, problem): the RMS over elements of (sampler mean - exact mean) / exact sd,
and the range of sampler variance / exact variance, from N = chains x draws independent
trajectories. Monte Carlo noise alone gives an RMS standardised mean error of about
1 / sqrt(N) and variance ratios within about 1 +- 3 sqrt(2 / N).

    python analyses/approximation_error.py [--trajectories 1024] [--steps 200] [--json out.json]
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from gaussian_problems import PROBLEMS, observation_of  # noqa: E402

import bayesnoise as bn  # noqa: E402
from bayesnoise.reference import gaussian_posterior  # noqa: E402

SETTINGS = {
    "pigdm": {},
    "pigdm (scalar covariance)": {"covariance": "scalar"},
    "predictor_corrector": {"signal_to_noise": 0.01},
    "annealed_langevin": {"step_size": 0.2, "steps_per_level": 3},
    "dps": {"guidance_weight": {"x": 0.2, "n": 0.2}},
    "data_consistency": {"guidance_weight": {"x": 0.5, "n": 0.5}},
    "pseudo_inverse": {"guidance_weight": {"x": 0.5, "n": 0.5}},
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trajectories", type=int, default=1024)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--spacing", default="quadratic", choices=["uniform", "quadratic"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rows = []
    print(f"{'kernel':28s} {'problem':20s} {'site':4s} {'mean err (sd)':>13s} {'var ratio':>13s}")
    for label, options in SETTINGS.items():
        sampler = label.split(" ")[0]
        for problem, model in sorted(PROBLEMS.items()):
            observation = observation_of(model)
            started = time.perf_counter()
            tree = bn.sample(
                model,
                observation,
                sampler=sampler,
                sampler_options=options,
                num_chains=8,
                num_draws=args.trajectories // 8,
                num_steps=args.steps,
                time_spacing=args.spacing,
                seed=11,
                progress=False,
            )
            seconds = time.perf_counter() - started
            for name, (mean, covariance) in gaussian_posterior(model, observation).items():
                draws = np.asarray(tree.posterior[name]).reshape(args.trajectories, -1)
                sd = np.sqrt(np.diag(covariance))
                mean_error = float(np.sqrt(np.mean(((draws.mean(0) - mean) / sd) ** 2)))
                ratio = draws.var(0, ddof=1) / sd**2
                rows.append(
                    {
                        "kernel": label,
                        "problem": problem,
                        "site": name,
                        "rms_standardised_mean_error": mean_error,
                        "variance_ratio_min": float(ratio.min()),
                        "variance_ratio_max": float(ratio.max()),
                        "diverged": int(tree.sample_stats["diverging"].sum()),
                        "seconds": seconds,
                    }
                )
                print(
                    f"{label:28s} {problem:20s} {name:4s} {mean_error:13.3f} "
                    f"{ratio.min():6.2f}-{ratio.max():<6.2f}",
                    flush=True,
                )
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
