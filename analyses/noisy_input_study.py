"""An unconditional DDPM fed a noisy image part-way down its chain (Iyer, Shu & Sinha §3.1, §4.1).

    python analyses/noisy_input_study.py [--images 100] [--draws 4] [--step-size 0.01]
                                         [--levels 0.3 0.6] [--cycles 40]

The paper adds Gaussian noise "of 30 % and 60 %" to clean images and feeds the noisy image into
the reverse chain at various steps; it reports pictures only. Here: PSNR/SSIM against the clean
image, with the shipped Fashion-MNIST prior (``fashion_unet.eqx``, a VP SDE) on the shipped
held-out test images.

**What "ℓ = 30 % noise" means.** Eq. 7 writes the chain's state as
x_t = √ᾱ_t x₀ + √(1 − ᾱ_t) ε, and §4.1.1 calls the step that "expects 30 % noise" the one to
feed a "30 % noised image" to. We read ℓ as the noise's share 1 − ᾱ of eq. 7, i.e. the noisy
image is y = √(1 − ℓ) x₀ + √ℓ ε: exactly the state of the chain at the time t*(ℓ) where it
expects that much noise. Under our VP SDE (:mod:`bayesnoise.sde`), q(x_t | x₀) = N(a_t x₀, s_t²)
with a_t² + s_t² = 1, so ᾱ_t = a_t² and 1 − ᾱ_t = s_t²: t*(ℓ) solves s_t² = ℓ (0.184 for 30 %,
0.299 for 60 % with β from 0.1 to 20). (The other reading, √(1 − ᾱ) = ℓ, puts a noise std of
0.3 / 0.6 on a √(1 − ℓ²)-scaled image; it is not used.)

**Feeding.** As in the paper, y itself is the chain's state at the feeding time t₀ (it is not
diffused further, unlike the driver's ``start_time``, which starts from a_t y + s_t z); then
ancestral DDPM steps (DDIM with η = 1, :func:`bayesnoise.samplers.integrators.ddim.ddim_move`)
of a fixed size Δt run the prior's own score from t₀ to 0 (the last step returns Tweedie's
estimate). t₀ = t*: matched; t₀ > t*: the chain expects more noise than y has ("too early",
§4.1.4: the paper's 100 % is our t₀ = 1); t₀ < t*: it expects less ("too late", §4.1.2).
"last step × K" (§4.1.3) feeds y at the last step's time Δt and runs that step K times.
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

from bayesnoise import assets
from bayesnoise.checkpoints import load_score_prior
from bayesnoise.data import load_testset
from bayesnoise.metrics import metric_summary, psnr, ssim
from bayesnoise.samplers.integrators.ddim import ddim_move
from bayesnoise.sde import VPSDE, time_grid

FIGURES = Path(__file__).resolve().parent / "figures"
SHAPE = (28, 28, 1)


def matched_time(sde: VPSDE, level: float) -> float:
    """t*(ℓ): the time at which the VP chain's state has the noise share 1 − ᾱ_t = s_t² = ℓ."""
    if not isinstance(sde, VPSDE) or type(sde).__name__ != "VPSDE":
        raise ValueError(
            "sde must be a VPSDE: eq. 7's 1 - abar is read as the VP marginal variance s_t^2. "
            f"Got {type(sde).__name__}."
        )
    if not 0.0 < level < 1.0:
        raise ValueError(f"level must be in (0, 1) (a share of eq. 7's variance). Got {level!r}.")
    low, high = 0.0, 1.0
    if float(sde.marginal_std(high)) ** 2 < level:
        raise ValueError(f"level must be at most s_1^2 = {float(sde.marginal_std(1.0)) ** 2:.4f}.")
    for _ in range(60):  # bisection: s_t is increasing in t
        middle = 0.5 * (low + high)
        if float(sde.marginal_std(middle)) ** 2 < level:
            low = middle
        else:
            high = middle
    return 0.5 * (low + high)


def noisy_images(key, images, level):
    """y = √(1 − ℓ) x₀ + √ℓ ε (eq. 7 with 1 − ᾱ = ℓ)."""
    noise = jax.random.normal(key, images.shape, images.dtype)
    return jnp.sqrt(1.0 - level) * images + jnp.sqrt(level) * noise


@eqx.filter_jit
def _ddpm_step(prior, x, key, time, next_time):
    """One ancestral (DDIM η = 1) step of every image of the batch under the prior's score."""

    def move(x, key):
        score = prior.score(x, time)
        return ddim_move(key, {"x": x}, {"x": score}, time, next_time, prior.sde, 1.0)["x"]

    return jax.vmap(move)(x, jax.random.split(key, x.shape[0]))


