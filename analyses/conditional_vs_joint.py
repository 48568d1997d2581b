"""The conditional network of Iyer, Shu & Sinha against the joint posterior (issue 9).

    python analyses/conditional_vs_joint.py evaluate [--task digits|gaussian|inpaint]
        [--checkpoint CKPT] [--images 30] [--split test|validation|heldout] [--draws 8]
        [--noise digits|sine] [--mixing 0.5] [--omegas 0 0.5 1 2 4] [--rules keep off]
        [--methods conditional joint] [--steps 50] [--joint-start-time T0]
        [--joint-guidance-weight W] [--json FILE]
    python analyses/conditional_vs_joint.py uses-y [--task ...] [--checkpoint CKPT] [--images 400]

``evaluate`` scores the posterior mean of x (PSNR/SSIM against the truth) and the coverage of
the 90% central interval of the draws (per pixel, :mod:`bayesnoise.calibration`) on the first
``--images`` pairs of a split: ``test`` (the shipped test images), ``validation`` (Fashion-MNIST
test images 100-131, where the joint samplers' settings below were chosen) or ``heldout``
(Fashion-MNIST test images 1000-1099, not shipped). Tasks:

- ``digits``: y = (1 − α) x + α n with α = ``--mixing`` and n the held-out digit (``--noise
  digits``: in distribution for both methods at α = 0.5) or a draw of sinusoidal noise of
  average std 0.2 (``--noise sine``: unseen by the conditional network). Joint model:
  ``models/digits_on_fashion.py`` with its defaults, its operators set to α and, for sine noise,
  the shipped sinusoidal-noise prior swapped in for the digit prior (the one-line change of a
  model file);
- ``gaussian``: y = x + 0.3 ε. Joint model: the clothing prior and a Gaussian noise prior
  N(0, 0.3² I) coupled through y = x + n;
- ``inpaint``: y = m ⊙ x with ``models/conditional_inpaint.py``'s fixed mask (half the pixels
  missing). Joint model: the clothing prior alone with the mask as its operator.

The conditional model (``models/conditional_<task>.py``, ancestral DDPM steps from t = 1 under
the prior's own score) runs for every ω of eq. 11 and every eq. 14 rule ("keep", or "off": y
always given). Training costs come from the checkpoints' headers; sampling cost is wall time
per image (all images of a run batched, compilation included).

``uses-y`` measures whether a conditional network reads y: the MSE of Tweedie's estimate
x̂₀ = (x_t + s_t² score) / a_t on held-out training pairs at fixed t, with y given and dropped.

The §3.1 study (an unconditional DDPM fed a noisy image) is ``analyses/noisy_input_study.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

import bayesnoise as bn
from bayesnoise import assets
from bayesnoise.atomic import atomic_write_bytes
from bayesnoise.calibration import coverage_summary
from bayesnoise.checkpoints import load_conditional_score_prior, read_header
from bayesnoise.data import load_fashion_mnist, load_testset, mnist_5k_split
from bayesnoise.metrics import metric_summary, psnr, ssim
from bayesnoise.model_file import load_model_file
from bayesnoise.training.paired import load_paired_training_data

ROOT = Path(__file__).resolve().parents[1]
FIGURES = ROOT / "analyses" / "figures"
JOINT_FILE = ROOT / "models" / "digits_on_fashion.py"
TASKS = ("digits", "gaussian", "inpaint")
CONDITIONAL_FILES = {task: ROOT / "models" / f"conditional_{task}.py" for task in TASKS}
SHAPE = (28, 28, 1)
NOISES = ("digits", "sine")
SINE_STD = 0.2
RULES = {"keep": "keep", "off": None}
# split -> (Fashion-MNIST test images, held-out MNIST-5k digits, first noise seed); "test" is
# the shipped test set (analyses/splits.py's splits)
SPLITS = {
    "test": (slice(0, 100), slice(0, 100), 0),
    "validation": (slice(100, 132), slice(100, 132), 10_000),
    "heldout": (slice(1000, 1100), slice(500, 600), 20_000),
}
# The joint samplers of the gaussian and inpaint tasks: the digits model file's (DDIM-DPS, 50
# steps), with t0 and the guidance weight w chosen on 8 validation pairs, 4 draws (PSNR dB):
#   gaussian  t0 0.2 / 0.4 / 0.6 / 1.0 at w 1: 20.54 / 21.39 / 21.42 / 20.91;
#             at w 2: 20.39 / 21.66 / 21.86 / 21.74; t0 0.6 w 3: 21.49; t0 0.8 w 2: 21.80
#   inpaint   t0 0.2 / 0.4 / 0.6 / 1.0 at w 1: 25.70 / 25.81 / 25.85 / 10.47 (diverged);
#             at w 2: 25.10 / 25.39 / 25.52 / 24.47; t0 0.6 w 0.5: 25.11; t0 0.8 w 1: 25.77
JOINT_SETTINGS = {
    "gaussian": {"start_time": 0.6, "guidance_weight": 2.0},
    "inpaint": {"start_time": 0.6, "guidance_weight": 1.0},
}


def test_pairs(
    task: str,
    num_images: int,
    *,
    split: str = "test",
    noise: str = "digits",
    mixing: float = 0.5,
    seed: int = 0,
):
    """(y, x) of the first ``num_images`` images of ``split`` under ``task``'s corruption."""
    if task not in TASKS:
        raise ValueError(f"task must be one of {TASKS}. Got {task!r}.")
    if split not in SPLITS:
        raise ValueError(f"split must be one of {tuple(SPLITS)}. Got {split!r}.")
    images, digits, first_seed = SPLITS[split]
    available = images.stop - images.start
    if not 1 <= num_images <= available:
        raise ValueError(
            f"images must be in 1..{available} (the {split} split). Got {num_images!r}."
        )
    if split == "test":
        x = load_testset()["fashion"][:num_images]
    else:
        x = load_fashion_mnist("test")[0][images][:num_images]
    seeds = range(first_seed, first_seed + num_images)
    if task != "digits":
        module = load_model_file(CONDITIONAL_FILES[task])
        observed = [module.observe(image, s)[0] for image, s in zip(x, seeds, strict=True)]
        return np.stack(observed), x
    if noise not in NOISES:
        raise ValueError(f"noise must be one of {NOISES}. Got {noise!r}.")
    if not 0.0 < mixing < 1.0:
        raise ValueError(f"mixing must be in (0, 1). Got {mixing!r}.")
    if noise == "sine":
        keys = jax.random.split(jax.random.key(seed + first_seed), num_images)
        n = np.stack([np.asarray(bn.sample_sinusoidal_noise(k, SHAPE, SINE_STD)) for k in keys])
    elif split == "test":
        n = load_testset()["digits"][:num_images]
    else:
        n = mnist_5k_split()[1][0][digits][:num_images]
    return ((1.0 - mixing) * x + mixing * n).astype(np.float32), x


