"""Train the FLOW baseline's two normalizing flows and write them to bayesnoise/assets/.

Usage (a wall-time budget; the file is rewritten at every evaluation, so an interrupted run
still leaves a usable flow, and the whole training state goes to ``<out>.state``, from which
``--resume`` continues: ``--minutes`` is this process's budget, ``--steps`` the total)::

    python analyses/train_flows.py --which signal --out bayesnoise/assets/fashion_flow.eqx \\
        --minutes 30
    python analyses/train_flows.py --which noise --out bayesnoise/assets/digits_flow.eqx \\
        --minutes 30

The signal flow learns the Fashion-MNIST training images (all 60 000, as the signal diffusion
prior), the noise flow the 4 000 training digits of ``mnist_5k_split()`` (as the noise prior).
Images are dequantised ((255 x + u) / 256, u ~ U(0, 1)) and the flow maximises likelihood by
Adam (linear warm-up, gradient clipping), keeping an exponential moving average of the weights,
which is what is saved. Held-out bits/dim: Fashion-MNIST test images 5000-5999 (the test and
validation pairs use images 0-104) and the 1 000 held-out digits.
"""

from __future__ import annotations

import argparse
import math
import shlex
import sys
import time
from pathlib import Path
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from bayesnoise.atomic import writable_directory
from bayesnoise.baselines.flow import build_flow, save_flow
from bayesnoise.data import load_fashion_mnist, mnist_5k_split
from bayesnoise.training.resume import (
    array_sha256,
    batch_indices,
    load_state,
    read_saved_run,
    save_state,
)


class FlowTrainingState(NamedTuple):
    """Everything a resumed run needs: the flow, its EMA, the optimiser state, step and key."""

    flow: eqx.Module
    average: eqx.Module
    opt_state: optax.OptState
    step: jax.Array
    key: jax.Array


def load_data(which: str) -> tuple[np.ndarray, np.ndarray, dict]:
    if which == "signal":
        train = load_fashion_mnist("train")[0]
        heldout = load_fashion_mnist("test")[0][5000:6000]
        data = {
            "dataset": "fashion_mnist",
            "train": "Fashion-MNIST training images (all 60000)",
            "heldout": "Fashion-MNIST test images 5000-5999",
        }
    else:
        (train, _), (heldout, _) = mnist_5k_split()
        data = {
            "dataset": "mnist_5k",
            "train": "mnist_5k_split() training digits (4000)",
            "heldout": "mnist_5k_split() held-out digits (1000)",
        }
    data |= {"shape": list(train.shape[1:]), "num_train": len(train), "range": [0.0, 1.0]}
    data["preprocessing"] = "dequantised (255 x + u) / 256, u ~ U(0, 1); modelled as x - 1/2"
    return train, heldout, data


def dequantise(key, images):
    return (images * 255.0 + jax.random.uniform(key, images.shape)) / 256.0