def run_chain(prior, x, key, start_time, step_size, cycles=1):
    """Feed ``x`` as the state at ``start_time`` and run the reverse chain to 0.

    ``num_steps = max(1, round(start_time / step_size))`` uniform steps; with ``cycles > 1`` (one
    step only) the same step start_time -> 0 is applied ``cycles`` times (§4.1.3).
    """
    num_steps = max(1, round(start_time / step_size))
    if cycles > 1 and num_steps != 1:
        raise ValueError(
            f"cycles > 1 repeats one step: start_time must be step_size. Got {start_time}."
        )
    grid = time_grid(num_steps, start_time)
    for index, step_key in enumerate(jax.random.split(key, num_steps * cycles)):
        step = index % num_steps
        x = _ddpm_step(prior, x, step_key, grid[step], grid[step + 1])
    return x, num_steps * cycles


def _median_max_abs(draws) -> float:
    """The median over draws of max |value|: a draw of the prior stays in about [0, 1]."""
    return float(np.median(np.max(np.abs(np.asarray(draws)), axis=(1, 2, 3))))


def scores(draws, truth, num_images, num_draws):
    """PSNR/SSIM of single draws (each draw scored, then averaged) and of the mean of draws."""
    draws = np.asarray(draws).reshape((num_draws, num_images) + truth.shape[1:])
    single_psnr = np.mean([psnr(d, truth, batch=True) for d in draws], axis=0)
    single_ssim = np.mean([ssim(d, truth, batch=True) for d in draws], axis=0)
    mean = draws.mean(0)
    return {
        "psnr_draw": metric_summary(single_psnr),
        "ssim_draw": metric_summary(single_ssim),
        "psnr_mean": metric_summary(psnr(mean, truth, batch=True)),
        "ssim_mean": metric_summary(ssim(mean, truth, batch=True)),
    }


