"""A check of the CS ceiling: split-Gibbs posterior sampling (Wu et al. 2024, PnP-DM; Xu & Chi
2024, DPnP) for ``models/cs_sine.py`` with the analytic noise marginalised exactly.

With Sigma = diag(std_n^2) + 0.01^2 I (the sinusoidal prior plus the measurement std), it
alternates, for a coupling rho annealed from ``--rho-max`` to ``--rho-min``:

    z | x, y ~ N(y; A z, Sigma) N(z; x, rho^2 I)   exact Gaussian (eigenvectors of A^T Sigma^-1 A)
    x | z    ~ p(x) N(z; x, rho^2 I)               ancestral DDPM steps of the signal prior from
                                                    the time where s_t / a_t = rho, x_t = a_t z

Asymptotically exact (rho -> 0, a perfect score); no guidance approximation, forward passes
only. Prints one JSON line: PSNR of the posterior mean over ``--chains`` and of one chain.

    python analyses/cs_split_gibbs.py --images 32 --chains 8 --levels 40 --inner 5
"""

from __future__ import annotations

import argparse
import json
import time

import jax
import jax.numpy as jnp
import numpy as np
from splits import pairs

from bayesnoise.metrics import psnr
from bayesnoise.samplers.integrators.ddim import ddim_move


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=32)
    parser.add_argument("--chains", type=int, default=8)
    parser.add_argument("--levels", type=int, default=40, help="annealing levels of rho")
    parser.add_argument("--inner", type=int, default=5, help="DDPM steps per prior step")
    parser.add_argument("--rho-max", type=float, default=1.0)
    parser.add_argument("--rho-min", type=float, default=0.05)
    parser.add_argument("--final", type=int, default=0, help="extra iterations at rho-min")
    parser.add_argument("--split", default="validation", choices=["validation", "test", "heldout"])
    args = parser.parse_args(argv)

    module, x_true, _, y = pairs("cs_sine", args.split, args.images)
    prior, sde = module.signal_prior, module.signal_prior.sde
    matrix = np.asarray(module.measurement.matrix, np.float64)
    variance = np.asarray(module.noise_std, np.float64) ** 2 + 0.01**2
    eigenvalues, eigenvectors = np.linalg.eigh(matrix.T @ (matrix / variance[:, None]))
    eigenvalues = jnp.asarray(np.clip(eigenvalues, 0.0, None), jnp.float32)
    eigenvectors = jnp.asarray(eigenvectors, jnp.float32)
    back_projected = jnp.asarray((y.reshape(len(y), -1) / variance) @ matrix, jnp.float32)

    grid = np.linspace(1e-3, 1.0, 20_000)
    ratio = np.asarray(sde.marginal_std(grid) / sde.marginal_mean_coefficient(grid))

    def likelihood_step(key, x, back_projected, rho):
        precision = eigenvalues + 1.0 / rho**2
        mean = eigenvectors @ ((eigenvectors.T @ (back_projected + x.ravel() / rho**2)) / precision)
        noise = eigenvectors @ (jax.random.normal(key, precision.shape) / jnp.sqrt(precision))
        return (mean + noise).reshape(x.shape)

    def prior_step(key, z, start_time):
        times = jnp.linspace(start_time, 0.0, args.inner + 1)
        x_t = sde.marginal_mean_coefficient(start_time) * z
        for step in range(args.inner):  # the last step returns Tweedie's x0
            key, move_key = jax.random.split(key)
            score = {"x": prior.score(x_t, times[step])}
            x_t = ddim_move(move_key, {"x": x_t}, score, times[step], times[step + 1], sde, 1.0)
            x_t = x_t["x"]
        return x_t

    def iteration(key, x, back_projected, rho, start_time):
        likelihood_key, prior_key = jax.random.split(key)
        z = likelihood_step(likelihood_key, x, back_projected, rho)
        return prior_step(prior_key, z, start_time)

    over_chains = jax.vmap(iteration, (0, 0, None, None, None))
    batched = jax.jit(jax.vmap(over_chains, (0, 0, 0, None, None)))
    num_images, num_chains = len(y), args.chains
    x = jnp.full((num_images, num_chains, *x_true.shape[1:]), 0.3, jnp.float32)
    rhos = [*np.geomspace(args.rho_max, args.rho_min, args.levels), *[args.rho_min] * args.final]
    key = jax.random.key(0)
    started = time.perf_counter()
    for rho in rhos:  # a Python loop: XLA runs convolutions in a scan slowly on CPU
        key, level_key = jax.random.split(key)
        keys = jax.random.split(level_key, num_images * num_chains).reshape(num_images, -1)
        start_time = jnp.float32(np.interp(rho, ratio, grid))
        x = batched(keys, x, back_projected, jnp.float32(rho), start_time)
    seconds = time.perf_counter() - started
    draws = np.asarray(x)
    finite = np.isfinite(draws).all(axis=(2, 3, 4))
    means = np.stack([draws[i][finite[i]].mean(0) for i in range(num_images)])
    result = {
        **vars(args),
        "psnr_posterior_mean": float(psnr(np.clip(means, 0, 1), x_true, batch=True).mean()),
        "psnr_one_chain": float(psnr(np.clip(draws[:, 0], 0, 1), x_true, batch=True).mean()),
        "evaluations_per_prior": len(rhos) * args.inner,
        "seconds_per_image": seconds / num_images,
        "nonfinite_chains": int((~finite).sum()),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    main()
