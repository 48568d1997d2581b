"""The paper's comparisons: the joint posterior against its baselines, on the same images.

    python analyses/compare.py --task {digits,cs_sine,sine,ood_digits,ood_cs}
        [--methods joint gaussian_noise bm3d nlm lasso gan flow] [--pairs FILE.npz]
        [--num-images 100] [--noise-std SIGMA ...] [--hyper-from FILE.json] [--out-dir DIR]
        [--suffix WORD] [--batch-size 20] [--split {test,heldout}] [--joint-settings JSON]

Tasks (x: 28 x 28 x 1 in [0, 1]):

- ``digits``: y = 0.5 x + 0.5 n, Fashion-MNIST clothing x, MNIST digits n
  (``models/digits_on_fashion.py``);
- ``cs_sine``: y = A x + n, A (392 x 784) with N(0, 1/m) entries, sinusoidal noise of average std
  ``--noise-std`` (0.2, the model file's; the authors' code used 0.1) (``models/cs_sine.py``);
- ``sine``: y = x + n_sine (``models/sine_denoise.py``); several ``--noise-std`` values make the
  noise-level sweep of the paper's Fig. 8 (PSNR vs sigma with its spread);
- ``ood_digits``, ``ood_cs``: the same forward models, priors and hyper-parameters with faces as
  the signals (the first 100 images of ``skimage.data.lfw_subset()``, 25 x 25, resized to 28 x 28
  by bilinear interpolation, ``skimage.transform.resize(order=1)``).

Test pairs: the first ``--num-images`` shipped test images (Fashion-MNIST test 0-99, held-out
digits 0-99, noise seeds 0-99: the model files' ``simulate(i)``), or faces 0-99 with the same
noise, or with ``--split heldout`` images that are not shipped (Fashion-MNIST test 1000-1099,
MNIST-5k held-out digits 500-599, noise seeds 20 000-20 099; ``splits.py``), or the pairs of
``--pairs FILE.npz`` (arrays ``signal`` (N, 28, 28[, 1]) in [0, 1] and
``noise``: digit images in [0, 1] for the digit tasks, (N, 28, 28[, 1]) sinusoidal noise for
``sine``, (N, 14, 28[, 1]) measurement noise for the CS tasks).

Each baseline is tuned by grid search for the best mean PSNR on 5 validation pairs that are
not test pairs (Fashion-MNIST test images 100-104 with held-out digits 100-104 or noise seeds
10 000-10 004; ``splits.py``), never on the test pairs; the OOD tasks and ``--pairs`` reuse the
in-distribution task's validation pairs (the same hyper-parameters). ``--hyper-from`` takes
them from an earlier run's JSON instead. ``joint`` samples ``bn.sample(module.model, y,
**module.defaults)`` (the posterior mean of the draws that did not diverge); at a noise std
other than the model file's it swaps in the analytic sinusoidal prior at that std (the learned
one is trained at 0.2) and tunes PiGDM's weight and the start time on the validation pairs.
``--joint-settings`` replaces entries of those defaults (e.g. a many-step reference sampler).
What the baselines are told: the forward model and the noise's per-pixel mean and std (the
4 000 training digits' moments, or the analytic sinusoidal std), never the noise itself.

Writes ``compare_<tag>.json``, ``.md`` (PSNR, SSIM, seconds per image, machine) and ``.png``
(rows: ground truth, input, each method, as the paper's Fig. 2) to ``--out-dir``
(``analyses/figures``). The last line of stdout is one JSON object ``{method: {"psnr": ...,
"ssim": ..., "seconds_per_image": ...}}``; with several ``--noise-std`` values each entry is a
list over them, with the list ``"noise_std"`` beside, and ``compare_<task>_sweep[_<suffix>]
.json/.png`` hold the sweep.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import jax
import numpy as np

import bayesnoise as bn
from bayesnoise import baselines
from bayesnoise.atomic import atomic_path
from bayesnoise.checkpoints import read_header
from bayesnoise.data import load_testset, mnist_5k_split
from bayesnoise.metrics import psnr, ssim
from bayesnoise.model_file import load_model_file
from bayesnoise.operators import Identity

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "analyses"))
from splits import SPLITS  # noqa: E402
from splits import pairs as split_pairs  # noqa: E402

FIGURES = ROOT / "analyses" / "figures"
TASKS = ("digits", "cs_sine", "sine", "ood_digits", "ood_cs")
METHODS = ("joint", "gaussian_noise", "bm3d", "nlm", "lasso", "gan", "flow")
MODEL_FILE = {
    "digits": "digits_on_fashion",
    "ood_digits": "digits_on_fashion",
    "cs_sine": "cs_sine",
    "ood_cs": "cs_sine",
    "sine": "sine_denoise",
}
# Methods that apply to each forward model. BM3D / NLM need a denoising problem; FLOW uses
# the digits flow as the noise density on the digit tasks and, on sinusoidal noise (Gaussian
# with a known per-element std), that Gaussian itself; the Gaussian-noise baseline ignores the
# digits' structure, and on sinusoidal noise it would be the joint method with the analytic
# prior.
APPLICABLE = {
    "digits_on_fashion": METHODS,
    "sine_denoise": ("joint", "bm3d", "nlm", "lasso", "gan", "flow"),
    "cs_sine": ("joint", "lasso", "gan", "flow"),
}
VALIDATION_IMAGES = 5
JOINT_SETTINGS = (
    "sampler",
    "sampler_options",
    "num_steps",
    "start_time",
    "num_chains",
    "num_draws",
)
SHAPE = (28, 28, 1)


@dataclass
class Task:
    """A forward model, what the baselines know of it, and its validation and test pairs."""

    name: str
    module: object
    noise_std: float | None  # the sinusoidal noise's average std (None: digits)
    problem: baselines.LinearProblem
    model: object  # the NumPyro model the joint method samples
    validation: Callable[[], tuple[np.ndarray, np.ndarray]]  # (x, n), loaded when tuning
    test: tuple[np.ndarray, np.ndarray]  # (x, n)
    joint_defaults: dict  # bn.sample's settings for joint: module.defaults, --joint-settings

    def observe(self, x: np.ndarray, n: np.ndarray) -> np.ndarray:
        """y for a batch of signals and noises."""
        signal = self.problem.signal_operator
        y = jax.vmap(signal)(x) + jax.vmap(self.problem.noise_operator)(n)
        return np.asarray(y, dtype=np.float32)


def faces(num_images: int) -> np.ndarray:
    """The first ``num_images`` LFW faces of ``skimage.data.lfw_subset()``, 28 x 28 x 1.

    They are 25 x 25 grey in [0, 1]; bilinear interpolation (``order=1``, no anti-aliasing: it
    is an upsampling) brings them to 28 x 28, the priors' size, keeping the whole face in view.
    """
    from skimage.data import lfw_subset
    from skimage.transform import resize

    images = lfw_subset()[:100][:num_images]
    resized = [resize(image, SHAPE[:2], order=1, anti_aliasing=False) for image in images]
    return np.clip(np.stack(resized)[..., None], 0.0, 1.0).astype(np.float32)


def sinusoidal_noise(module, noise_std: float, seeds) -> np.ndarray:
    """The model file's sinusoidal noise at ``noise_std``, one draw per seed."""
    if hasattr(module, "measurement"):  # CS: noise on the 392 measurements
        std = np.asarray(bn.sinusoidal_std(module.NOISE_LAYOUT, noise_std)).ravel()
        draws = [std * jax.random.normal(jax.random.key(seed), (392,)) for seed in seeds]
    else:
        draws = [
            bn.sample_sinusoidal_noise(jax.random.key(seed), module.SHAPE, noise_std)
            for seed in seeds
        ]
    return np.stack([np.asarray(draw) for draw in draws]).astype(np.float32)


