"""Quality of the shipped score priors: held-out DSM loss and a grid of unconditional samples.

    python analyses/prior_quality.py [--samples 16] [--steps 300] [--out analyses/figures]

Prints, per prior, the held-out denoising-score-matching loss (fixed t and z, so numbers are
comparable; a network that predicts zero scores 1.0) and writes ``prior_samples.png``: rows of
unconditional draws (reverse SDE from t = 1 with the prior's score alone).
"""

import argparse
import json
import time
from pathlib import Path

import jax
import numpy as np
from matplotlib.figure import Figure

from bayesnoise import assets
from bayesnoise.checkpoints import load_checkpoint, load_score_prior
from bayesnoise.data import load_fashion_mnist, mnist_5k_split, sinusoidal_noise_dataset
from bayesnoise.samplers.prior_draws import sample_prior
from bayesnoise.train import heldout_loss

ASSETS = assets.directory()


def heldout_images(name):
    if name == "fashion":
        return load_fashion_mnist("test")[0][:1000]
    if name == "digits":
        return mnist_5k_split()[1][0]
    return np.asarray(sinusoidal_noise_dataset(jax.random.key(12345), 1000))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=16)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "figures")
    args = parser.parse_args()
    priors = {"fashion": "fashion_unet.eqx", "digits": "digits_unet.eqx", "sine": "sine_unet.eqx"}
    figure = Figure(figsize=(args.samples * 0.8, len(priors) * 0.9 + 0.4))
    results = {}
    for row, (name, filename) in enumerate(priors.items()):
        path = ASSETS / filename
        if not path.is_file():
            print(f"{name}: {path} is missing, skipped")
            continue
        network, header = load_checkpoint(path)
        prior = load_score_prior(path)
        loss = heldout_loss(network, prior.sde, heldout_images(name))
        zero_loss = 1.0  # E||0 + z||^2 / d for the zero network
        started = time.perf_counter()
        draws = np.asarray(sample_prior(prior, jax.random.key(row), args.samples, args.steps))
        seconds = time.perf_counter() - started
        training = header["training"]
        results[name] = {
            "heldout_dsm_loss": loss,
            "zero_network_loss": zero_loss,
            "training_steps": training.get("steps"),
            "training_wall_time_s": training.get("wall_time_s"),
            "sampling_seconds": seconds,
        }
        print(
            f"{name:8s} held-out DSM loss {loss:.4f} (zero network {zero_loss:.1f}); "
            f"trained {training.get('steps')} steps in {training.get('wall_time_s')} s; "
            f"{args.samples} samples x {args.steps} steps in {seconds:.1f} s",
            flush=True,
        )
        limits = (0.0, 1.0) if name != "sine" else (-0.6, 0.6)
        for column, image in enumerate(draws):
            axis = figure.add_subplot(len(priors), args.samples, row * args.samples + column + 1)
            axis.imshow(image[..., 0], cmap="gray", vmin=limits[0], vmax=limits[1])
            axis.set_xticks([])
            axis.set_yticks([])
            if column == 0:
                axis.set_ylabel(name, fontsize=8)
    args.out.mkdir(parents=True, exist_ok=True)
    figure.suptitle("Unconditional samples of the shipped priors", fontsize=9)
    figure.savefig(args.out / "prior_samples.png", dpi=100)
    (args.out / "prior_quality.json").write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out / 'prior_samples.png'}")


if __name__ == "__main__":
    main()
