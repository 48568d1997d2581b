"""Train the shipped score priors (CPU-sized U-Nets) and write them to bayesnoise/assets/.

Usage (each run resumes from its ``.state`` file if interrupted)::

    python analyses/train_priors.py fashion --minutes 70
    python analyses/train_priors.py digits --minutes 45
    python analyses/train_priors.py sine --minutes 25

Without the ``.state`` file (another machine), ``--init-from`` trains on from a checkpoint's
weights with a fresh optimiser, e.g. ``fashion --init-from bayesnoise/assets/fashion_unet.eqx
--seed 1 --out analyses/checkpoints/fashion_unet_continued.eqx``.

The priors shipped with the project were trained on a shared 2-core CPU, in the background::

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
        nohup nice -n 10 taskset -c 0 python analyses/train_priors.py fashion --minutes 75 \\
        > /tmp/train_fashion.log 2>&1 &
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from bayesnoise import assets
from bayesnoise.training import train_from_config

ASSETS = assets.directory()
PRIORS = {
    # name: (dataset, output file, U-Net options, batch size)
    "fashion": ("fashion_mnist", "fashion_unet.eqx", {"channels": [16, 32, 64]}, 64),
    "digits": ("mnist_5k", "digits_unet.eqx", {"channels": [16, 32, 64]}, 64),
    "sine": ("sine", "sine_unet.eqx", {"channels": [16, 32, 64]}, 64),
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prior", choices=sorted(PRIORS))
    parser.add_argument("--steps", type=int, default=100_000, help="upper bound on steps")
    parser.add_argument("--minutes", type=float, default=60.0, help="wall-time budget")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--state", type=Path, default=None, help="resumable training state")
    parser.add_argument("--device", default="CPU, 2 cores, shared")
    parser.add_argument("--dtype", default="float32", choices=["float32", "float16"])
    parser.add_argument("--init-from", type=Path, default=None,
                        help="train on from this checkpoint of the same U-Net (its weights; "
                        "a fresh optimiser), e.g. the shipped prior")  # fmt: skip
    parser.add_argument("--learning-rate", type=float, default=5e-4,
                        help="Adam's step size after warm-up")  # fmt: skip
    parser.add_argument("--seed", type=int, default=0,
                        help="training randomness (batches, times, noise)")  # fmt: skip
    args = parser.parse_args(argv)
    dataset, filename, options, batch_size = PRIORS[args.prior]
    out = args.out or ASSETS / filename
    state = args.state or Path("/tmp") / (Path(filename).stem + ".state")
    _, header = train_from_config(
        dataset,
        "unet",
        out,
        steps=args.steps,
        batch_size=batch_size,
        learning_rate=args.learning_rate,
        ema_decay=0.999,
        architecture_options=options,
        checkpoint_every=250,
        eval_every=250,
        state_path=state,
        max_wall_time=args.minutes * 60,
        weights_dtype=args.dtype,
        init_from=args.init_from,
        seed=args.seed,
        device=args.device,
        command="python analyses/train_priors.py " + shlex.join(sys.argv[1:]),
    )
    training = header["training"]
    print(
        f"{out}: {training['steps']} steps, {training['wall_time_s']} s, "
        f"train loss {training['train_loss']}, held-out loss {training['heldout_loss']}"
    )


if __name__ == "__main__":
    main()