def problem_and_model(model_name: str, module, noise_std: float | None):
    """What the baselines know (a LinearProblem) and the joint method's model."""
    if model_name == "digits_on_fashion":
        digits = mnist_5k_split()[0][0]
        problem = baselines.LinearProblem(
            module.mixing,
            module.mixing,
            noise_mean=digits.mean(0),
            noise_std=np.sqrt(np.maximum(digits.var(0), 1e-4)),
        )
        return problem, module.model
    same = np.isclose(noise_std, module.AVERAGE_STD)
    if model_name == "cs_sine":
        std = np.asarray(bn.sinusoidal_std(module.NOISE_LAYOUT, noise_std)).ravel()
        problem = baselines.LinearProblem(module.measurement, noise_std=std)
        if same:
            return problem, module.model
        noise_prior = bn.GaussianPrior((392,), module.signal_prior.sde, variance=std**2)
        model = bn.joint_model(
            module.signal_prior,
            noise_prior,
            signal_operator=module.measurement,
            measurement_std=0.01,
        )
        return problem, model
    std = np.asarray(bn.sinusoidal_std(module.SHAPE, noise_std))
    problem = baselines.LinearProblem(Identity(module.SHAPE), noise_std=std)
    if same:
        return problem, module.model
    noise_prior = bn.sinusoidal_noise_prior(module.SHAPE, noise_std, module.signal_prior.sde)
    return problem, bn.joint_model(module.signal_prior, noise_prior, measurement_std=0.01)


