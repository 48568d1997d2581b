"""Calibration of the posterior: coverage of central intervals, per pixel, on held-out pairs.

For each learned model and sampler setting, ``draw`` samples the posterior of (x, n) for every
pair of a split and keeps the draws (``runs/calibration/``, not committed); ``summarize``
computes the coverage of the central 50/80/90/95% intervals (and a reliability curve) from the
randomised PIT of the truth among the draws (:mod:`bayesnoise.calibration`: exact for any
number of draws), fits a spread scale (a temperature on the draws, ``mean + s (draw - mean)``)
on the validation split and reports coverage with and without it on the test split (the 100
shipped pairs) and the held-out split (100 pairs not shipped). Splits: ``splits.py``.

    python analyses/calibration.py draw --model digits_on_fashion --split validation --images 32
    python analyses/calibration.py draw --model digits_on_fashion --split test --images 100
    python analyses/calibration.py draw --model digits_on_fashion --split heldout --images 100
    python analyses/calibration.py summarize       # -> figures/calibration.json, .png

``--sampler NAME --steps K --options JSON --start-time T --label L`` draws with another setting
than the model file's defaults (label ``default``).
"""

from __future__ import annotations

import argparse
import io
import json
import time

import numpy as np
from splits import MODELS, ROOT, pairs

import bayesnoise as bn
from bayesnoise.atomic import atomic_path, atomic_write_bytes
from bayesnoise.calibration import fit_spread_scale, reliability_curve, scale_spread

FIGURES = ROOT / "analyses" / "figures"
DRAWS = ROOT / "runs" / "calibration"
REPORTED = (0.5, 0.8, 0.9, 0.95)


def _settings(module, args) -> dict:
    settings = {"sampler": "pigdm", "num_steps": 500, "num_chains": 4, "num_draws": 4}
    settings.update(module.defaults)
    if args.sampler is not None:
        settings["sampler"] = args.sampler
        settings["sampler_options"] = {}
    for name, value in (
        ("num_steps", args.steps),
        ("start_time", args.start_time),
        ("num_chains", args.chains),
        ("num_draws", args.draws),
    ):
        if value is not None:
            settings[name] = value
    if args.options is not None:
        settings["sampler_options"] = json.loads(args.options)
    return settings


def draw(args):
    """Sample every pair of a split in chunks; save draws, truths and settings."""
    module, x, n, y = pairs(args.model, args.split, args.images)
    settings = _settings(module, args)
    draws = {"x": [], "n": []}
    diverged = []
    started = time.perf_counter()
    for first in range(0, len(y), args.chunk):
        tree = bn.sample(
            module.model, y[first : first + args.chunk], seed=first, progress=False, **settings
        )
        for name in draws:
            values = np.asarray(tree.posterior[name])  # (chain, draw, image, ...)
            values = values.reshape((-1,) + values.shape[2:])
            draws[name].append(np.moveaxis(values, 0, 1))  # (image, draw, ...)
        diverging = np.asarray(tree.sample_stats["diverging"])  # (chain, draw, image)
        diverged.append(diverging.reshape(-1, diverging.shape[-1]).T)
        print(f"{args.model} {args.split}: {first + len(tree.posterior.image)} of {len(y)} pairs")
    seconds = time.perf_counter() - started
    record = {
        "model": args.model,
        "split": args.split,
        "label": args.label,
        "settings": settings,
        "seconds_per_image": seconds / len(y),
    }
    buffer = io.BytesIO()
    np.savez_compressed(
        buffer,
        x=np.concatenate(draws["x"]),
        n=np.concatenate(draws["n"]),
        diverged=np.concatenate(diverged),
        truth_x=x,
        truth_n=n,
        record=json.dumps(record),
    )
    path = DRAWS / f"{args.model}_{args.label}_{args.split}.npz"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, buffer.getvalue())
    print(json.dumps(record))


def _load(model: str, label: str, split: str):
    """Per pair: (draws of x, truth x) and (draws of n, truth n), diverged draws removed."""
    path = DRAWS / f"{model}_{label}_{split}.npz"
    if not path.exists():
        return None
    archive = np.load(path)
    kept = ~archive["diverged"]  # (image, draw)
    per_latent = {
        name: [
            (archive[name][i][kept[i]], archive[f"truth_{name}"][i])
            for i in range(len(kept))
            if kept[i].sum() >= 2
        ]
        for name in ("x", "n")
    }
    return per_latent, json.loads(str(archive["record"])), int((~kept).sum())