def conditions(matched, step_size, cycles):
    """(label, feeding time, cycles) of the study for one noise level, by feeding time."""
    early = sorted({2 * matched, 0.5} - {matched})
    return [
        (f"too late: t0 = t*/4 = {matched / 4:.3f}", matched / 4, 1),
        (f"too late: t0 = t*/2 = {matched / 2:.3f}", matched / 2, 1),
        (f"matched: t0 = t* = {matched:.3f}", matched, 1),
        *[(f"too early: t0 = {t:.3f}", t, 1) for t in early],
        ("too early: t0 = 1 (the start)", 1.0, 1),
        (f"last step once (t0 = {step_size})", step_size, 1),
        (f"last step x {cycles} (t0 = {step_size})", step_size, cycles),
        (f"matched, one step (Tweedie at t* = {matched:.3f})", matched, "tweedie"),
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=100, help="shipped test images (<= 100)")
    parser.add_argument("--draws", type=int, default=4, help="chains per image")
    parser.add_argument("--step-size", type=float, default=0.01, help="Δt of the DDPM steps")
    parser.add_argument("--levels", type=float, nargs="+", default=[0.3, 0.6])
    parser.add_argument("--cycles", type=int, default=40, help="repeats of the last step")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=FIGURES / "noisy_input_study.json")
    args = parser.parse_args(argv)
    if not 1 <= args.images <= 100:
        raise SystemExit(f"--images must be in 1..100 (the shipped test set). Got {args.images}.")
    if not 0 < args.step_size <= 0.5:
        raise SystemExit(f"--step-size must be in (0, 0.5]. Got {args.step_size}.")
    if args.draws < 1 or args.cycles < 1:
        raise SystemExit(f"--draws and --cycles must be >= 1. Got {args.draws}, {args.cycles}.")

    prior = load_score_prior(assets.path("fashion_unet.eqx"))
    truth = load_testset()["fashion"][: args.images]
    key = jax.random.key(args.seed)
    results = []
    # the control: an unconditional draw of the same chain from N(0, I) at t = 1, scored
    # against the test images (what "a different image of the same data set" scores)
    started = time.perf_counter()
    start = jax.random.normal(jax.random.fold_in(key, 1), (args.draws * args.images, *SHAPE))
    draws, evaluations = run_chain(prior, start, jax.random.fold_in(key, 2), 1.0, args.step_size)
    draws = jax.block_until_ready(draws)
    results.append({
        "level": None, "matched_time": None, "condition": "control: N(0, I) at t0 = 1",
        "start_time": 1.0, "network_evaluations": evaluations,
        "wall_s": round(time.perf_counter() - started, 2),
        "median_max_abs": _median_max_abs(draws),
        **scores(draws, truth, args.images, args.draws),
    })  # fmt: skip
    for level in args.levels:
        matched = matched_time(prior.sde, level)
        noise_key, run_key = jax.random.split(jax.random.fold_in(key, round(level * 1000)))
        noisy = noisy_images(noise_key, jnp.asarray(truth), level)  # one y per image
        batch = jnp.tile(noisy, (args.draws, 1, 1, 1))  # draw-major
        input_scores = {
            "psnr": metric_summary(psnr(np.asarray(noisy), truth, batch=True)),
            "psnr_rescaled": metric_summary(
                psnr(np.asarray(noisy) / np.sqrt(1 - level), truth, batch=True)
            ),
            "ssim": metric_summary(ssim(np.asarray(noisy), truth, batch=True)),
        }
        print(
            f"level {level}: t* = {matched:.4f}, input PSNR {input_scores['psnr']['mean']:.2f}",
            file=sys.stderr,
        )
        for index, (label, start, cycles) in enumerate(
            conditions(matched, args.step_size, args.cycles)
        ):
            started = time.perf_counter()
            run = jax.random.fold_in(run_key, index)
            if cycles == "tweedie":
                draws, evaluations = run_chain(prior, batch, run, start, step_size=start)
            else:
                draws, evaluations = run_chain(prior, batch, run, start, args.step_size, cycles)
            draws = jax.block_until_ready(draws)
            row = {
                "level": level,
                "matched_time": matched,
                "condition": label,
                "start_time": start,
                "network_evaluations": evaluations,
                "wall_s": round(time.perf_counter() - started, 2),
                "median_max_abs": _median_max_abs(draws),
                **scores(draws, truth, args.images, args.draws),
            }
            results.append(row)
            print(
                f"  {label}: PSNR {row['psnr_draw']['mean']:.2f} (draw), "
                f"{row['psnr_mean']['mean']:.2f} (mean); {row['wall_s']} s",
                file=sys.stderr,
            )
        results.append(
            {
                "level": level,
                "matched_time": matched,
                "condition": "input",
                **{
                    "psnr_input": input_scores["psnr"],
                    "psnr_input_rescaled": input_scores["psnr_rescaled"],
                    "ssim_input": input_scores["ssim"],
                },
            }
        )

    document = {
        "command": "python analyses/noisy_input_study.py " + " ".join(sys.argv[1:] or []),
        "prior": "fashion_unet.eqx",
        "sde": {"beta_min": prior.sde.beta_min, "beta_max": prior.sde.beta_max},
        "level_reading": "y = sqrt(1 - level) x0 + sqrt(level) eps (eq. 7, 1 - abar = level)",
        "sampler": "ancestral DDPM (DDIM eta = 1), uniform steps of step_size, prior score only",
        "images": args.images,
        "draws": args.draws,
        "step_size": args.step_size,
        "cycles": args.cycles,
        "seed": args.seed,
        "device": f"{jax.devices()[0].platform}",
        "results": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(document, indent=1))
    print(markdown_table(document))


def markdown_table(document) -> str:
    """The study as a markdown table (PSNR/SSIM as mean ± std over images)."""

    def cell(summary):
        return f"{summary['mean']:.2f} ± {summary['std']:.2f}"

    lines = [
        f"({document['images']} test images, {document['draws']} draws each, Δt = "
        f"{document['step_size']}; PSNR dB / SSIM mean ± std over images)",
        "",
        "| noise ℓ | fed at | NFE | PSNR (one draw) | SSIM (one draw) | PSNR (mean of draws) "
        "| SSIM (mean of draws) | median max abs value |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in document["results"]:
        level = "—"
        if row["level"] is not None:
            level = f"{row['level']:.0%} (t* = {row['matched_time']:.3f})"
        if row["condition"] == "input":
            lines.append(
                f"| {level} | the noisy input y (y / √(1 − ℓ)) | 0 | {cell(row['psnr_input'])} "
                f"({row['psnr_input_rescaled']['mean']:.2f}) | {cell(row['ssim_input'])} | | | |"
            )
            continue
        lines.append(
            f"| {level} | {row['condition']} | {row['network_evaluations']} | "
            f"{cell(row['psnr_draw'])} | {cell(row['ssim_draw'])} | {cell(row['psnr_mean'])} | "
            f"{cell(row['ssim_mean'])} | {row['median_max_abs']:.2f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