def check_pairs(path: str | Path, task_name: str) -> tuple[np.ndarray, np.ndarray]:
    """Load and validate ``--pairs FILE.npz``: arrays ``signal`` and ``noise``.

    Returns ``(signal (N, 28, 28, 1), noise (N, *noise shape))`` as float32.

    Raises
    ------
    ValueError
        Naming ``--pairs``, the array, what was expected and what was received.
    """
    try:
        archive = np.load(path)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"--pairs must be a readable .npz file. Got {str(path)!r}: {error}"
        ) from None
    with archive:
        missing = [name for name in ("signal", "noise") if name not in archive.files]
        if missing:
            raise ValueError(
                f"--pairs must hold arrays 'signal' and 'noise'. Got arrays {archive.files} "
                f"(missing {missing})."
            )
        signal, noise = archive["signal"], archive["noise"]
    model_name = MODEL_FILE[task_name]
    noise_shape = {"cs_sine": (14, 28, 1)}.get(model_name, SHAPE)
    checked = []
    for name, array, shape in (("signal", signal, SHAPE), ("noise", noise, noise_shape)):
        expected = f"(N, {shape[0]}, {shape[1]}) or (N, {shape[0]}, {shape[1]}, 1)"
        if array.ndim == 3:
            array = array[..., None]
        if array.ndim != 4 or array.shape[1:] != shape or array.shape[0] == 0:
            raise ValueError(
                f"--pairs array {name!r} must have shape {expected} with N >= 1 for task "
                f"{task_name!r}. Got shape {array.shape}."
            )
        if not (np.issubdtype(array.dtype, np.integer) or np.issubdtype(array.dtype, np.floating)):
            raise ValueError(f"--pairs array {name!r} must be real numbers. Got {array.dtype}.")
        array = array.astype(np.float32)
        if not np.all(np.isfinite(array)):
            raise ValueError(f"--pairs array {name!r} must be finite. Got NaN or inf values.")
        in_unit_range = name == "signal" or model_name == "digits_on_fashion"
        if in_unit_range and (array.min() < 0.0 or array.max() > 1.0):
            raise ValueError(
                f"--pairs array {name!r} must have values in [0, 1]. "
                f"Got values in [{array.min():.4g}, {array.max():.4g}]."
            )
        checked.append(array)
    signal, noise = checked
    if len(signal) != len(noise):
        raise ValueError(
            "--pairs arrays 'signal' and 'noise' must hold the same number of pairs. "
            f"Got {len(signal)} and {len(noise)}."
        )
    if model_name == "cs_sine":
        noise = noise.reshape(len(noise), -1)
    return signal, noise


def make_task(
    name: str,
    num_images: int,
    noise_std: float | None,
    pairs_file=None,
    split: str = "test",
    joint_settings: dict | None = None,
) -> Task:
    """The task's forward model, what the baselines know, and its validation and test pairs
    (``split="heldout"``: ``splits.py``'s held-out images and digits, noise seeds 20 000 + i).
    ``joint_settings`` replace entries of the model file's defaults for the joint method."""
    model_name = MODEL_FILE[name]
    module = load_model_file(ROOT / "models" / f"{model_name}.py")
    if model_name == "digits_on_fashion":
        noise_std = None
    elif noise_std is None:
        noise_std = float(module.AVERAGE_STD)
    problem, model = problem_and_model(model_name, module, noise_std)
    if pairs_file is not None:
        x, n = (array[:num_images] for array in check_pairs(pairs_file, name))
    elif split == "heldout":
        _, x, n, _ = split_pairs(model_name, "heldout", num_images)
        if noise_std is not None:
            first_seed = SPLITS["heldout"][2]
            n = sinusoidal_noise(module, noise_std, range(first_seed, first_seed + len(x)))
    else:
        x = faces(num_images) if name.startswith("ood") else load_testset()["fashion"][:num_images]
        if noise_std is None:
            n = load_testset()["digits"][: len(x)]
        else:  # seeds 0, 1, ...: the model files' simulate(i)
            n = sinusoidal_noise(module, noise_std, range(len(x)))

    def validation():
        """Fashion-MNIST test images 100-104 (``splits.py``), the noise at ``noise_std``."""
        _, x, n, _ = split_pairs(model_name, "validation", VALIDATION_IMAGES)
        if noise_std is not None:
            n = sinusoidal_noise(module, noise_std, range(10_000, 10_000 + len(x)))
        return x, n

    joint_defaults = {**module.defaults, **(joint_settings or {})}
    return Task(name, module, noise_std, problem, model, validation, (x, n), joint_defaults)