def joint_model(task: str, noise: str = "digits", mixing: float = 0.5):
    """The joint model of ``task`` (the digit model file's, or its counterpart) and its sampler
    settings."""
    module = load_model_file(JOINT_FILE)
    defaults = dict(module.defaults)
    if task == "digits":
        noise_prior = module.noise_prior
        if noise == "sine":  # the one-line swap of a model file
            noise_prior = bn.checkpoints.load_score_prior(assets.path("sine_unet.eqx"))
        model = bn.joint_model(
            module.signal_prior,
            noise_prior,
            signal_operator=bn.operators.Scale(SHAPE, 1.0 - mixing),
            noise_operator=bn.operators.Scale(SHAPE, mixing),
            measurement_std=0.01,
        )
        return model, defaults
    conditional = load_model_file(CONDITIONAL_FILES[task])
    if task == "gaussian":
        noise_prior = bn.priors.GaussianPrior(
            SHAPE, module.signal_prior.sde, variance=conditional.NOISE_STD**2
        )
        model = bn.joint_model(module.signal_prior, noise_prior, measurement_std=0.01)
    else:
        model = bn.joint_model(
            module.signal_prior,
            signal_operator=bn.operators.Mask(conditional.MASK),
            measurement_std=0.01,
        )
    settings = JOINT_SETTINGS[task]
    defaults["start_time"] = settings["start_time"]
    defaults["sampler_options"] = {
        **defaults.get("sampler_options", {}),
        "guidance_weight": settings["guidance_weight"],
    }
    return model, defaults


