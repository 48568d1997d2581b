"""Model files for real noise (stripes, moiré, deblurring through stripes): tuning and figures.

Models (``--model``): ``stripe_denoise``, ``moire_denoise``, ``deblur_stripes`` (see
``models/``). Splits (``splits.py``): ``validation`` (Fashion-MNIST test images 100-131, fresh
noise seeded 10 000 + i; settings are tuned here only), ``test`` (the model file's
``simulate(i)``: the 100 shipped test images, noise seeded i) and ``heldout`` (images
1000-1099, seeds 20 000 + i).

Figures: PSNR/SSIM against the truth x of the observation y (the input) and of the posterior
mean of x (its non-diverged draws), mean and sd over images; seconds per image (wall time of
``bn.sample``, compilation included, on whatever else the machine runs); divergences.

    python analyses/real_noise.py tune --model stripe_denoise --images 12
    python analyses/real_noise.py evaluate --model stripe_denoise --split test
    python analyses/real_noise.py evaluate --model stripe_denoise --split heldout
    python analyses/real_noise.py evaluate --model stripe_denoise --split test --white-noise

``--white-noise`` is the ablation the method paper calls ignoring the structure: the same signal
prior, operator and sampler settings, with the noise prior replaced by independent Gaussian
pixels of the structured noise's per-pixel mean and variance (500 draws of ``observe``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
from splits import REAL_NOISE_MODELS, pairs

import bayesnoise as bn
from bayesnoise.atomic import atomic_write_bytes
from bayesnoise.metrics import psnr, ssim

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "analyses" / "figures"

# Searched on the validation split: the two few-step samplers that did best on the other
# learned-prior models (analyses/quality_vs_nfe.py), a few guidance weights and start times.
GRID = {
    "ddim_dps": {"guidance_weight": [2.0, 4.0, 8.0], "eta": [1.0]},
    "ddim_pigdm": {"covariance": ["scalar"], "guidance_weight": [1.0, 2.0], "eta": [1.0]},
}
START_TIMES = [0.4, 0.6]


def scores(estimates: np.ndarray, truths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-image PSNR and SSIM (data range 1) of ``estimates`` against ``truths``."""
    pairs_ = list(zip(estimates, truths, strict=True))
    return (
        np.array([psnr(e, t, data_range=1.0) for e, t in pairs_]),
        np.array([ssim(e, t, data_range=1.0) for e, t in pairs_]),
    )


def run(model, x, y, setting: dict, num_chains: int, num_draws: int, batch: int, label: str):
    """Sample every observation with ``setting``; per-image figures and the time it took."""
    means, diverged, seconds = [], 0, 0.0
    for start in range(0, len(y), batch):
        started = time.perf_counter()
        tree = bn.sample(
            model,
            y[start : start + batch],
            sampler=setting["sampler"],
            sampler_options=setting["sampler_options"],
            num_chains=num_chains,
            num_draws=num_draws,
            num_steps=setting["num_steps"],
            start_time=setting["start_time"],
            seed=0,
            progress=False,
        )
        seconds += time.perf_counter() - started
        draws = np.asarray(tree.posterior["x"])  # (chain, draw, image, 28, 28, 1)
        diverged += int(np.asarray(tree.sample_stats["diverging"]).sum())
        draws = draws.reshape(-1, *draws.shape[2:])
        means.append(np.nanmean(draws, axis=0))  # diverged draws are NaN: left out
        done = start + len(draws[0])
        print(f"{label}: {done}/{len(y)} images, {seconds / done:.1f} s/image", flush=True)
    mean = np.concatenate(means)
    estimated = np.isfinite(mean).all(axis=(1, 2, 3))
    posterior_psnr, posterior_ssim = scores(mean[estimated], x[estimated])
    return posterior_psnr, posterior_ssim, seconds / len(y), diverged, int((~estimated).sum())


def summary(values: np.ndarray) -> dict:
    return {"mean": float(np.mean(values)), "sd": float(np.std(values))}


def settings_grid(grid: dict, start_times: list[float], steps: list[int]):
    for sampler, options in grid.items():
        for values in itertools.product(*options.values()):
            for start_time, num_steps in itertools.product(start_times, steps):
                yield {
                    "sampler": sampler,
                    "sampler_options": dict(zip(options, values, strict=True)),
                    "start_time": start_time,
                    "num_steps": num_steps,
                }


