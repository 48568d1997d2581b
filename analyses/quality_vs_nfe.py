"""Quality against network evaluations: PSNR/SSIM of the posterior mean for few-step samplers.

Splits (digits on clothing, y = 0.5 x + 0.5 n):
- ``validation``: Fashion-MNIST test images 100-131 with held-out MNIST-5k digits 100-131 (not
  shipped; needs ``apt-get install dataset-fashion-mnist``): hyper-parameters are tuned here;
- ``test``: the 100 shipped pairs (``models/assets/testset.npz``);
- ``heldout``: Fashion-MNIST test images 1000-1099 with held-out digits 500-599 (not shipped),
  to check that a figure is not particular to the shipped pairs.

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

import bayesnoise as bn
from bayesnoise.data import load_fashion_mnist, load_testset, mnist_5k_split
from bayesnoise.metrics import psnr, ssim
from bayesnoise.model_file import load_model_file

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "analyses" / "figures"

# Hyper-parameter grids searched on the validation split (at 25 evaluations per prior).
GRIDS = {
    "dps": {"guidance_weight": [4.0, 8.0, 16.0]},
    "ddim_dps": {"guidance_weight": [4.0, 8.0, 16.0], "eta": [0.5, 1.0]},
    "diffpir": {"guidance_weight": [1.0, 10.0], "eta": [1.0]},
}
START_TIMES = [0.6]


def pairs(split: str):
    """(x, n) arrays of a split, float32 (N, 28, 28, 1)."""
    if split == "test":
        testset = load_testset()
        return testset["fashion"], testset["digits"]
    fashion, _ = load_fashion_mnist("test")
    _, (digits, _) = mnist_5k_split()
    if split == "validation":
        return fashion[100:132], digits[100:132]
    if split == "heldout":
        return fashion[1000:1100], digits[500:600]
    raise ValueError(f"split must be validation, test or heldout. Got {split!r}.")


def steps_for(sampler_name: str, evaluations: int, options: dict) -> int:
    """The number of steps that spends ``evaluations`` network evaluations per prior."""
    sampler = bn.samplers.get_sampler(sampler_name)
    steps = 1
    while sampler.network_evaluations(steps + 1, options) <= evaluations:
        steps += 1
    return steps


def evaluate(model, x, n, sampler, options, evaluations, start_time, draws, seed=0):
    """Mean PSNR/SSIM of the posterior mean of x over the pairs, and seconds per image."""
    observations = (0.5 * x + 0.5 * n).astype(np.float32)
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
    means = np.nanmean(np.asarray(tree.posterior["x"]), axis=(0, 1))  # (image, 28, 28, 1)
    scores = [
        (psnr(m, t, data_range=1.0), ssim(m, t, data_range=1.0))
        for m, t in zip(means, x, strict=True)
    ]
    psnrs, ssims = np.array(scores).T
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
        "diverged": int(np.asarray(tree.sample_stats["diverged"]).sum()),
    }


def _grid(name):
    grid = GRIDS[name]
    for values in itertools.product(*grid.values()):
        yield dict(zip(grid, values, strict=True))


def tune(args, model):
    x, n = pairs("validation")
    x, n = x[: args.images], n[: args.images]
    results = []
    for name in args.samplers:
        for options, start_time in itertools.product(_grid(name), START_TIMES):
            row = evaluate(model, x, n, name, options, args.evaluations, start_time, args.draws)
            results.append(row)
            print(json.dumps(row), flush=True)
    best = {}
    for name in args.samplers:
        rows = [row for row in results if row["sampler"] == name and row["diverged"] == 0]
        if rows:
            top = max(rows, key=lambda row: row["psnr_db"])
            best[name] = {"options": top["options"], "start_time": top["start_time"]}
    _write(FIGURES / f"tuned_{args.evaluations}.json", {"results": results, "best": best})
    print(json.dumps(best, indent=2))


def study(args, model):
    x, n = pairs(args.split)
    x, n = x[: args.images], n[: args.images]
    tuned = json.loads((FIGURES / f"tuned_{args.tuned_at}.json").read_text())["best"]
    rows = []
    for label in args.samplers:
        # "dps:default" runs a sampler with its default options (the model file's t0 = 0.6).
        name, _, variant = label.partition(":")
        setting = tuned.get(name) if variant != "default" else None
        setting = setting or {"options": {}, "start_time": 0.6}
        for evaluations in args.nfe:
            row = evaluate(
                model,
                x,
                n,
                name,
                setting["options"],
                evaluations,
                setting["start_time"],
                args.draws,
            )
            row["split"], row["label"] = args.split, label
            rows.append(row)
            print(json.dumps(row), flush=True)
    path = FIGURES / f"quality_vs_nfe_{args.split}.json"
    previous = json.loads(path.read_text())["rows"] if path.exists() else []
    keep = [
        row
        for row in previous
        if (row["label"], row["evaluations_per_prior"])
        not in {(new["label"], new["evaluations_per_prior"]) for new in rows}
    ]
    _write(path, {"rows": keep + rows})


def _write(path: Path, content: dict) -> None:
    from bayesnoise.atomic import atomic_write_bytes

    atomic_write_bytes(path, json.dumps(content, indent=1).encode())


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("mode", choices=["tune", "study"])
    parser.add_argument("--samplers", nargs="+", default=list(GRIDS))
    parser.add_argument("--evaluations", type=int, default=25, help="tune: evaluations per prior")
    parser.add_argument("--tuned-at", type=int, default=25)
    parser.add_argument("--nfe", type=int, nargs="+", default=[10, 15, 25, 50, 100, 200])
    parser.add_argument("--split", default="test", choices=["test", "heldout", "validation"])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--draws", type=int, default=2)
    args = parser.parse_args()
    model = load_model_file(ROOT / "models" / "digits_on_fashion.py").model
    (tune if args.mode == "tune" else study)(args, model)


if __name__ == "__main__":
    main()