def _curve(draws_and_truths, scale=1.0):
    """The reliability curve over every element of every pair."""
    draws = np.concatenate(
        [scale_spread(d, scale).reshape(len(d), -1) for d, _ in draws_and_truths], axis=1
    )
    truth = np.concatenate([t.reshape(-1) for _, t in draws_and_truths])
    return reliability_curve(draws, truth)


def summarize(args):
    results = []
    for model in MODELS:
        labels = sorted({p.stem.split("_")[-2] for p in DRAWS.glob(f"{model}_*_*.npz")})
        for label in labels:
            validation = _load(model, label, "validation")
            for name in ("x", "n"):
                scale, fitted = (None, None)
                if validation is not None:
                    scale, fitted = fit_spread_scale(validation[0][name], levels=(0.5, 0.9))
                for split in ("validation", "test", "heldout"):
                    loaded = _load(model, label, split)
                    if loaded is None:
                        continue
                    per_latent, record, num_diverged = loaded
                    row = {
                        "model": model,
                        "label": label,
                        "latent": name,
                        "split": split,
                        "sampler": record["settings"]["sampler"],
                        "settings": record["settings"],
                        "num_pairs": len(per_latent[name]),
                        "draws_per_pair": int(len(per_latent[name][0][0])),
                        "num_diverged_draws": num_diverged,
                        "seconds_per_image": record["seconds_per_image"],
                        "raw": _curve(per_latent[name]),
                    }
                    if scale is not None:
                        row["spread_scale_fitted_on_validation"] = scale
                        row["scaled"] = _curve(per_latent[name], scale)
                    results.append(row)
                    print(_line(row))
    atomic_write_bytes(FIGURES / "calibration.json", json.dumps(results, indent=1).encode())
    _plot(results)


def _at(curve, level):
    return curve["observed"][curve["nominal"].index(level)]


def _line(row) -> str:
    text = f"{row['model']:18s} {row['label']:8s} {row['latent']} {row['split']:10s}"
    text += " raw " + " ".join(f"{100 * _at(row['raw'], p):5.1f}" for p in REPORTED)
    if "scaled" in row:
        text += f" | scale {row['spread_scale_fitted_on_validation']:.3g}: "
        text += " ".join(f"{100 * _at(row['scaled'], p):5.1f}" for p in REPORTED)
    return text


def _plot(results):
    """Reliability curves on the test and held-out splits, one panel per model."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = [m for m in MODELS if any(r["model"] == m for r in results)]
    figure, axes = plt.subplots(1, len(models), figsize=(4.6 * len(models), 4.8), squeeze=False)
    for axis, model in zip(axes[0], models, strict=True):
        axis.plot([0, 1], [0, 1], color="grey", linewidth=1, label="calibrated")
        for row in results:
            if row["model"] != model or row["split"] not in ("test", "heldout"):
                continue
            style = "-" if row["split"] == "test" else ":"
            name = f"{row['label']} {row['latent']} ({row['split']})"
            line = axis.plot(
                row["raw"]["nominal"],
                row["raw"]["observed"],
                style,
                marker="o",
                markersize=3,
                label=name,
            )[0]
            if "scaled" in row:
                axis.plot(
                    row["scaled"]["nominal"],
                    row["scaled"]["observed"],
                    style,
                    marker="x",
                    markersize=4,
                    color=line.get_color(),
                    alpha=0.5,
                    label=f"{name}, spread x{row['spread_scale_fitted_on_validation']:.2g}",
                )
        axis.set_xlabel("nominal coverage of the central interval")
        axis.set_ylabel("observed coverage (per pixel)")
        axis.set_title(model)
        axis.grid(alpha=0.3)
        axis.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.16))
    figure.tight_layout()
    with atomic_path(FIGURES / "calibration.png") as temporary:
        figure.savefig(temporary, dpi=110, format="png")


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["draw", "summarize"])
    parser.add_argument("--model", choices=MODELS, default="digits_on_fashion")
    parser.add_argument("--split", choices=["validation", "test", "heldout"], default="test")
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--chunk", type=int, default=25, help="pairs per bn.sample call")
    parser.add_argument("--label", default="default", help="names a sampler setting (no '_')")
    parser.add_argument("--sampler")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--options", help="JSON sampler options")
    parser.add_argument("--start-time", type=float)
    parser.add_argument("--chains", type=int)
    parser.add_argument("--draws", type=int)
    args = parser.parse_args()
    if "_" in args.label:
        parser.error(f"--label must not contain '_'. Got {args.label!r}.")
    {"draw": draw, "summarize": summarize}[args.mode](args)


if __name__ == "__main__":
    main()