# ---- methods: reconstruct(observation, task, **hyper) -> x_hat (N, 28, 28, 1) ------------------


def posterior_mean(tree) -> np.ndarray:
    """Per image, the mean of the draws of x that did not diverge (NaN if none is left)."""
    draws = np.asarray(tree.posterior["x"])  # (chain, draw, image, *shape)
    draws = draws.reshape(-1, *draws.shape[2:])
    finite = np.isfinite(draws).all(axis=tuple(range(2, draws.ndim)), keepdims=True)
    count = finite.sum(axis=0)
    total = np.where(finite, draws, 0.0).sum(axis=0)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan).astype(np.float32)


def joint(observation, task: Task, **defaults) -> np.ndarray:
    """``bn.sample(model, y, **module.defaults)``: the joint posterior mean of x."""
    tree = bn.sample(task.model, observation, progress=False, **defaults)
    return np.clip(posterior_mean(tree), 0.0, 1.0)


def gaussian_noise(observation, task: Task, **hyper) -> np.ndarray:
    """The learned signal prior with n ~ N(E[n], diag std(n)^2): the structure ignored."""
    return baselines.gaussian_noise_diffusion(
        observation, task.problem, signal_prior=task.module.signal_prior, **hyper
    )


def observation_input(observation, task: Task) -> np.ndarray:
    """The 'no method' row: the un-mixed observation (y - b E[n]) / a, or A⁺(y - E[n])."""
    if MODEL_FILE[task.name] == "cs_sine":
        return baselines.minimum_norm(observation, task.problem)
    return np.clip(baselines.denoising_input(observation, task.problem)[0], 0.0, 1.0)


def authors_bm3d(observation, task: Task) -> np.ndarray:
    """BM3D as the authors' code ran it on the digits: on y itself, sigma 0.5, scale kept."""
    as_noisy_x = baselines.LinearProblem(Identity(SHAPE), noise_std=0.5)
    return baselines.bm3d_denoise(observation, as_noisy_x, sigma=0.5)


def on_problem(function):
    """A baseline's ``reconstruct(y, problem, **hyper)`` as ``reconstruct(y, task, **hyper)``."""
    return lambda observation, task, **hyper: function(observation, task.problem, **hyper)


def grid(method: str, task: Task) -> list[dict]:
    """The hyper-parameters tried on the validation pairs (one entry: nothing to tune)."""
    if method in ("bm3d", "nlm"):
        zeros = np.zeros((1, *task.problem.observation_shape), np.float32)
        implied_std = baselines.denoising_input(zeros, task.problem)[1]
    if method == "bm3d":
        return [{"sigma": round(s * implied_std, 4)} for s in (0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 4.0)]
    if method == "nlm":
        return [
            {"h": round(h * implied_std, 4), "patch_size": p, "patch_distance": 6}
            for h, p in itertools.product((0.4, 0.8, 1.2, 1.6, 2.4, 3.2), (3, 5))
        ]
    if method == "lasso":
        return [
            {"alpha": a, "wavelet": w, "weighted": v}
            for a, w, v in itertools.product(
                (1e-2, 3e-2, 0.1, 0.3, 1.0, 3.0), ("haar", "db2"), (False, True)
            )
        ]
    if method == "gan":  # restarts, steps and step size: the best on validation (gan.py)
        # 0.25-1 added when CS and sine chose 2, then the grid's edge; 0.1 and 32 when the
        # longer-trained generator chose 0.25 (CS) and 16 (digits)
        return [
            {"weight": w, "num_steps": 500, "restarts": 10, "learning_rate": 0.1}
            for w in (0.1, 0.25, 0.5, 1.0, 2.0, 8.0, 16.0, 32.0)
        ]
    if method == "flow" and task.noise_std is None:  # weight 1, step 0.003: tuned on these
        return [{}]  # 5 validation pairs with the digits flow (flow.py)
    if method == "flow":  # the exact Gaussian noise density: only eq. 8's weight is tuned
        # 0.03 and 0.1 added when sine noise at sigma 0.2 chose 0.3, then the grid's edge;
        # 10 when CS at sigma 0.1 chose 3, then the edge
        return [{"noise_flow": "gaussian", "weight": w} for w in (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)]
    if method == "gaussian_noise":  # the joint method's sampler, or remove_digits.py's
        defaults = task.module.defaults
        return [
            {
                "sampler": defaults["sampler"],
                "sampler_options": defaults["sampler_options"],
                "num_steps": defaults["num_steps"],
                "start_time": defaults["start_time"],
                "num_draws": defaults["num_chains"] * defaults["num_draws"],
            },
            {
                "sampler": "pigdm",
                "sampler_options": {"covariance": "scalar"},
                "num_steps": 100,
                "start_time": 0.6,
                "num_draws": 4,
            },
        ]
    if method == "joint":
        defaults = dict(task.joint_defaults)
        if task.noise_std is None or task.noise_std == task.module.AVERAGE_STD:
            return [defaults]  # the model file's (tuned on validation pairs) or --joint-settings
        # A noise level the model file was not tuned at (the analytic prior at that std):
        # PiGDM's weight and the start time tuned here as the baselines' are. At sigma 0.05,
        # w = 1 (tuned at 0.2) scored 29.24 dB on these pairs and w = 4 from t0 = 0.3 31.23:
        # the scalar r_t^2 overstates Cov[n_0 | n_t] for small noise (PiGDM's prior_variance).
        return [
            {**defaults, "start_time": t0,
             "sampler_options": {**defaults["sampler_options"], "guidance_weight": w}}
            for t0, w in itertools.product((0.3, 0.6), (1.0, 2.0, 4.0, 8.0))
        ]  # fmt: skip
    return [{}]


