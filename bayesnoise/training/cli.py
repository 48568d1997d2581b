"""``bayesnoise train``: the subcommand's arguments, and the run they describe."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bayesnoise.atomic import writable_directory

__all__ = ["add_parser", "run"]

_DATA_HELP = (
    "a folder of images (PNG/JPEG/TIFF, 8- or 16-bit, searched recursively), a .npy/.npz "
    "stack (N, H, W[, C]) in [0, 1] or uint8, or a built-in dataset: fashion_mnist, mnist_5k, "
    "sine"
)


def add_parser(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add the ``train`` subcommand to ``subparsers`` (of ``bayesnoise``'s parser)."""
    train = subparsers.add_parser(
        "train",
        help="train a score network prior (DSM, resumable) on a folder, an array or a dataset",
        description="Train a score prior by denoising score matching. Rerunning the same "
        "command resumes from OUT.state.",
    )
    train.add_argument("dataset", metavar="DATA", help=_DATA_HELP)
    train.add_argument("--out", required=True, help="checkpoint to write (.eqx)")
    train.add_argument("--steps", type=int, default=10_000)
    data = train.add_argument_group("data")
    data.add_argument("--glob", help="which files of a folder, e.g. '*.png' (default: images)")
    data.add_argument("--array-key", help="which array of a .npz file")
    data.add_argument("--channels", type=int, choices=[1, 3], help="default: the data's")
    data.add_argument(
        "--resolution", type=_resolution, help="N or HxW (default: the data's own size)"
    )
    data.add_argument("--fit", default="resize", choices=["resize", "random-crop"],
                      help="how images of another size are brought to --resolution")  # fmt: skip
    data.add_argument("--crops-per-image", type=int, default=8, help="with --fit random-crop")
    paired = train.add_argument_group(
        "paired (conditional) training",
        "train a network conditioned on the observation (Iyer et al.) on (signal, observation) "
        "pairs: DATA corrupted by --corruption, or a .npz holding 'signal' and 'observation'",
    )
    paired.add_argument("--corruption", choices=["digits", "gaussian", "inpaint"],
                        help="make the observations of DATA: 0.5 x + 0.5 digit, x + sigma eps, "
                        "or random missing pixels")  # fmt: skip
    paired.add_argument("--corruption-level", type=float,
                        help="digit weight (0.5), sigma (0.3) or missing fraction (0.5)",
                        )  # fmt: skip
    paired.add_argument("--condition-dropout", type=float, default=0.1,
                        help="p_uncond: fraction of the batch trained without y (CFG)")  # fmt: skip
    paired.add_argument("--probabilistic-conditioning", default="keep",
                        choices=["keep", "mask", "off"],
                        help="eq. 14's p_cond as the probability of keeping y (keep) or of "
                        "masking it (mask); off: y always kept (but for the dropout)")  # fmt: skip
    paired.add_argument("--conditioning-temperature", type=float, default=1.0,
                        help="T of eq. 14")  # fmt: skip
    network = train.add_argument_group("network")
    network.add_argument("--init-from", metavar="CHECKPOINT",
                         help="start from this unconditional checkpoint of the same U-Net: a "
                         "conditional network from its weights (zeros on the new y and mask "
                         "inputs), an unconditional one trains on from it")  # fmt: skip
    network.add_argument("--preset", choices=["tiny", "small", "paper"],
                         help="network size (default: small)")  # fmt: skip
    network.add_argument("--architecture", choices=["unet", "ncsnv2"],
                         help="default: the preset's")  # fmt: skip
    optimiser = train.add_argument_group("optimisation")
    optimiser.add_argument("--batch-size", type=int, default=64)
    optimiser.add_argument("--learning-rate", type=float, default=5e-4)
    optimiser.add_argument("--ema-decay", type=float, default=0.999)
    optimiser.add_argument("--grad-clip", type=float, default=1.0, help="global-norm clip")
    optimiser.add_argument("--warmup-steps", type=int, default=100)
    optimiser.add_argument("--seed", type=int, default=0)
    run_group = train.add_argument_group("run")
    run_group.add_argument("--minutes", type=float, help="wall-time budget; rerun to resume")
    run_group.add_argument(
        "--checkpoint-every",
        type=int,
        default=250,
        help="steps between checkpoints (the exported prior and the resumable state)",
    )
    run_group.add_argument("--eval-every", type=int, default=250,
                           help="steps between held-out evaluations")  # fmt: skip
    run_group.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    run_group.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS,
                           help="no progress bar or messages")  # fmt: skip
    return train


def run(args: argparse.Namespace) -> None:
    """Train as ``args`` say and write the checkpoint ``args.out``."""
    import jax

    from bayesnoise import training  # looked up here, so patches of its names take effect

    quiet = getattr(args, "quiet", False)
    writable_directory(Path(args.out).resolve().parent, "--out: folder")
    conditioning = None
    if args.corruption is not None or training.is_paired_file(args.dataset, args.array_key):
        rule = None if args.probabilistic_conditioning == "off" else args.probabilistic_conditioning
        conditioning = training.ConditioningSettings(
            condition_dropout=args.condition_dropout,
            probabilistic_conditioning=rule,
            temperature=args.conditioning_temperature,
        )
    result = training.train_from_config(
        args.dataset,
        args.architecture,
        args.out,
        steps=args.steps,
        preset=args.preset,
        glob=args.glob,
        array_key=args.array_key,
        channels=args.channels,
        resolution=args.resolution,
        fit=args.fit,
        crops_per_image=args.crops_per_image,
        batch_size=args.batch_size,
        learning_rate=args.learning_rate,
        ema_decay=args.ema_decay,
        grad_clip=args.grad_clip,
        warmup_steps=args.warmup_steps,
        checkpoint_every=args.checkpoint_every,
        eval_every=args.eval_every,
        max_wall_time=None if args.minutes is None else 60.0 * args.minutes,
        weights_dtype=args.dtype,
        seed=args.seed,
        device=f"{jax.default_backend()}: {jax.devices()[0].device_kind}",
        command="bayesnoise " + shlex.join(sys.argv[1:]),
        progress=not quiet and sys.stderr.isatty(),
        corruption=args.corruption,
        corruption_level=args.corruption_level,
        conditioning=conditioning,
        init_from=args.init_from,
    )
    if not quiet:
        print(f"wrote {args.out}{_outcome(result)}")


def _outcome(result) -> str:
    """``": 40 steps, train loss 0.03 (finished)"`` from ``train_from_config``'s result."""
    header = result[1] if isinstance(result, tuple) else {}
    training = header.get("training")
    if not training:
        return ""
    state = "finished" if training["finished"] else "stopped early; rerun to resume"
    return f": {training['steps']} steps, train loss {training['train_loss']:.4g} ({state})"


def _resolution(text: str) -> tuple[int, int]:
    """``"64"`` -> (64, 64); ``"48x64"`` -> (48, 64)."""
    parts = text.lower().split("x")
    if len(parts) in (1, 2) and all(part.isdigit() and int(part) > 0 for part in parts):
        return (int(parts[0]), int(parts[-1]))
    raise argparse.ArgumentTypeError(
        f"expected a positive size N or HEIGHTxWIDTH (e.g. 64 or 48x64). Got {text!r}."
    )
