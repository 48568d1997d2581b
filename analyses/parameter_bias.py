"""How far the theta updates are from exact, on linear-Gaussian problems solved by quadrature.

    python analyses/parameter_bias.py [--sizes 8 32] [--seeds 1 2 3 4] [--trajectories 256]

y = (1 - alpha) x + alpha n + eps with a smooth Gaussian x, AR(1) Gaussian n (d = size),
measurement std 0.05, alpha ~ Beta(2, 2) and true alpha 0.3 (``tests/test_parameters.py``'s
problem at other sizes). p(alpha | y) is computed by quadrature over alpha (1 000 cells,
closed form in (x, n) given alpha: ``bayesnoise.reference.parameter_posterior_by_quadrature``);
the sampler (PiGDM with exact scores, 200 steps, both conditionings of
``ParameterUpdate``) gives alpha's posterior mean and sd over its trajectories. Printed per
(size, seed, conditioning): the z-score of alpha's mean, (mean - exact) / (exact sd /
sqrt(trajectories)), and the ratio of its sd to the exact one. One JSON object per line.
"""

from __future__ import annotations

import argparse
import json

import jax
import numpy as np
import numpyro.distributions as dist
from numpyro import handlers

import bayesnoise as bn
from bayesnoise.parameters import CONDITIONINGS, ParameterUpdate
from bayesnoise.reference import parameter_posterior_by_quadrature
from bayesnoise.target import posterior_target

SDE = bn.VPSDE(beta_min=0.1, beta_max=20.0)
TRUE_MIXING, MEASUREMENT_STD = 0.3, 0.05
MIXING_GRID = np.linspace(0.0005, 0.9995, 1000)


def unknown_mixing_model(size: int):
    """y = (1 - alpha) x + alpha n + eps, alpha ~ Beta(2, 2); smooth x, AR(1) n."""
    points = np.arange(size)
    smooth = 0.3**2 * np.exp(-0.5 * (points[:, None] - points[None]) ** 2 / 2.0**2)
    signal = bn.GaussianPrior((size,), SDE, mean=0.5, covariance=smooth + 1e-3 * np.eye(size))
    lags = np.abs(points[:, None] - points[None])
    noise = bn.GaussianPrior((size,), SDE, covariance=0.04 * 0.7**lags)
    return bn.joint_model(
        signal, noise, measurement_std=MEASUREMENT_STD, mixing=dist.Beta(2.0, 2.0)
    )


def simulated_observation(model, seed: int) -> np.ndarray:
    """y drawn from the model with alpha = TRUE_MIXING."""
    target = posterior_target(handlers.condition(model, data={"alpha": TRUE_MIXING}))
    keys = jax.random.split(jax.random.key(seed), 3)
    x, n = (
        prior.sample(key, 0.0) for prior, key in zip(target.priors.values(), keys[1:], strict=True)
    )
    mean = target.predicted_observation({"x": x, "n": n})
    return np.asarray(mean + MEASUREMENT_STD * jax.random.normal(keys[0], mean.shape))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[8, 32])
    parser.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3, 4])
    parser.add_argument("--trajectories", type=int, default=256)
    parser.add_argument("--steps", type=int, default=200)
    args = parser.parse_args()
    for size in args.sizes:
        model = unknown_mixing_model(size)
        for seed in args.seeds:
            y = simulated_observation(model, seed)
            _, moments = parameter_posterior_by_quadrature(model, y, "alpha", MIXING_GRID)
            exact_mean, exact_variance = (float(np.squeeze(v)) for v in moments["alpha"])
            for conditioning in CONDITIONINGS:
                tree = bn.sample(
                    model,
                    y,
                    sampler="pigdm",
                    num_chains=1,
                    num_draws=args.trajectories,
                    num_steps=args.steps,
                    seed=seed,
                    parameter_update=ParameterUpdate(conditioning=conditioning),
                    progress=False,
                )
                alpha = np.asarray(tree.posterior["alpha"]).ravel()
                alpha = alpha[np.isfinite(alpha)]
                standard_error = np.sqrt(exact_variance / len(alpha))
                row = {
                    "size": size,
                    "seed": seed,
                    "conditioning": conditioning,
                    "alpha_exact_mean": exact_mean,
                    "alpha_exact_sd": float(np.sqrt(exact_variance)),
                    "alpha_mean": float(alpha.mean()),
                    "alpha_sd": float(alpha.std(ddof=1)),
                    "z_mean": float((alpha.mean() - exact_mean) / standard_error),
                    "sd_ratio": float(alpha.std(ddof=1) / np.sqrt(exact_variance)),
                    "trajectories": int(len(alpha)),
                }
                print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