RECONSTRUCT = {
    "input": observation_input,
    "joint": joint,
    "gaussian_noise": gaussian_noise,
    "bm3d": on_problem(baselines.bm3d_denoise),
    "bm3d_authors": authors_bm3d,
    "nlm": on_problem(baselines.nl_means_denoise),
    "lasso": on_problem(baselines.wavelet_lasso),
    "gan": on_problem(baselines.csgm),
    "flow": on_problem(baselines.flow_map),
}
LABEL = {
    "input": "input: un-mixed observation (y − b E[n]) / a",
    "joint": "joint posterior (model-file defaults)",
    "gaussian_noise": "Gaussian-noise diffusion (same signal prior)",
    "bm3d": "BM3D (scale undone)",
    "bm3d_authors": "BM3D on y, σ = 0.5, scale not undone (the authors' code)",
    "nlm": "non-local means (scale undone)",
    "lasso": "wavelet LASSO (FISTA)",
    "gan": "GAN: DCGAN + CSGM, eq. 9 (generator: {fashion_dcgan.eqx})",
    "flow": "FLOW: Whang et al., eq. 8 (flows: {fashion_flow.eqx}, {digits_flow.eqx}; "
    "sinusoidal noise: its Gaussian)",
}


def training_of(asset: str) -> str:
    """How long a shipped baseline network was trained, from its header: '12000 steps, 80 min'."""
    training = read_header(bn.assets.path(asset))["training"]
    minutes = training.get("minutes", training.get("wall_time_s", 0.0) / 60)
    return f"{training['steps']} steps, {float(minutes):.0f} min"


def label(method: str) -> str:
    """A method's row label; the learned baselines' say how long their networks trained."""
    text = LABEL[method]
    for asset in ("fashion_dcgan.eqx", "fashion_flow.eqx", "digits_flow.eqx"):
        if "{" + asset + "}" in text:
            text = text.replace("{" + asset + "}", training_of(asset))
    return text


def joint_label(task: Task) -> str:
    """The joint row's label: the model file's defaults, or which of them --joint-settings set."""
    changed = [key for key, value in task.joint_defaults.items()
               if task.module.defaults.get(key) != value]  # fmt: skip
    if not changed:
        return LABEL["joint"]
    return f"joint posterior (--joint-settings: {', '.join(changed)})"


# ---- running, scoring, timing -----------------------------------------------------------------


def scores(estimate: np.ndarray, truth: np.ndarray) -> dict:
    """Mean and std over images of PSNR and SSIM (data range 1); estimates with NaN skipped."""
    usable = np.isfinite(estimate).all(axis=tuple(range(1, estimate.ndim)))
    if not usable.any():
        nan = float("nan")
        return {"psnr": nan, "psnr_std": nan, "ssim": nan, "ssim_std": nan}
    psnrs = psnr(estimate[usable], truth[usable], batch=True)
    ssims = ssim(estimate[usable], truth[usable], batch=True)
    return {
        "psnr": float(np.mean(psnrs)),
        "psnr_std": float(np.std(psnrs)),
        "ssim": float(np.mean(ssims)),
        "ssim_std": float(np.std(ssims)),
        "images_without_estimate": int((~usable).sum()),
        "psnr_per_image": [round(float(value), 3) for value in psnrs],
    }