def score_draws(tree, truths) -> dict:
    """Per image: PSNR/SSIM of the posterior mean of x, 90% coverage; diverged draws dropped."""
    x = np.asarray(tree.posterior["x"].values)  # (chain, draw, image, ...) or (chain, draw, ...)
    if truths.shape[0] == 1 and x.ndim == 2 + len(SHAPE):
        x = x[:, :, None]
    draws = x.reshape((-1,) + x.shape[2:])
    psnrs, ssims, coverages, diverged = [], [], [], 0
    for image, truth in enumerate(truths):
        finite = draws[:, image][np.all(np.isfinite(draws[:, image]), axis=(1, 2, 3))]
        diverged += draws.shape[0] - finite.shape[0]
        if finite.shape[0] == 0:
            continue
        mean = finite.mean(0)
        psnrs.append(psnr(mean, truth))
        ssims.append(ssim(mean, truth))
        if finite.shape[0] >= 2:
            coverages.append(coverage_summary(finite, truth)["coverage_central_90"])
    return {
        "psnr": metric_summary(psnrs),
        "ssim": metric_summary(ssims),
        "coverage_90": metric_summary(coverages) if coverages else None,
        "diverged_draws": diverged,
        "images_scored": len(psnrs),
    }


def run(model, observations, truths, settings, seed) -> dict:
    started = time.perf_counter()
    tree = bn.sample(model, observations, progress=False, seed=seed, **settings)
    wall = time.perf_counter() - started
    return {**score_draws(tree, truths), "seconds_per_image": wall / len(observations)}


def training_cost(path) -> dict:
    """Steps, minutes and held-out loss recorded in a checkpoint's header."""
    training = read_header(path).get("training", {})
    cost = {key: training.get(key) for key in ("steps", "batch_size", "heldout_loss", "command")}
    wall = training.get("wall_time_s")
    cost["minutes"] = None if wall is None else round(wall / 60, 1)
    if "init_from" in training:
        cost["init_from"] = training["init_from"]
    return {"file": Path(path).name, **cost}


