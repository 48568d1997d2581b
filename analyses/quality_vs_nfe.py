"""Quality against network evaluations: PSNR/SSIM of the posterior mean for few-step samplers.

Models (``--model``): ``digits_on_fashion`` (y = 0.5 x + 0.5 n), ``cs_sine`` (y = A x + n_sine,
d/m = 2) and ``sine_denoise`` (y = x + n_sine). Splits (``validation`` for
tuning, ``test`` = the 100 shipped pairs, ``heldout`` = 100 pairs not shipped): see ``splits.py``.

A forward pass of one prior's network is one evaluation; Heun's second-order step counts two.
DPS and PiGDM also take one VJP per evaluation; proximal (DiffPIR) and Algorithm 1 none.

    python analyses/quality_vs_nfe.py tune --images 8       # on validation
    python analyses/quality_vs_nfe.py study --split test --images 32 \
        --samplers dps ddim_dps diffpir --nfe 10 25 50
    python analyses/quality_vs_nfe.py study --split test --images 32 \
        --samplers dps:default --nfe 25 50 200
"""

from __future__ import annotations

import argparse
import itertools
import json
import time
from pathlib import Path

import numpy as np
from splits import MODELS, pairs

import bayesnoise as bn
from bayesnoise.metrics import psnr, ssim
from bayesnoise.model_file import load_model_file

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "analyses" / "figures"

# Hyper-parameter grids searched on the validation split (at 25 evaluations per prior).
GRIDS = {
    "dps": {"guidance_weight": [4.0, 8.0, 16.0]},
    "ddim_dps": {
        "guidance_weight": [3.0, 4.0, 6.0, {"x": 4.0, "n": 8.0}, {"x": 8.0, "n": 4.0}],
        "eta": [0.8, 1.0],
    },
    "diffpir": {"guidance_weight": [1.0, 10.0], "eta": [1.0]},
}
START_TIMES = {"ddim_dps": [0.4, 0.5, 0.6, 0.7]}  # others: the model file's 0.6


def problem(model_name: str, split: str, num_images: int):
    """The model, the true signals x (N, 28, 28, 1) and the observations of a split."""
    module, x, _, observations = pairs(model_name, split, num_images)
    return module.model, x, observations


def steps_for(sampler_name: str, evaluations: int, options: dict) -> int:
    """The number of steps that spends ``evaluations`` network evaluations per prior."""
    sampler = bn.samplers.get_sampler(sampler_name)
    steps = 1
    while sampler.network_evaluations(steps + 1, options) <= evaluations:
        steps += 1
    return steps


def evaluate(model, x, observations, sampler, options, evaluations, start_time, draws, seed=0):
    """Mean PSNR/SSIM of the posterior mean of x over the pairs, and seconds per image."""
    num_steps = steps_for(sampler, evaluations, options)
    started = time.perf_counter()
    tree = bn.sample(
        model,
        observations,
        sampler=sampler,
        sampler_options=options,
        num_chains=1,
        num_draws=draws,
        num_steps=num_steps,
        start_time=start_time,
        seed=seed,
        progress=False,
    )
    seconds = time.perf_counter() - started
    draws_x = np.asarray(tree.posterior["x"])  # (chain, draw, image, 28, 28, 1)
    usable = np.isfinite(draws_x).all(axis=tuple(range(3, draws_x.ndim)))  # not diverged
    scores = []
    for image in range(len(x)):
        kept = draws_x[:, :, image][usable[:, :, image]]
        if len(kept) == 0:  # every draw of this image diverged: no estimate to score
            continue
        mean = kept.mean(axis=0)
        scores.append((psnr(mean, x[image], data_range=1.0), ssim(mean, x[image], data_range=1.0)))
    psnrs, ssims = np.array(scores).T if scores else (np.array([np.nan]), np.array([np.nan]))
    return {
        "sampler": sampler,
        "options": options,
        "start_time": start_time,
        "evaluations_per_prior": bn.samplers.get_sampler(sampler).network_evaluations(
            num_steps, options
        ),
        "num_steps": num_steps,
        "psnr_db": float(psnrs.mean()),
        "psnr_std": float(psnrs.std()),
        "ssim": float(ssims.mean()),
        "ssim_std": float(ssims.std()),
        "seconds_per_image": seconds / len(x),
        "num_images": len(x),
        "draws": draws,
        "diverged": int(np.asarray(tree.sample_stats["diverging"]).sum()),
        "images_without_estimate": len(x) - len(scores),
    }


def _grid(name, grids):
    grid = grids[name]
    for values in itertools.product(*grid.values()):
        yield dict(zip(grid, values, strict=True))


def tune(args):
    model, x, observations = problem(args.model, "validation", args.images)
    grids = {**GRIDS, **json.loads(args.grid)} if args.grid else GRIDS
    results = []
    for name in args.samplers:
        start_times = args.start_times or START_TIMES.get(name, [0.6])
        for options, start_time in itertools.product(_grid(name, grids), start_times):
            row = evaluate(
                model, x, observations, name, options, args.evaluations, start_time, args.draws
            )
            results.append(row)
            print(json.dumps(row), flush=True)
    path = FIGURES / f"tuned_{args.model}_{args.evaluations}.json"
    previous = json.loads(path.read_text()) if path.exists() else {"results": [], "best": {}}
    results = [r for r in previous["results"] if r["sampler"] not in args.samplers] + results
    best = {k: v for k, v in previous["best"].items() if k not in args.samplers}
    for name in args.samplers:
        rows = [row for row in results if row["sampler"] == name and row["diverged"] == 0]
        if rows:
            top = max(rows, key=lambda row: row["psnr_db"])
            best[name] = {"options": top["options"], "start_time": top["start_time"]}
    _write(path, {"results": results, "best": best})
    print(json.dumps(best, indent=2))