def tune(args):
    module, x, _, y = pairs(args.model, "validation", args.images)
    input_psnr, _ = scores(y, x)
    grid = json.loads(args.grid) if args.grid else GRID
    path = FIGURES / f"real_noise_tune_{args.model}.json"
    previous = json.loads(path.read_text()) if path.exists() else {"rows": []}
    rows = previous["rows"]
    for setting in settings_grid(grid, args.start_times or START_TIMES, args.steps):
        label = json.dumps(setting)
        psnrs, ssims, seconds, diverged, missing = run(
            module.model, x, y, setting, args.chains, args.draws, args.batch, label
        )
        row = {
            **setting,
            "psnr_db": summary(psnrs),
            "ssim": summary(ssims),
            "input_psnr_db": summary(input_psnr),
            "seconds_per_image": seconds,
            "diverged": diverged,
            "images_without_estimate": missing,
            "num_images": len(x),
            "trajectories_per_image": args.chains * args.draws,
        }
        print(json.dumps(row), flush=True)
        rows = [r for r in rows if _key(r) != _key(row)] + [row]
        usable = [r for r in rows if r["diverged"] == 0 and r["num_images"] == len(x)]
        best = max(usable, key=lambda r: r["psnr_db"]["mean"]) if usable else None
        atomic_write_bytes(path, json.dumps({"rows": rows, "best": best}, indent=1).encode())
    print(json.dumps(best, indent=1))


def _key(row: dict) -> str:
    fields = ("sampler", "sampler_options", "start_time", "num_steps", "num_images")
    return json.dumps({name: row[name] for name in fields}, sort_keys=True)


def white_noise_model(module, num_draws: int = 500):
    """The model file's model with its noise prior replaced by white Gaussian noise of the
    same per-pixel mean and variance (estimated from ``num_draws`` draws of ``observe``)."""
    zeros = np.zeros(module.SHAPE, np.float32)
    draws = np.stack([module.observe(zeros, 50_000 + k)[1] for k in range(num_draws)])
    white = bn.GaussianPrior(
        module.SHAPE, module.signal_prior.sde, mean=draws.mean(0), variance=draws.var(0)
    )
    return bn.joint_model(
        module.signal_prior,
        white,
        signal_operator=getattr(module, "blur", None),
        measurement_std=0.01,
    )


def evaluate(args):
    module, x, _, y = pairs(args.model, args.split, args.images)
    model = white_noise_model(module) if args.white_noise else module.model
    defaults = module.defaults
    setting = {
        name: defaults[name] for name in ("sampler", "sampler_options", "start_time", "num_steps")
    }
    chains = args.chains or defaults["num_chains"]
    draws = args.draws or defaults["num_draws"]
    input_psnr, input_ssim = scores(y, x)
    suffix = "_white" if args.white_noise else ""
    label = f"{args.model}{suffix} {args.split}"
    psnrs, ssims, seconds, diverged, missing = run(
        model, x, y, setting, chains, draws, args.batch, label
    )
    result = {
        "model": args.model,
        "noise_prior": "white Gaussian, same per-pixel moments" if args.white_noise else "model's",
        "split": args.split,
        "num_images": len(x),
        "trajectories_per_image": chains * draws,
        "setting": setting,
        "input": {"psnr_db": summary(input_psnr), "ssim": summary(input_ssim)},
        "posterior_mean": {"psnr_db": summary(psnrs), "ssim": summary(ssims)},
        "improvement_db": float(np.mean(psnrs) - np.mean(input_psnr[: len(psnrs)]))
        if missing == 0
        else None,
        "images_beaten": int(np.sum(psnrs > input_psnr)) if missing == 0 else None,
        "seconds_per_image": seconds,
        "diverged_trajectories": diverged,
        "images_without_estimate": missing,
        "per_image": {"input_psnr_db": input_psnr.tolist(), "psnr_db": psnrs.tolist()},
    }
    path = FIGURES / f"real_noise_{args.model}_{args.split}{suffix}.json"
    atomic_write_bytes(path, json.dumps(result, indent=1).encode())
    print(json.dumps({k: v for k, v in result.items() if k != "per_image"}, indent=1))


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["tune", "evaluate"])
    parser.add_argument("--model", required=True, choices=REAL_NOISE_MODELS)
    parser.add_argument("--split", default="test", choices=["validation", "test", "heldout"])
    parser.add_argument("--images", type=int, help="default: 12 (tune), 100 (evaluate)")
    parser.add_argument("--chains", type=int, help="default: 2 (tune), the model file's")
    parser.add_argument("--draws", type=int, help="default: 2 (tune), the model file's")
    parser.add_argument("--batch", type=int, default=12, help="images per bn.sample call")
    parser.add_argument("--grid", help="tune: JSON {sampler: {option: [values]}} replacing GRID")
    parser.add_argument("--start-times", type=float, nargs="+", help="tune: t0 values")
    parser.add_argument("--steps", type=int, nargs="+", default=[25], help="tune: num_steps")
    parser.add_argument(
        "--white-noise", action="store_true", help="evaluate: white Gaussian noise prior instead"
    )
    args = parser.parse_args()
    if args.mode == "tune":
        args.images, args.chains, args.draws = args.images or 12, args.chains or 2, args.draws or 2
        if args.split != "test":
            parser.error("tune always runs on the validation split; drop --split.")
        tune(args)
    else:
        args.images = args.images or 100
        evaluate(args)


if __name__ == "__main__":
    main()