def evaluate(args) -> dict:
    observations, truths = test_pairs(
        args.task, args.images, split=args.split, noise=args.noise, mixing=args.mixing,
        seed=args.seed,
    )  # fmt: skip
    conditional = load_model_file(CONDITIONAL_FILES[args.task])
    checkpoint = args.checkpoint or assets.path(conditional.CHECKPOINT)
    task_options = {"mixing_weight": args.mixing} if args.task == "digits" else {}
    rows = []
    input_psnr = metric_summary(psnr(observations, truths, batch=True))
    print(f"input y: PSNR {input_psnr['mean']:.2f} dB", file=sys.stderr)
    base = {"num_chains": 1, "num_draws": args.draws}
    if "conditional" in args.methods:
        settings = {**conditional.defaults, **base, "num_steps": args.steps}
        for rule in args.rules:
            for omega in args.omegas:
                model = conditional.conditional_model(
                    checkpoint,
                    guidance_weight=float(omega),
                    probabilistic_conditioning=RULES[rule],
                    **task_options,
                )
                row = run(model, observations, truths, settings, args.seed)
                row.update(method="conditional", omega=omega, rule=rule, steps=args.steps)
                rows.append(row)
                print(_line(row), file=sys.stderr)
    if "joint" in args.methods:
        model, defaults = joint_model(args.task, args.noise, args.mixing)
        if args.joint_start_time is not None:
            defaults["start_time"] = args.joint_start_time
        if args.joint_guidance_weight is not None:
            defaults["sampler_options"] = {
                **defaults.get("sampler_options", {}),
                "guidance_weight": args.joint_guidance_weight,
            }
        row = run(model, observations, truths, {**defaults, **base}, args.seed)
        row.update(
            method="joint",
            sampler=str(defaults["sampler"]),
            steps=defaults["num_steps"],
            start_time=defaults["start_time"],
            sampler_options=defaults.get("sampler_options", {}),
        )
        rows.append(row)
        print(_line(row), file=sys.stderr)
    noise_network = {"digits": "digits_unet.eqx", "sine": "sine_unet.eqx"}
    joint_networks = ["fashion_unet.eqx"]
    if args.task == "digits":
        joint_networks.append(noise_network[args.noise])
    costs = {
        "conditional": training_cost(checkpoint),
        "joint": [training_cost(assets.path(name)) for name in joint_networks],
    }
    return {
        "command": "python analyses/conditional_vs_joint.py " + " ".join(sys.argv[1:]),
        "task": args.task,
        "split": args.split,
        "noise": args.noise if args.task == "digits" else None,
        "mixing": args.mixing if args.task == "digits" else None,
        "images": args.images,
        "draws": args.draws,
        "seed": args.seed,
        "input_psnr": input_psnr,
        "training_costs": costs,
        "rows": rows,
    }


def _line(row) -> str:
    label = (
        row["method"]
        if row["method"] == "joint"
        else (f"conditional omega={row['omega']} rule={row['rule']}")
    )
    coverage = row["coverage_90"]["mean"] if row["coverage_90"] else float("nan")
    return (
        f"{label}: PSNR {row['psnr']['mean']:.2f} ± {row['psnr']['std']:.2f}, SSIM "
        f"{row['ssim']['mean']:.3f}, cov90 {coverage:.3f}, {row['seconds_per_image']:.2f} "
        f"s/image, diverged {row['diverged_draws']}"
    )


