"""Train the GAN baseline's DCGAN on the Fashion-MNIST training images (the signal prior's data).

Usage::

    python analyses/train_gan.py --out bayesnoise/assets/fashion_dcgan.eqx --minutes 30

Resumable in chunks: every save also writes the whole training state (both networks, both
optimiser states, step, key) to ``<out>.state``, and ``--resume`` continues from it (the run's
settings and training images must match; ``--minutes`` is this process's budget, ``--steps``
the total)::

    nohup python analyses/train_gan.py --out bayesnoise/assets/fashion_dcgan.eqx \\
        --minutes 60 --resume > /tmp/train_gan.log 2>&1 &

Training: the non-saturating GAN loss (Goodfellow et al. 2014), one discriminator and one
generator Adam step per batch (learning rate 2e-4, b1 = 0.5, as Radford et al. 2016), batches
drawn without replacement from the 60 000 training images (``load_training_data
("fashion_mnist")``, the diffusion prior's; epoch e's order is the permutation seeded by (seed,
e), so a resumed run sees the batches an unbroken one would). Stops at ``--steps`` or after
``--minutes``, whichever comes first, and writes the generator (with its batch-norm
statistics) every ``--save-every`` steps and at the end; the header records what was run.
"""

from __future__ import annotations

import argparse
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

from bayesnoise.baselines.gan import (
    Discriminator,
    Generator,
    TrainedGenerator,
    generate,
    save_generator,
)
from bayesnoise.training.datasets import load_training_data
from bayesnoise.training.resume import (
    array_sha256,
    batch_indices,
    load_state,
    read_saved_run,
    save_state,
)


class GanTrainingState(NamedTuple):
    """Everything a resumed run needs: both networks, their optimiser states, step and key."""

    generator: Generator
    batch_norm: eqx.nn.State
    discriminator: Discriminator
    generator_opt: optax.OptState
    discriminator_opt: optax.OptState
    step: jax.Array
    key: jax.Array


def gan_losses(discriminator, real, fake):
    """Discriminator loss and the generator's non-saturating loss, from logits."""
    real_logits = jax.vmap(discriminator)(real)
    fake_logits = jax.vmap(discriminator)(fake)
    discriminator_loss = jnp.mean(jax.nn.softplus(-real_logits) + jax.nn.softplus(fake_logits))
    generator_loss = jnp.mean(jax.nn.softplus(-fake_logits))
    return discriminator_loss, generator_loss


