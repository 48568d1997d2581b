"""Remove digits from clothing: PSNR/SSIM on held-out (Fashion-MNIST, digit) pairs.

    python analyses/remove_digits.py [--images 100] [--draws 4] [--steps 100] [--start-time 0.6]

For each held-out pair of the shipped test set, y = 0.5 x + 0.5 n. The posterior mean of x
(over ``--draws`` trajectories) is scored against x with PSNR and SSIM (data range 1), for
the joint samplers (learned signal and digit priors) and for the single-prior Gaussian-noise
baseline: the same signal prior with the digits modelled as Gaussian noise with the per-pixel
mean and variance of the 4 000 training digits.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

import bayesnoise as bn
from bayesnoise.data import load_testset, mnist_5k_split
from bayesnoise.metrics import metric_summary, psnr, ssim
from bayesnoise.model_file import load_model_file

MODEL_FILE = Path(__file__).resolve().parents[1] / "models" / "digits_on_fashion.py"


def gaussian_noise_baseline(module):
    """The same problem with the digits modelled as a (mean-corrected) Gaussian."""
    digits = mnist_5k_split()[0][0]
    noise = bn.GaussianPrior(
        digits.shape[1:],
        module.signal_prior.sde,
        mean=digits.mean(0),
        variance=np.maximum(digits.var(0), 1e-4),
    )
    return bn.joint_model(
        module.signal_prior,
        noise,
        signal_operator=module.mixing,
        noise_operator=module.mixing,
        measurement_std=0.01,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--draws", type=int, default=4)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--start-time", type=float, default=0.6, help="t0 (see the model file)")
    parser.add_argument("--samplers", nargs="+", default=["pigdm", "data_consistency", "dps"])
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    module = load_model_file(MODEL_FILE)
    testset = load_testset()
    truth = testset["fashion"][: args.images]
    observations = 0.5 * truth + 0.5 * testset["digits"][: args.images]
    options = {
        "pigdm": {"covariance": "scalar"},
        "data_consistency": {"guidance_weight": {"x": 0.5, "n": 0.5}},
        "dps": {"guidance_weight": {"x": 1.0, "n": 1.0}},
        "pseudo_inverse": {"guidance_weight": {"x": 0.5, "n": 0.5}},
    }
    runs = [(f"joint {name}", module.model, name) for name in args.samplers]
    runs.append(("Gaussian-noise baseline (pigdm)", gaussian_noise_baseline(module), "pigdm"))
    results = {}
    for label, model, sampler in runs:
        started = time.perf_counter()
        tree = bn.sample(
            model,
            observations,
            sampler=sampler,
            sampler_options=options[sampler],
            num_chains=1,
            num_draws=args.draws,
            num_steps=args.steps,
            start_time=args.start_time,
            seed=0,
            progress=sys.stderr.isatty(),
        )
        seconds = time.perf_counter() - started
        draws = np.asarray(tree.posterior["x"])[0]  # (draw, image, 28, 28, 1)
        mean = np.clip(np.nanmean(draws, axis=0), 0.0, 1.0)
        results[label] = {
            "sampler": sampler,
            "options": options[sampler],
            "psnr": metric_summary(psnr(mean, truth, batch=True)),
            "ssim": metric_summary(ssim(mean, truth, batch=True)),
            "observation_psnr": metric_summary(
                psnr(np.clip(observations, 0, 1), truth, batch=True)
            ),
            "diverged": int(tree.sample_stats["diverging"].sum()),
            "seconds": seconds,
        }
        r = results[label]
        print(
            f"{label:34s} PSNR {r['psnr']['mean']:6.2f} ± {r['psnr']['std']:.2f} dB   "
            f"SSIM {r['ssim']['mean']:.3f} ± {r['ssim']['std']:.3f}   "
            f"({args.images} images, {args.draws} draws, {args.steps} steps from t0 = "
            f"{args.start_time}, {seconds:.0f} s, "
            f"{r['diverged']} diverged)",
            flush=True,
        )
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