def markdown_table(document) -> str:
    task = document.get("task", "digits")
    corruption = {"gaussian": "y = x + 0.3 eps", "inpaint": "y = mask x, half the pixels missing"}
    if task == "digits":
        problem = (
            f"y = {1 - document['mixing']:.2g} x + {document['mixing']:.2g} n, n: "
            f"{document['noise']}"
        )
    else:
        problem = corruption[task]
    lines = [
        f"({problem}; {document['images']} {document.get('split', 'test')} pairs, "
        f"{document['draws']} draws each; input PSNR {document['input_psnr']['mean']:.2f} dB)",
        "",
        "| method | ω | eq. 14 | steps | PSNR (dB) | SSIM | 90% coverage | s / image |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in document["rows"]:
        coverage = row["coverage_90"]["mean"] if row["coverage_90"] else float("nan")
        method = row["method"] if row["method"] == "conditional" else f"joint ({row['sampler']})"
        lines.append(
            f"| {method} | {row.get('omega', '')} | {row.get('rule', '')} | {row['steps']} | "
            f"{row['psnr']['mean']:.2f} ± {row['psnr']['std']:.2f} | "
            f"{row['ssim']['mean']:.3f} ± {row['ssim']['std']:.3f} | {coverage:.3f} | "
            f"{row['seconds_per_image']:.2f} |"
        )
    return "\n".join(lines)


@eqx.filter_jit
def _tweedie_errors(network, sde, images, observations, noise, t, mask):
    a_t, s_t = sde.marginal_mean_coefficient(t), sde.marginal_std(t)
    noisy = a_t * images + s_t * noise
    prediction = jax.vmap(lambda x, y: network(x, t, y, mask))(noisy, observations)
    denoised = (noisy + s_t * prediction) / a_t  # s_t^2 score = s_t * network output
    return jnp.mean((denoised - images) ** 2)


def uses_y(args) -> dict:
    """MSE of Tweedie's x̂₀ at fixed t with y given and dropped, on held-out training pairs."""
    checkpoint = args.checkpoint or assets.path(
        load_model_file(CONDITIONAL_FILES[args.task]).CHECKPOINT
    )
    prior = load_conditional_score_prior(checkpoint)
    data = load_paired_training_data("fashion_mnist", corruption=args.task, seed=0)
    images = jnp.asarray(data.heldout[: args.images])
    observations = jnp.asarray(data.heldout_observations[: args.images])
    rows = []
    for index, t in enumerate(args.times):
        noise = jax.random.normal(jax.random.key(index), images.shape)
        given, dropped = (
            float(_tweedie_errors(prior.network, prior.sde, images, observations, noise, t, m))
            for m in (1.0, 0.0)
        )
        rows.append({"t": t, "mse_y_given": given, "mse_y_dropped": dropped})
        print(f"t = {t}: MSE of x0_hat {given:.4f} with y, {dropped:.4f} without", file=sys.stderr)
    return {
        "command": "python analyses/conditional_vs_joint.py " + " ".join(sys.argv[1:]),
        "checkpoint": training_cost(checkpoint),
        "images": args.images,
        "rows": rows,
    }


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run_parser = commands.add_parser("evaluate", help="PSNR/SSIM/coverage on test pairs")
    run_parser.add_argument("--task", choices=TASKS, default="digits")
    run_parser.add_argument("--split", choices=sorted(SPLITS), default="test")
    run_parser.add_argument(
        "--checkpoint",
        type=Path,
        default=None,
        help="conditional checkpoint (default: the task's shipped one)",
    )
    run_parser.add_argument("--images", type=int, default=30)
    run_parser.add_argument("--draws", type=int, default=8)
    run_parser.add_argument("--noise", choices=NOISES, default="digits")
    run_parser.add_argument(
        "--mixing", type=float, default=0.5, help="digits task: α of y = (1-α) x + α n"
    )
    run_parser.add_argument("--omegas", type=float, nargs="+", default=[0.0])
    run_parser.add_argument("--rules", choices=sorted(RULES), nargs="+", default=["keep"])
    run_parser.add_argument(
        "--methods", choices=["conditional", "joint"], nargs="+", default=["conditional", "joint"]
    )
    run_parser.add_argument("--steps", type=int, default=50, help="conditional model's steps")
    run_parser.add_argument("--joint-start-time", type=float, help="override t0 of the joint run")
    run_parser.add_argument(
        "--joint-guidance-weight", type=float, help="override the joint run's guidance weight"
    )
    run_parser.add_argument("--seed", type=int, default=0)
    run_parser.add_argument("--json", type=Path)
    probe = commands.add_parser("uses-y", help="does the network read y? (Tweedie MSE)")
    probe.add_argument("--task", choices=TASKS, default="digits")
    probe.add_argument("--checkpoint", type=Path, help="default: the task's shipped one")
    probe.add_argument("--images", type=int, default=400)
    probe.add_argument("--times", type=float, nargs="+", default=[0.1, 0.2, 0.4, 0.6, 0.8])
    probe.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    if args.checkpoint is not None and not args.checkpoint.is_file():
        parser.error(f"--checkpoint must be a file. Got {args.checkpoint}.")
    if args.command == "evaluate":
        if args.draws < 2:
            parser.error(f"--draws must be >= 2 (coverage needs draws). Got {args.draws}.")
        document = evaluate(args)
        text = markdown_table(document)
    else:
        document = uses_y(args)
        text = "\n".join(
            f"| {r['t']} | {r['mse_y_given']:.4f} | {r['mse_y_dropped']:.4f} |"
            for r in document["rows"]
        )
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(args.json, json.dumps(document, indent=1).encode())
    print(text)


if __name__ == "__main__":
    main()