def bits_per_dim(log_density, dimension):
    """-log2 P of the 8-bit image: continuous density on [0, 1) plus 8 bits per pixel."""
    return -log_density / (dimension * math.log(2.0)) + 8.0


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--which", choices=["signal", "noise"], required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=30.0, help="this process's wall time")
    parser.add_argument("--steps", type=int, default=1_000_000, help="upper bound on all steps")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--num-flow-steps", type=int, default=10)
    parser.add_argument("--hidden-channels", type=int, default=48)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from <out>.state")
    parser.add_argument("--device", default="CPU, 2 cores, shared")
    args = parser.parse_args(argv)
    writable_directory(args.out.parent, "--out: folder")
    state_path = args.out.with_name(args.out.name + ".state")
    if args.resume and not state_path.is_file():
        parser.error(f"--resume: no training state at {state_path} (written by an earlier run).")

    train, heldout, data = load_data(args.which)
    dimension = int(np.prod(train.shape[1:]))
    key, flow_key = jax.random.split(jax.random.key(args.seed))
    flow = build_flow(train.shape[1:], args.num_flow_steps, args.hidden_channels, key=flow_key)
    warmup, clip, ema_decay = 200, 1.0, 0.999
    optimizer = optax.chain(
        optax.clip_by_global_norm(clip),
        optax.adam(optax.linear_schedule(0.0, args.learning_rate, warmup)),
    )
    parameters = eqx.filter(flow, eqx.is_array)
    run = FlowTrainingState(
        flow, parameters, optimizer.init(parameters), jnp.asarray(0, jnp.int32), key
    )
    identity = {
        "which": args.which,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "num_flow_steps": args.num_flow_steps,
        "hidden_channels": args.hidden_channels,
        "seed": args.seed,
        "num_train": int(train.shape[0]),
        "train_images_sha256": array_sha256(train),
    }
    earlier_minutes = 0.0
    if args.resume:
        run = load_state(state_path, run, identity)
        earlier_minutes = read_saved_run(state_path)[1] / 60
        print(f"resuming from {state_path} at step {int(run.step)}", flush=True)

    def loss_fn(flow, images):
        return -jnp.mean(jax.vmap(flow.log_density)(images))

    @eqx.filter_jit
    def train_step(run, images):
        key, batch_key = jax.random.split(run.key)
        loss, gradient = eqx.filter_value_and_grad(loss_fn)(run.flow, dequantise(batch_key, images))
        with jax.numpy_dtype_promotion("standard"):  # optax's bias correction mixes dtypes
            updates, opt_state = optimizer.update(
                gradient, run.opt_state, eqx.filter(run.flow, eqx.is_array)
            )
        flow = eqx.apply_updates(run.flow, updates)
        # EMA with a warm-up (as bayesnoise.training): a short run is not dominated by the init
        step = run.step.astype(jnp.float32)
        decay = jnp.minimum(ema_decay, (1.0 + step) / (10.0 + step))
        average = jax.tree.map(
            lambda a, p: decay * a + (1 - decay) * p, run.average, eqx.filter(flow, eqx.is_array)
        )
        return FlowTrainingState(flow, average, opt_state, run.step + 1, key), loss

    @eqx.filter_jit
    def evaluate(flow, images, key):
        return jnp.mean(jax.vmap(flow.log_density)(dequantise(key, images)))

    def heldout_bits(flow):
        total = sum(
            float(evaluate(flow, heldout[i : i + 250], jax.random.key(i)))
            for i in range(0, len(heldout), 250)
        )
        return bits_per_dim(total / math.ceil(len(heldout) / 250), dimension)

    command = "python analyses/train_flows.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    start, recent, step = time.time(), [], int(run.step)  # a host counter: no device read per step
    while step < args.steps and time.time() - start < args.minutes * 60:
        batch = jnp.asarray(train[batch_indices(step, args.batch_size, len(train), args.seed)])
        run, loss = train_step(run, batch)
        recent.append(float(loss))
        step += 1
        elapsed = time.time() - start
        done = step >= args.steps or elapsed >= args.minutes * 60
        if step % args.eval_every == 0 or done:
            averaged = eqx.combine(run.average, run.flow)
            train_bits = bits_per_dim(-np.mean(recent), dimension)
            heldout_value = heldout_bits(averaged)
            recent = []
            minutes = earlier_minutes + elapsed / 60
            header = {
                "data": data,
                "training": {
                    "steps": step,
                    "minutes": round(minutes, 2),
                    "batch_size": args.batch_size,
                    "optimizer": {
                        "name": "adam",
                        "learning_rate": args.learning_rate,
                        "warmup_steps": warmup,
                        "clip_global_norm": clip,
                    },
                    "ema_decay": ema_decay,
                    "ema_warmup": "decay = min(ema_decay, (1 + step) / (10 + step))",
                    "seed": args.seed,
                    "train_bits_per_dim": round(train_bits, 4),
                    "heldout_bits_per_dim": round(heldout_value, 4),
                    "device": args.device,
                    "command": command,
                },
            }
            save_state(state_path, run, {**identity, "wall_time": 60 * minutes, **header})
            save_flow(args.out, averaged, header)
            print(
                f"step {step}  {minutes:.1f} min  train {train_bits:.3f} bits/dim  "
                f"held-out (EMA) {heldout_value:.3f} bits/dim  -> {args.out}",
                flush=True,
            )


if __name__ == "__main__":
    main()
