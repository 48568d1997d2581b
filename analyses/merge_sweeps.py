"""Join noise-level sweeps of ``analyses/compare.py`` run separately (e.g. one method per core).

    python analyses/merge_sweeps.py A.json B.json [...] --out F.json

Each input is a ``compare_<task>_sweep*.json``; all must hold the same task and noise stds. The
output holds every method (the first file's ``input`` row), with each file's command, and the
figure beside it (``.png``: PSNR against the noise std, as ``compare.py`` draws it).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from compare import sweep_figure, write_text


def merge(sweeps: list[dict], names: list[str]) -> dict:
    """One sweep with the methods of all; refuses sweeps of another task or noise stds."""
    first = sweeps[0]
    for sweep, name in zip(sweeps[1:], names[1:], strict=True):
        if (sweep["task"], sweep["noise_std"]) != (first["task"], first["noise_std"]):
            raise ValueError(
                f"sweeps must share the task and noise stds. {name} has {sweep['task']} at "
                f"{sweep['noise_std']}; {names[0]} has {first['task']} at {first['noise_std']}."
            )
    methods = {}
    for sweep in sweeps:
        methods.update(
            {key: value for key, value in sweep["methods"].items() if key not in methods}
        )
    return {
        "task": first["task"],
        "noise_std": first["noise_std"],
        "commands": [sweep["command"] for sweep in sweeps],
        "merged_from": names,
        "methods": methods,
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sweeps", type=Path, nargs="+", help="compare.py sweep JSONs")
    parser.add_argument("--out", type=Path, required=True, help="the merged JSON (.json)")
    args = parser.parse_args(argv)
    if args.out.suffix != ".json":
        parser.error(f"--out must end in .json. Got {str(args.out)!r}.")
    try:
        merged = merge(
            [json.loads(path.read_text()) for path in args.sweeps], list(map(str, args.sweeps))
        )
    except (OSError, ValueError, KeyError) as error:
        parser.error(f"sweeps must be readable compare.py sweep JSONs: {error}")
    write_text(args.out, json.dumps(merged) + "\n")
    sweep_figure(args.out.with_suffix(".png"), merged, merged["task"])
    print(json.dumps({method: entry["psnr"] for method, entry in merged["methods"].items()}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