def run_batches(method, observation, task, hyper, batch_size) -> tuple[np.ndarray, dict]:
    """The estimate of all images, in batches, and the seconds per image.

    The first batch pays JAX's compilation (and a smaller last one compiles again): with more
    than one full batch the time per image is taken over the full batches after the first
    (``timing: "after the first batch"``), else it includes compilation.
    """
    estimates, seconds = [], []
    for start in range(0, len(observation), batch_size):
        batch = observation[start : start + batch_size]
        started = time.perf_counter()
        estimates.append(np.asarray(RECONSTRUCT[method](batch, task, **hyper)))
        seconds.append((time.perf_counter() - started, len(batch)))
    # a smaller last batch compiles again: time the full batches after the first
    timed = [entry for entry in seconds[1:] if entry[1] == seconds[0][1]] or seconds
    timing = {
        "seconds_per_image": sum(s for s, _ in timed) / sum(n for _, n in timed),
        "timing": "after the first batch" if timed is not seconds else "with compilation",
        "seconds_total": sum(s for s, _ in seconds),
    }
    return np.concatenate(estimates), timing


def tune(method: str, task: Task, batch_size: int) -> tuple[dict, list[dict]]:
    """The grid entry with the best mean PSNR on the validation pairs (among those that leave
    the fewest images without an estimate), and every entry's score."""
    candidates = grid(method, task)
    if len(candidates) == 1:
        return candidates[0], []
    x, n = task.validation()
    observation = task.observe(x, n)
    tried = []
    for hyper in candidates:
        estimate, _ = run_batches(method, observation, task, hyper, batch_size)
        row = scores(estimate, x)
        missing = row.get("images_without_estimate", len(x))  # absent: none has an estimate
        tried.append({"hyper": hyper, "psnr": row["psnr"], "ssim": row["ssim"],
                      "images_without_estimate": missing})  # fmt: skip
        print(f"  tune {method} {hyper}: {row['psnr']:.2f} dB", file=sys.stderr, flush=True)
    best = max(tried, key=validation_rank)
    return best["hyper"], tried


def validation_rank(row: dict) -> tuple[int, float]:
    """Fewest images left without an estimate (a diverged sampler), then the highest PSNR."""
    return (-row["images_without_estimate"], -np.inf if np.isnan(row["psnr"]) else row["psnr"])


