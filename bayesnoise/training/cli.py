"""``bayesnoise train``: the subcommand's arguments and what it runs."""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path

__all__ = ["add_parser", "run"]


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to ``subparsers`` (of ``bayesnoise``'s parser)."""
    train = subparsers.add_parser("train", help="train a score network prior (DSM, resumable)")
    train.add_argument("dataset", help="fashion_mnist, mnist_5k, sine, or a .npy/.npz path")
    train.add_argument("--out", required=True, help="checkpoint to write (.eqx)")
    train.add_argument("--architecture", default="unet", choices=["unet", "ncsnv2"])
    train.add_argument("--steps", type=int, default=10_000)
    train.add_argument("--batch-size", type=int, default=64)
    train.add_argument("--learning-rate", type=float, default=5e-4)
    train.add_argument("--ema-decay", type=float, default=0.999)
    train.add_argument("--minutes", type=float, help="wall-time budget; rerun to resume")
    train.add_argument(
        "--checkpoint-every",
        type=int,
        default=250,
        help="steps between checkpoints (the exported prior and the resumable state)",
    )
    train.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    train.add_argument("--seed", type=int, default=0)
    return train


def run(args: argparse.Namespace) -> None:
    """Train as ``args`` say and write the checkpoint ``args.out``."""
    import jax

    from bayesnoise import train

    _check_writable_folder(Path(args.out).resolve().parent)
    train.train_from_config(
        args.dataset,
        args.architecture,
        args.out,
        steps=args.steps,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        ema_decay=args.ema_decay,
        checkpoint_every=args.checkpoint_every,
        max_wall_time=None if args.minutes is None else 60.0 * args.minutes,
        weights_dtype=args.dtype,
        seed=args.seed,
        device=f"{jax.default_backend()}: {jax.devices()[0].device_kind}",
        command="bayesnoise " + shlex.join(sys.argv[1:]),
    )
    print(f"wrote {args.out}")


def _check_writable_folder(folder: Path) -> None:
    """Create the output folder if needed and check it is writable, before any work."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(f"--out: folder {str(folder)!r} cannot be created: {error}") from error
    if not os.access(folder, os.W_OK):
        raise PermissionError(f"--out: folder {str(folder)!r} is not writable.")
