"""Do the learned baselines still improve with training? Validation PSNR per training snapshot.

    python analyses/baseline_training.py --method {gan,flow} --snapshots A.eqx B.eqx ...
        [--tasks digits cs_sine] [--out analyses/figures/baseline_training_<method>.json]

Each snapshot is a generator (``train_gan.py``) or a signal flow (``train_flows.py --which
signal``) written during one training run. For every snapshot and task it scores the method on
``compare.py``'s 5 validation pairs (never test pairs) over ``compare.py``'s own grid of
hyper-parameters, so the best weight may move as the network trains; the noise flow stays the
shipped one. A curve that has flattened says the test-set row is the network's, not the
training budget's. Prints one line per snapshot and task and writes the JSON.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "analyses"))
import compare  # noqa: E402

from bayesnoise.baselines.flow import load_flow  # noqa: E402
from bayesnoise.baselines.gan import load_generator  # noqa: E402

LOADERS = {"gan": (load_generator, "generator"), "flow": (load_flow, "signal_flow")}


def training_summary(header: dict) -> dict:
    """Steps, minutes and (flows) held-out bits/dim from a snapshot's header."""
    training = header.get("training", {})
    minutes = training.get("minutes", training.get("wall_time_s", float("nan")) / 60)
    summary = {"steps": training.get("steps"), "minutes": round(float(minutes), 1)}
    if "heldout_bits_per_dim" in training:
        summary["heldout_bits_per_dim"] = training["heldout_bits_per_dim"]
    return summary


def validation_scores(method: str, network, task: compare.Task, batch_size: int) -> dict:
    """The best mean validation PSNR over compare.py's grid for ``method``, with ``network``."""
    load_key = LOADERS[method][1]
    x, n = task.validation()
    observation = task.observe(x, n)
    tried = []
    for hyper in compare.grid(method, task):
        estimate, _ = compare.run_batches(
            method, observation, task, {**hyper, load_key: network}, batch_size
        )
        row = compare.scores(estimate, x)
        tried.append({"hyper": hyper, "psnr": row["psnr"]})
    best = max(tried, key=lambda row: -np.inf if np.isnan(row["psnr"]) else row["psnr"])
    return {"psnr": best["psnr"], "hyper": best["hyper"], "grid": tried}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--method", choices=sorted(LOADERS), required=True)
    parser.add_argument("--snapshots", type=Path, nargs="+", required=True)
    parser.add_argument(
        "--tasks", nargs="+", choices=["digits", "cs_sine", "sine"], default=["digits", "cs_sine"]
    )
    parser.add_argument("--batch-size", type=int, default=5)
    parser.add_argument("--out", type=Path)
    args = parser.parse_args(argv)
    for path in args.snapshots:
        if not path.is_file():
            parser.error(f"--snapshots: no file at {path}.")
    out = args.out or compare.FIGURES / f"baseline_training_{args.method}.json"
    load = LOADERS[args.method][0]
    tasks = {name: compare.make_task(name, 1, None) for name in args.tasks}
    rows = []
    for path in args.snapshots:
        network, header = load(path)
        row = {"snapshot": str(path), **training_summary(header)}
        for name, task in tasks.items():
            row[name] = validation_scores(args.method, network, task, args.batch_size)
            print(
                f"{path.name}: {row['steps']} steps, {row['minutes']} min"
                + (
                    f", {row['heldout_bits_per_dim']} bits/dim"
                    if "heldout_bits_per_dim" in row
                    else ""
                )
                + f"; {name}: {row[name]['psnr']:.2f} dB at {row[name]['hyper']}",
                flush=True,
            )
        rows.append(row)
    result = {
        "method": args.method,
        "validation_pairs": compare.VALIDATION_IMAGES,
        "command": "python analyses/baseline_training.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "machine": compare.machine(),
        "rows": rows,
    }
    compare.write_text(out, json.dumps(result, indent=1))
    return result


if __name__ == "__main__":
    main()