def machine() -> str:
    """The CPU (or accelerator) the times were measured on, and the load when they were."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    devices = ", ".join(sorted({device.device_kind for device in jax.devices()}))
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    return f"{cpu}, {os.cpu_count()} cores visible, JAX on {devices}; load average {load}"


def compare(task: Task, methods, batch_size: int, hyper_from: dict | None) -> tuple[list, dict]:
    """Run ``input`` and each method on the test pairs: rows and a few estimates to show."""
    x, n = task.test
    observation = task.observe(x, n)
    model_name = MODEL_FILE[task.name]
    names = ["input", *methods]
    if "bm3d" in methods and model_name == "digits_on_fashion":
        names.insert(names.index("bm3d") + 1, "bm3d_authors")
    rows, shown = [], {}
    for method in names:
        if hyper_from is not None and method in hyper_from:
            hyper, tried = hyper_from[method], []
        else:
            hyper, tried = tune(method, task, batch_size)
        estimate, timing = run_batches(method, observation, task, hyper, batch_size)
        row = {
            "method": method,
            "label": label(method) if method != "joint" else joint_label(task),
            "hyper": hyper,
            **scores(estimate, x),
            **timing,
            "num_images": len(x),
            "validation": tried,
        }
        rows.append(row)
        shown[method] = estimate[:8]
        print(
            f"{task.name} {method}: {row['psnr']:.2f} ± {row['psnr_std']:.2f} dB, "
            f"SSIM {row['ssim']:.3f}, {row['seconds_per_image']:.3g} s / image",
            file=sys.stderr,
            flush=True,
        )
    return rows, shown


def markdown(result: dict) -> str:
    """The result as a Markdown table (one row per method) with its command and machine."""
    lines = [
        f"Task `{result['task']}`"
        + (f", sinusoidal noise std {result['noise_std']}" if result["noise_std"] else "")
        + f", {result['num_images']} test pairs ({result['pairs']}).",
        "",
        "| method | tuned hyper-parameters | PSNR (dB) | SSIM | s / image |",
        "|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        hyper = ", ".join(f"{k} = {v}" for k, v in row["hyper"].items()) or "—"
        lines.append(
            f"| {row['label']} | {hyper} | {row['psnr']:.2f} ± {row['psnr_std']:.2f} | "
            f"{row['ssim']:.3f} ± {row['ssim_std']:.3f} | {row['seconds_per_image']:.3g} |"
        )
    lines += ["", f"`{result['command']}`", "", f"Machine: {result['machine']}."]
    return "\n".join(lines) + "\n"


def to_image(array: np.ndarray) -> np.ndarray:
    return np.clip(np.nan_to_num(np.asarray(array)[..., 0], nan=0.0), 0.0, 1.0)


def figure(path: Path, truth: np.ndarray, rows: list[dict], shown: dict, title: str) -> None:
    """Fig. 2's layout: rows ground truth, input, each method; one column per test image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    columns = min(6, len(truth))
    labels = [("ground truth", truth)] + [
        (f"{row['method']}\n{row['psnr']:.1f} dB", shown[row["method"]]) for row in rows
    ]
    fig, axes = plt.subplots(
        len(labels), columns, figsize=(1.0 * columns + 1.3, 1.0 * len(labels) + 0.3), squeeze=False
    )
    for (label, images), axis_row in zip(labels, axes, strict=True):
        for index, axis in enumerate(axis_row):
            axis.imshow(to_image(images[index]), cmap="gray", vmin=0.0, vmax=1.0)
            axis.set_xticks([])
            axis.set_yticks([])
        axis_row[0].set_ylabel(label, fontsize=7, rotation=0, ha="right", va="center")
    fig.suptitle(title, fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as temporary:
        fig.savefig(temporary, format="png", dpi=100)
    plt.close(fig)


def sweep_figure(path: Path, sweep: dict, task_name: str) -> None:
    """The paper's Fig. 8: PSNR against the noise std, mean with the images' 10-90% spread."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(5, 3.5))
    for method, entry in sweep["methods"].items():
        stds = np.asarray(sweep["noise_std"])
        per_image = entry["psnr_per_image"]
        low = [np.percentile(values, 10) for values in per_image]
        high = [np.percentile(values, 90) for values in per_image]
        axis.plot(stds, entry["psnr"], marker="o", label=method)
        axis.fill_between(stds, low, high, alpha=0.15)
    axis.set_xlabel("average std of the sinusoidal noise")
    axis.set_ylabel("PSNR (dB)")
    axis.set_title(f"{task_name}: mean and 10-90% of images", fontsize=9)
    axis.legend(fontsize=7)
    fig.tight_layout()
    with atomic_path(path) as temporary:
        fig.savefig(temporary, format="png", dpi=100)
    plt.close(fig)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as temporary:
        temporary.write_text(text)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", required=True, choices=TASKS)
    parser.add_argument("--methods", nargs="+", choices=METHODS, help="default: all that apply")
    parser.add_argument("--pairs", type=Path, help="FILE.npz with arrays signal and noise")
    parser.add_argument(
        "--split",
        choices=["test", "heldout"],
        default="test",
        help="heldout: Fashion-MNIST test images 1000- (not shipped), splits.py",
    )
    parser.add_argument("--num-images", type=int, default=100)
    parser.add_argument(
        "--noise-std", type=float, nargs="+", help="sinusoidal noise std(s); several: a sweep"
    )
    parser.add_argument(
        "--hyper-from", type=Path, help="take hyper-parameters from an earlier run's JSON"
    )
    parser.add_argument(
        "--joint-settings",
        help="JSON: bn.sample settings for joint instead of the model file's, e.g. "
        '\'{"sampler": "dps", "num_steps": 200, "sampler_options": {"guidance_weight": 1.0}}\'',
    )
    parser.add_argument("--batch-size", type=int, default=20, help="images per call")
    parser.add_argument("--out-dir", type=Path, default=FIGURES)
    parser.add_argument("--suffix", default="", help="appended to the output files' names")
    args = parser.parse_args(argv)
    applicable = APPLICABLE[MODEL_FILE[args.task]]
    if args.methods is None:
        args.methods = list(applicable)
    unsupported = [method for method in args.methods if method not in applicable]
    if unsupported:
        parser.error(
            f"--methods {unsupported} do not apply to task {args.task!r}; "
            f"expected some of {list(applicable)}."
        )
    if args.num_images < 1:
        parser.error(f"--num-images must be >= 1. Got {args.num_images}.")
    if args.batch_size < 1:
        parser.error(f"--batch-size must be >= 1. Got {args.batch_size}.")
    if args.noise_std is not None:
        if MODEL_FILE[args.task] == "digits_on_fashion":
            parser.error(f"--noise-std applies to the sinusoidal tasks, not {args.task!r}.")
        bad = [value for value in args.noise_std if not (0.0 < value < np.inf)]
        if bad:
            parser.error(f"--noise-std must be positive and finite. Got {bad}.")
    if args.split == "heldout" and (args.pairs is not None or args.task.startswith("ood")):
        parser.error(
            f"--split heldout applies to the in-distribution tasks without --pairs. Got --task "
            f"{args.task}" + (f" and --pairs {args.pairs}." if args.pairs else ".")
        )
    if args.pairs is not None and not args.pairs.is_file():
        parser.error(f"--pairs must be an existing .npz file. Got {str(args.pairs)!r}.")
    if args.joint_settings is not None:
        try:
            settings = json.loads(args.joint_settings)
        except ValueError:
            settings = None
        if not isinstance(settings, dict) or not set(settings) <= set(JOINT_SETTINGS):
            parser.error(
                f"--joint-settings must be a JSON object with keys among {list(JOINT_SETTINGS)}. "
                f"Got {args.joint_settings!r}."
            )
        args.joint_settings = settings
    if args.hyper_from is not None:
        try:
            rows = json.loads(args.hyper_from.read_text())["rows"]
            args.hyper_from = {row["method"]: row["hyper"] for row in rows}
        except (OSError, ValueError, KeyError, TypeError) as error:
            parser.error(
                "--hyper-from must be a JSON file written by compare.py (a 'rows' list with "
                f"'method' and 'hyper'). Got {str(args.hyper_from)!r}: {error!r}."
            )
    return args


def run_one(args, noise_std: float | None) -> dict:
    """One task at one noise level: files written, the result returned."""
    if args.pairs is not None:
        try:
            check_pairs(args.pairs, args.task)
        except ValueError as error:
            raise SystemExit(f"compare.py: error: {error}") from None
    task = make_task(
        args.task, args.num_images, noise_std, args.pairs, args.split, args.joint_settings
    )
    started_machine = machine()
    rows, shown = compare(task, args.methods, args.batch_size, args.hyper_from)
    tag = args.task + (f"_std{task.noise_std:g}" if task.noise_std is not None else "")
    tag += f"_{args.suffix}" if args.suffix else ""
    if args.pairs is not None:
        tag += f"_{args.pairs.stem}"
        pairs = f"--pairs {args.pairs}"
    elif args.split == "heldout":
        tag += "_heldout"
        pairs = (
            "held-out pairs (not shipped; splits.py): Fashion-MNIST test images 1000-, MNIST-5k "
            "held-out digits 500- or noise seeds 20 000 + i"
        )
    elif args.task.startswith("ood"):
        pairs = "LFW faces 0-99 of skimage.data.lfw_subset(), resized to 28 x 28"
    else:
        pairs = "the shipped test set, the model file's simulate(i)"
    result = {
        "task": args.task,
        "model_file": f"models/{MODEL_FILE[args.task]}.py",
        "noise_std": task.noise_std,
        "num_images": len(task.test[0]),
        "pairs": pairs,
        "command": "python analyses/compare.py " + " ".join(sys.argv[1:]),
        "machine": started_machine,
        "rows": rows,
    }
    args.out_dir.mkdir(parents=True, exist_ok=True)
    write_text(args.out_dir / f"compare_{tag}.json", json.dumps(result, indent=2) + "\n")
    write_text(args.out_dir / f"compare_{tag}.md", markdown(result))
    figure(args.out_dir / f"compare_{tag}.png", task.test[0], rows, shown, tag)
    print(markdown(result))
    return result


def main(argv=None) -> dict:
    args = parse_args(argv)
    stds = args.noise_std or [None]
    results = [run_one(args, noise_std) for noise_std in stds]
    keys = ("psnr", "ssim", "seconds_per_image")
    if len(results) == 1:
        summary = {
            row["method"]: {key: row[key] for key in keys}
            for row in results[0]["rows"]
            if row["method"] in args.methods
        }
    else:
        summary = {
            method: {
                "noise_std": stds,
                **{key: [by_method(result, method)[key] for result in results] for key in keys},
            }
            for method in args.methods
        }
        sweep = {
            "task": args.task,
            "noise_std": stds,
            "command": results[0]["command"],
            "methods": {
                method: {
                    key: [by_method(result, method)[key] for result in results]
                    for key in (*keys, "psnr_std", "ssim_std", "psnr_per_image")
                }
                for method in ["input", *args.methods]
            },
        }
        name = f"compare_{args.task}_sweep" + (f"_{args.suffix}" if args.suffix else "")
        write_text(args.out_dir / f"{name}.json", json.dumps(sweep) + "\n")
        sweep_figure(args.out_dir / f"{name}.png", sweep, args.task)
    print(json.dumps(summary))
    return summary


def by_method(result: dict, method: str) -> dict:
    return next(row for row in result["rows"] if row["method"] == method)


if __name__ == "__main__":
    main()