def make_step(generator_optimizer, discriminator_optimizer):
    @eqx.filter_jit
    def step(generator, state, discriminator, generator_opt, discriminator_opt, real, key):
        latents = jax.random.normal(key, (2, real.shape[0], generator.latent_size))
        fake, state = generate(generator, state, latents[0])
        fake = jax.lax.stop_gradient(fake)

        def discriminator_loss(discriminator):
            return gan_losses(discriminator, real, fake)[0]

        d_loss, grads = eqx.filter_value_and_grad(discriminator_loss)(discriminator)
        with jax.numpy_dtype_promotion("standard"):  # optax's bias correction mixes dtypes
            updates, discriminator_opt = discriminator_optimizer.update(grads, discriminator_opt)
        discriminator = eqx.apply_updates(discriminator, updates)

        def generator_loss(generator, state):
            fake, state = generate(generator, state, latents[1])
            return gan_losses(discriminator, real, fake)[1], state

        (g_loss, state), grads = eqx.filter_value_and_grad(generator_loss, has_aux=True)(
            generator, state
        )
        with jax.numpy_dtype_promotion("standard"):
            updates, generator_opt = generator_optimizer.update(grads, generator_opt)
        generator = eqx.apply_updates(generator, updates)
        return generator, state, discriminator, generator_opt, discriminator_opt, d_loss, g_loss

    return step


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=30.0, help="this process's wall time")
    parser.add_argument("--steps", type=int, default=100_000, help="upper bound on all steps")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-4)
    parser.add_argument("--beta1", type=float, default=0.5)
    parser.add_argument("--save-every", type=int, default=500)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--resume", action="store_true", help="continue from <out>.state")
    parser.add_argument("--device", default="CPU, 2 cores, shared")
    args = parser.parse_args(argv)
    for name in ("minutes", "steps", "batch_size", "learning_rate", "save_every"):
        if not getattr(args, name) > 0:
            parser.error(f"--{name.replace('_', '-')} must be > 0. Got {getattr(args, name)}.")
    state_path = args.out.with_name(args.out.name + ".state")
    if args.resume and not state_path.is_file():
        parser.error(f"--resume: no training state at {state_path} (written by an earlier run).")
    args.out.parent.mkdir(parents=True, exist_ok=True)

    data = load_training_data("fashion_mnist")
    images = data.train
    key = jax.random.key(args.seed)
    generator_key, discriminator_key, key = jax.random.split(key, 3)
    generator, batch_norm = eqx.nn.make_with_state(Generator)(key=generator_key)
    discriminator = Discriminator(key=discriminator_key)
    optimizer_settings = {
        "name": "adam",
        "learning_rate": args.learning_rate,
        "b1": args.beta1,
        "b2": 0.999,
    }
    generator_optimizer = optax.adam(args.learning_rate, b1=args.beta1)
    discriminator_optimizer = optax.adam(args.learning_rate, b1=args.beta1)
    run = GanTrainingState(
        generator,
        batch_norm,
        discriminator,
        generator_optimizer.init(eqx.filter(generator, eqx.is_inexact_array)),
        discriminator_optimizer.init(eqx.filter(discriminator, eqx.is_inexact_array)),
        jnp.asarray(0, jnp.int32),
        key,
    )
    identity = {
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "beta1": args.beta1,
        "seed": args.seed,
        "num_train": int(images.shape[0]),
        "train_images_sha256": array_sha256(images),
    }
    earlier_wall_time = 0.0
    if args.resume:
        run = load_state(state_path, run, identity)
        earlier_wall_time = read_saved_run(state_path)[1]
        print(f"resuming from {state_path} at step {int(run.step)}", flush=True)
    step_fn = make_step(generator_optimizer, discriminator_optimizer)
    command = "python analyses/train_gan.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    recent = []
    started = time.perf_counter()

    def save(run):
        step = int(run.step)
        wall_time = earlier_wall_time + time.perf_counter() - started
        averaged = np.mean(recent[-200:], axis=0) if recent else [float("nan")] * 2
        training = {
            "command": command,
            "steps": step,
            "epochs": round(step * args.batch_size / len(images), 3),
            "wall_time_s": round(wall_time, 1),
            "minutes_budget": args.minutes,
            "steps_budget": args.steps,
            "batch_size": args.batch_size,
            "optimizer": {"generator": optimizer_settings, "discriminator": optimizer_settings},
            "loss": "non-saturating GAN loss, one D and one G step per batch",
            "discriminator_loss_last_200": float(averaged[0]),
            "generator_loss_last_200": float(averaged[1]),
            "seed": args.seed,
            "device": args.device,
        }
        save_state(state_path, run, {**identity, "wall_time": wall_time, "training": training})
        trained = TrainedGenerator(run.generator, run.batch_norm)
        return save_generator(args.out, trained, {"data": data.info, "training": training})

    first_step = step = int(run.step)  # a host counter: no device read per step
    while step < args.steps and time.perf_counter() - started < 60 * args.minutes:
        real = jnp.asarray(images[batch_indices(step, args.batch_size, len(images), args.seed)])
        key, step_key = jax.random.split(run.key)
        *networks, d_loss, g_loss = step_fn(*run[:5], real, step_key)
        run = GanTrainingState(*networks, run.step + 1, key)
        step += 1
        recent.append((float(d_loss), float(g_loss)))
        if step % 100 == 0 or step == first_step + 1:
            d_mean, g_mean = np.mean(recent[-100:], axis=0)
            elapsed = time.perf_counter() - started
            print(
                f"step {step}: D loss {d_mean:.3f}, G loss {g_mean:.3f}, "
                f"{elapsed:.0f} s ({(step - first_step) / elapsed:.2f} steps/s)",
                flush=True,
            )
        if step % args.save_every == 0:
            save(run)
    header = save(run)
    training = header["training"]
    print(
        f"{args.out}: {training['steps']} steps ({training['epochs']} epochs), "
        f"{training['wall_time_s']} s, D loss {training['discriminator_loss_last_200']:.3f}, "
        f"G loss {training['generator_loss_last_200']:.3f}"
    )


if __name__ == "__main__":
    main()