def study(args):
    model, x, observations = problem(args.model, args.split, args.images)
    tuned_path = FIGURES / f"tuned_{args.model}_{args.tuned_at}.json"
    tuned = json.loads(tuned_path.read_text())["best"] if tuned_path.exists() else {}
    file_defaults = load_model_file(ROOT / "models" / f"{args.model}.py").defaults
    rows = []
    for label in args.samplers:
        # "dps:default" runs a sampler as the model file's defaults set it (options only if it
        # is the file's sampler), instead of with the tuned setting.
        name, _, variant = label.partition(":")
        setting = tuned.get(name) if variant != "default" else None
        if args.options is not None:  # an explicit setting, e.g. a reference run
            setting = {"options": json.loads(args.options), "start_time": args.start_time}
        setting = setting or {
            "options": file_defaults.get("sampler_options", {})
            if name == file_defaults.get("sampler")
            else {},
            "start_time": file_defaults.get("start_time", 1.0),
        }
        for evaluations in args.nfe:
            row = evaluate(
                model,
                x,
                observations,
                name,
                setting["options"],
                evaluations,
                setting["start_time"],
                args.draws,
            )
            row["split"], row["label"] = args.split, label + (args.tag or "")
            rows.append(row)
            print(json.dumps(row), flush=True)
    path = FIGURES / f"quality_vs_nfe_{args.model}_{args.split}.json"
    previous = json.loads(path.read_text())["rows"] if path.exists() else []
    keep = [
        row
        for row in previous
        if (row["label"], row["evaluations_per_prior"])
        not in {(new["label"], new["evaluations_per_prior"]) for new in rows}
    ]
    _write(path, {"rows": keep + rows})


def plot(args):
    """PSNR and seconds per image against evaluations per prior, one line per sampler label."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from bayesnoise.atomic import atomic_path

    models = [m for m in MODELS if (FIGURES / f"quality_vs_nfe_{m}_{args.split}.json").exists()]
    figure, axes = plt.subplots(1, len(models), figsize=(5 * len(models), 5.2), squeeze=False)
    for axis, model in zip(axes[0], models, strict=True):
        rows = json.loads((FIGURES / f"quality_vs_nfe_{model}_{args.split}.json").read_text())
        labels = sorted({row["label"] for row in rows["rows"]})
        for label in labels:
            mine = sorted(
                (r for r in rows["rows"] if r["label"] == label),
                key=lambda r: r["evaluations_per_prior"],
            )
            setting = ", ".join(f"{k}={v}" for k, v in mine[0]["options"].items())
            axis.plot(
                [r["evaluations_per_prior"] for r in mine],
                [r["psnr_db"] for r in mine],
                marker="o",
                label=f"{label}: {setting} t0={mine[0]['start_time']}",
            )
        axis.set_xscale("log")
        axis.set_xlabel("network evaluations per prior")
        axis.set_ylabel("PSNR of the posterior mean (dB)")
        axis.set_title(f"{model} ({args.split}, {rows['rows'][0]['num_images']} images)")
        axis.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.16))
        axis.grid(alpha=0.3)
    figure.tight_layout()
    with atomic_path(FIGURES / f"quality_vs_nfe_{args.split}.png") as temporary:
        figure.savefig(temporary, dpi=120, format="png")


def _write(path: Path, content: dict) -> None:
    from bayesnoise.atomic import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(content, indent=1).encode())


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["tune", "study", "plot"])
    parser.add_argument("--samplers", nargs="+", default=list(GRIDS))
    parser.add_argument("--evaluations", type=int, default=25, help="tune: evaluations per prior")
    parser.add_argument("--tuned-at", type=int, default=25)
    parser.add_argument("--options", help="study: JSON sampler options instead of the tuned ones")
    parser.add_argument("--start-time", type=float, default=0.6, help="study: t0 with --options")
    parser.add_argument("--tag", help="study: appended to each row's label, e.g. ' (tuned at 50)'")
    parser.add_argument("--grid", help="tune: JSON {sampler: {option: [values]}} replacing GRIDS")
    parser.add_argument("--start-times", type=float, nargs="+", help="tune: t0 values to try")
    parser.add_argument("--nfe", type=int, nargs="+", default=[10, 15, 25, 50, 100, 200])
    parser.add_argument("--split", default="test", choices=["test", "heldout", "validation"])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--draws", type=int, default=2)
    parser.add_argument(
        "--model",
        default="digits_on_fashion",
        choices=["digits_on_fashion", "cs_sine", "sine_denoise"],
    )
    args = parser.parse_args()
    {"tune": tune, "study": study, "plot": plot}[args.mode](args)


if __name__ == "__main__":
    main()
