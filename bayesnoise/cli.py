"""Command line: ``bayesnoise sample`` / ``bayesnoise report`` / ``bayesnoise train``."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

from bayesnoise.atomic import atomic_write_bytes, writable_directory

__all__ = ["main", "DivergedRunError"]


class DivergedRunError(RuntimeError):
    """Every trajectory diverged: the outputs were written, but there is no posterior."""


def _load_input(path: str, option: str, model=None):
    """The image or array file given to ``option``, as float32 in the model's units.

    Any format :func:`bayesnoise.image_io.read_image` reads; every way the file can be wrong
    (missing, empty, damaged, an unknown format, a dtype with no mapping to [0, 1], a shape
    the model does not take) becomes one error naming the option and the file.
    """
    from bayesnoise.image_io import fit_shape, read_image

    source = f"{option} {path!r}"
    image = read_image(path, name=source)
    expected = getattr(model, "observation_shape", None)
    if expected is not None:
        image = image._replace(values=fit_shape(image.values, expected, source))
    return image


def _version() -> str:
    """The installed distribution's version (``importlib.metadata``)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("bayesnoise")
    except PackageNotFoundError:
        return "unknown (not installed)"


def _say(args):
    """Where human text goes: stdout; stderr with ``--json``; nowhere with ``--quiet``."""
    if getattr(args, "quiet", False):
        return lambda *parts: None
    stream = sys.stderr if getattr(args, "json", False) else sys.stdout
    return lambda *parts: print(*parts, file=stream)


def _latent_shapes(model) -> dict[str, tuple[int, ...]] | None:
    """Shapes of the model's latent sites (``{"x": ..., "n": ...}``), without sampling.

    Latents are replaced by zeros of their shape and the model is traced abstractly
    (``jax.eval_shape``); ``None`` if the model cannot be traced that way.
    """
    import jax
    import jax.numpy as jnp
    from numpyro import handlers

    def latents():
        zeros = handlers.substitute(model, substitute_fn=lambda site: jnp.zeros(site["fn"].shape()))
        trace = handlers.trace(handlers.seed(zeros, rng_seed=0)).get_trace()
        return {
            name: site["value"]
            for name, site in trace.items()
            if site["type"] == "sample" and not site["is_observed"]
        }

    try:
        return {name: tuple(value.shape) for name, value in jax.eval_shape(latents).items()}
    except Exception:  # an unusual model: only the observation-based check below applies
        return None


def _check_truth(truth: np.ndarray, observation: np.ndarray, model) -> np.ndarray:
    """``--truth`` must be x of the model's signal shape, with the observation's image count;
    returned with a channel axis added where a 2-D image needs one."""
    observation_shape = tuple(getattr(model, "observation_shape", observation.shape))
    batch = observation.shape[:1] if observation.shape[1:] == observation_shape else ()
    shapes = _latent_shapes(model)
    if shapes is not None and "x" in shapes:
        expected, what = batch + shapes["x"], f"the model's signal shape {shapes['x']}"
    else:
        expected, what = observation.shape, "the observation's shape"
    if batch:
        what += f" for each of the observation's {batch[0]} images"
    if truth.shape + (1,) == expected:  # a 2-D image gets one channel
        truth = truth[..., None]
    if truth.shape != expected:
        raise ValueError(
            f"--truth must have {what}: {expected}. Got {truth.shape} "
            f"(the observation has shape {observation.shape})."
        )
    return truth


def _write_json(path: Path, content: dict) -> None:
    """Write ``content`` as indented JSON at ``path`` atomically (mode ``0o666 & ~umask``)."""
    atomic_write_bytes(path, json.dumps(content, indent=2).encode())


def _parse_options(text: str | None) -> dict | None:
    """The ``--options`` JSON object, or one error naming ``--options``."""
    if text is None:
        return None
    try:
        options = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(
            f"--options must be JSON (an object of sampler options): {error}. Got {text!r}."
        ) from error
    if not isinstance(options, dict):
        raise ValueError(f"--options must be a JSON object. Got {text!r}.")
    return options


def _options_for_sampler(options: dict, sampler: str, file_sampler: str, say=print) -> dict:
    """The model file's ``sampler_options`` (written for ``file_sampler``) that ``sampler``
    takes; the others are dropped, and both are printed."""
    from bayesnoise.samplers import get_sampler

    taken = get_sampler(sampler).option_defaults
    kept = {name: value for name, value in options.items() if name in taken}
    dropped = sorted(set(options) - set(kept))
    if dropped:
        say(
            f"--sampler {sampler} differs from the model file's sampler {file_sampler}: dropped "
            f"its sampler_options {dropped} ({sampler} does not take them); kept {sorted(kept)}."
        )
    return kept


def _metrics(posterior: dict, truth: dict) -> dict:
    """PSNR/SSIM (images) or RMSE (vectors) of the posterior mean of each latent against the
    truth, and the coverage of the truth by central intervals (randomised PIT, see
    :mod:`bayesnoise.calibration`), over the draws that did not diverge; None for a latent
    with no such draw."""
    from bayesnoise.calibration import coverage_summary
    from bayesnoise.metrics import psnr, ssim

    metrics = {}
    for name, value in truth.items():
        draws = posterior[name].reshape((-1,) + posterior[name].shape[2:])
        draws = draws[np.all(np.isfinite(draws.reshape(len(draws), -1)), axis=1)]
        if len(draws) == 0:
            metrics[name] = None
            continue
        mean = draws.mean(axis=0)
        if value.ndim >= 2:  # an image: PSNR / SSIM (data range 1)
            metrics[name] = {
                "psnr_posterior_mean_db": psnr(mean, value, data_range=1.0),
                "ssim_posterior_mean": ssim(mean, value, data_range=1.0),
            }
        else:  # a vector, e.g. noise on compressed-sensing measurements
            metrics[name] = {"rmse_posterior_mean": float(np.sqrt(np.mean((mean - value) ** 2)))}
        metrics[name]["calibration"] = coverage_summary(draws, value)
    return metrics


def _spread_scale(text: str | None, module, model_file: str) -> tuple[float | None, dict]:
    """--spread-scale: a positive number (for the latents), or "model" for the model file's
    ``spread_scale`` (latents; 1 if it defines none) and ``parameter_spread_scales``
    (``{name: scale}`` for forward-model parameters, if it defines them)."""
    if text is None:
        return None, {}
    if text == "model":
        if not hasattr(module, "spread_scale") and not hasattr(module, "parameter_spread_scales"):
            raise ValueError(
                f"--spread-scale model needs a spread_scale or parameter_spread_scales in model "
                f"file {model_file!r}; it defines neither. Give a number, or fit one on "
                "validation pairs (analyses/calibration.py)."
            )
        return float(getattr(module, "spread_scale", 1.0)), dict(
            getattr(module, "parameter_spread_scales", {})
        )
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise ValueError(f"--spread-scale must be a positive number or 'model'. Got {text!r}.")
    return value, {}


def _sample(args) -> dict:
    import bayesnoise as bn
    from bayesnoise.calibration import scale_posterior_spread
    from bayesnoise.model_file import load_model_file
    from bayesnoise.report import write_report

    options = _parse_options(args.options)
    out = writable_directory(args.out)
    module = load_model_file(args.model_file)
    truth = None
    if args.truth is not None and args.observation is None:
        raise ValueError(
            "--truth needs --observation: without it the model file's simulate() gives both."
        )
    bit_depth = None
    if args.observation is not None:
        observation, bit_depth = _load_input(args.observation, "--observation", module.model)
        if args.truth is not None:
            truth_values = _load_input(args.truth, "--truth").values
            truth = {"x": _check_truth(truth_values, observation, module.model)}
    elif hasattr(module, "simulate"):
        observation, truth = module.simulate(args.seed)
    else:
        raise ValueError(
            f"--observation is required: model file {args.model_file!r} defines no simulate()."
        )
    images = _image_settings(args, observation, bit_depth)
    settings = {"sampler": "pigdm", "num_steps": 500, "num_chains": 4, "num_draws": 4}
    settings.update(getattr(module, "defaults", {}))
    file_sampler = settings["sampler"]
    for name in ("sampler", "num_steps", "num_chains", "num_draws", "start_time"):
        value = getattr(args, name)
        if value is not None:
            settings[name] = value
    if args.divergence_bound is not None:
        settings["divergence_bound"] = args.divergence_bound
    if options is not None:
        settings["sampler_options"] = options
    elif settings["sampler"] != file_sampler and settings.get("sampler_options"):
        settings["sampler_options"] = _options_for_sampler(
            settings["sampler_options"], settings["sampler"], file_sampler, say=_say(args)
        )

    spread_scale, parameter_scales = _spread_scale(args.spread_scale, module, args.model_file)
    started = time.perf_counter()
    tree = bn.sample(module.model, observation, seed=args.seed, progress=not args.quiet, **settings)
    if spread_scale is not None:
        tree = scale_posterior_spread(tree, spread_scale, parameter_scales=parameter_scales)
    summary = bn.summarize(tree)
    summary["wall_time_s"] = time.perf_counter() - started
    # a model file may compose its sampler (bn.sampler(...)): record it by its name; other
    # objects (a ParameterUpdate) by their repr
    summary["settings"] = {
        k: getattr(v, "name", v) if k == "sampler" else _recordable(v) for k, v in settings.items()
    }
    first = "image" in tree.posterior.dims
    posterior = {
        name: np.asarray(tree.posterior[name].isel(image=0) if first else tree.posterior[name])
        for name in tree.posterior.data_vars
    }
    if truth is not None:
        truth = {k: np.asarray(v)[0] if first else np.asarray(v) for k, v in truth.items()}
        summary["metrics"] = _metrics(posterior, truth)
    bn.save_datatree(tree, out / "posterior.nc")
    if images is not None:
        summary["images"] = _write_posterior_images(tree, out, *images)
    _write_json(out / "summary.json", summary)
    shown = np.asarray(observation)[0] if first else np.asarray(observation)
    write_report(
        out,
        observation=shown,
        posterior=_without_parameters(tree, posterior),
        truth=None if truth is None else _without_parameters(tree, truth),
        summary=summary,
    )
    if summary["num_diverged"] == summary["num_trajectories"]:
        raise DivergedRunError(
            f"every trajectory diverged ({summary['num_diverged']} of "
            f"{summary['num_trajectories']}; divergence bound {summary['divergence_bound']:.3g})"
            f", so there is no posterior. {out} holds posterior.nc, summary.json and "
            "report.html showing it. Try a later --start-time, more --steps or a smaller "
            "guidance_weight."
        )
    return summary


def _recordable(value):
    """``value`` if JSON can hold it (numbers, strings, lists, dicts of them), else its repr."""
    try:
        json.dumps(value)
    except TypeError:
        return repr(value)
    return value


def _image_settings(args, observation, bit_depth) -> tuple[str, int] | None:
    """``(extension, bit depth)`` of the posterior images ``--save-images`` asks for, checked
    before sampling; ``None`` without ``--save-images``."""
    if not args.save_images:
        return None
    observation_file = Path(args.observation or "")
    extension = args.image_format or (
        "tiff" if observation_file.suffix.lower() in (".tif", ".tiff") else "png"
    )
    depth = int(args.image_bit_depth) if args.image_bit_depth != "same" else (bit_depth or 8)
    channels = np.shape(observation)[-1] if np.ndim(observation) >= 3 else 1
    if extension == "png" and depth == 16 and channels > 1:
        raise ValueError(
            f"--image-bit-depth {depth} with --image-format png: a 16-bit PNG holds one channel "
            f"(Pillow's limit) and the observation has {channels}. Use --image-format tiff."
        )
    return extension, depth


def _write_posterior_images(tree, out: Path, extension: str, bit_depth: int) -> list[str]:
    """``{name}_posterior_mean`` and ``_std`` images of every image-shaped latent (over the
    draws that did not diverge), one file per observation of a batch; the file names."""
    from bayesnoise.image_io import write_image

    batch = "image" in tree.posterior.dims
    written = []
    for name in tree.posterior.data_vars:
        draws = np.asarray(tree.posterior[name])
        draws = draws.reshape((-1,) + draws.shape[2:])  # (trajectory, [image,] ...)
        event_rank = draws.ndim - 1 - batch
        if event_rank not in (2, 3):  # vectors and scalar parameters are not images
            continue
        for index in range(draws.shape[1] if batch else 1):
            values = draws[:, index] if batch else draws
            finite = values[np.all(np.isfinite(values.reshape(len(values), -1)), axis=1)]
            if len(finite) == 0:
                continue
            suffix = f"_{index}" if batch else ""
            for statistic, image in (("mean", finite.mean(0)), ("std", finite.std(0))):
                filename = f"{name}_posterior_{statistic}{suffix}.{extension}"
                write_image(out / filename, image, bit_depth)
                written.append(filename)
    return written


_POSTERIOR_LAYOUT = {
    "posterior": (),
    "observed_data": ("y",),
    "sample_stats": ("diverging", "residual_norm"),
}


def _open_posterior(path: str):
    """The DataTree in a ``posterior.nc`` written by ``bayesnoise sample``, its layout checked."""
    import xarray as xr

    source = f"posterior {path!r}"
    if not Path(path).is_file():
        raise FileNotFoundError(f"{source}: no such file.")
    try:
        tree = xr.open_datatree(path, engine="h5netcdf")
    except Exception as error:  # h5py/h5netcdf raise OSError, ValueError, KeyError, ...
        raise ValueError(
            f"{source} must be a netCDF-4 file written by `bayesnoise sample`; it could not be "
            f"opened ({type(error).__name__}: {error})."
        ) from error
    expected = "; ".join(
        f"{group} ({', '.join(names) or 'draws with dims chain, draw'})"
        for group, names in _POSTERIOR_LAYOUT.items()
    )
    for group, names in _POSTERIOR_LAYOUT.items():
        held = sorted(tree[group].data_vars) if group in tree.children else None
        if held is None or not set(names) <= set(held):
            got = f"no group {group}" if held is None else f"{group} holding {held}"
            raise ValueError(
                f"{source} is not a posterior written by `bayesnoise sample`: expected the "
                f"groups {expected}. Got {got} (groups: {sorted(tree.children)})."
            )
    posterior = tree["posterior"]
    if not posterior.data_vars or not {"chain", "draw"} <= set(posterior.dims):
        raise ValueError(
            f"{source}: the posterior group must hold draws with dims (chain, draw, ...). "
            f"Got variables {sorted(posterior.data_vars)} with dims {dict(posterior.sizes)}."
        )
    return tree


def _report(args) -> None:
    from bayesnoise.diagnostics import summarize
    from bayesnoise.report import write_report

    tree = _open_posterior(args.posterior)
    first = "image" in tree.posterior.dims
    pick = (lambda a: a.isel(image=0)) if first else (lambda a: a)
    posterior = {name: np.asarray(pick(tree.posterior[name])) for name in tree.posterior.data_vars}
    write_report(
        Path(args.out),
        observation=np.asarray(pick(tree.observed_data["y"])),
        posterior=_without_parameters(tree, posterior),
        summary=summarize(tree),
    )


def _without_parameters(tree, posterior: dict) -> dict:
    """The report's images and vectors (of the posterior or the truth): forward-model
    parameters are in the summary instead."""
    parameters = str(tree.posterior.attrs.get("forward_model_parameters", "")).split()
    return {name: value for name, value in posterior.items() if name not in parameters}


def _train(args) -> None:
    from bayesnoise.training.cli import run

    run(args)


def _bench(args) -> dict:
    from bayesnoise.bench import benchmark, format_table

    options = _parse_options(args.options)
    result = benchmark(
        args.model_file,
        sampler=args.sampler,
        batches=args.batch,
        steps=args.steps,
        options=options,
        paper=args.paper,
    )
    print(format_table(result))
    if args.json:
        print(json.dumps(result))
    return result


def build_parser() -> argparse.ArgumentParser:
    from bayesnoise.samplers import SAMPLERS

    parser = argparse.ArgumentParser(prog="bayesnoise", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    commands = parser.add_subparsers(dest="command", required=True)

    sample = commands.add_parser("sample", help="sample the posterior of a model file")
    sample.add_argument("model_file")
    sample.add_argument(
        "--observation",
        help="y as PNG/JPEG/TIFF (8/16-bit), FITS, .npy or one-array .npz; uint8 /255, uint16 "
        "/65535, floats as they are; layout (H, W, C) (default: the model's simulate())",
    )
    sample.add_argument("--truth", help="the true x (same formats), for PSNR/SSIM")
    sample.add_argument("--sampler", help=f"one of {', '.join(sorted(SAMPLERS))}")
    sample.add_argument("--chains", dest="num_chains", type=int)
    sample.add_argument("--draws", dest="num_draws", type=int)
    sample.add_argument("--steps", dest="num_steps", type=int)
    sample.add_argument("--start-time", dest="start_time", type=float)
    sample.add_argument(
        "--options", help='sampler options as JSON, e.g. \'{"guidance_weight": {"x": 0.5}}\''
    )
    sample.add_argument(
        "--divergence-bound",
        dest="divergence_bound",
        type=float,
        help="|value| at which a trajectory counts as diverged (default: from the data's scale)",
    )
    sample.add_argument(
        "--spread-scale",
        dest="spread_scale",
        help="rescale each latent's draws about their mean by this factor after sampling (a "
        "temperature fitted on validation pairs; 'model': the model file's spread_scale and "
        "parameter_spread_scales); "
        "recorded in the summary and the posterior's attrs",
    )
    sample.add_argument("--seed", type=int, default=0)
    sample.add_argument("--out", required=True, help="output directory")
    sample.add_argument(
        "--save-images",
        action="store_true",
        help="also write each image latent's posterior mean and std as images, e.g. "
        "x_posterior_mean.png (values clipped to [0, 1])",
    )
    sample.add_argument(
        "--image-format",
        choices=["png", "tiff"],
        help="of --save-images (default: tiff for a TIFF observation, else png)",
    )
    sample.add_argument(
        "--image-bit-depth",
        choices=["8", "16", "same"],
        default="same",
        help="of --save-images; 'same' (default): the observation file's (8 for floats)",
    )
    sample.add_argument(
        "--json",
        action="store_true",
        help="print the summary as one JSON document on stdout; human text goes to stderr",
    )
    sample.add_argument(
        "--quiet", action="store_true", help="no progress bar and no human text (errors only)"
    )

    report = commands.add_parser("report", help="(re)write the report of a posterior.nc")
    report.add_argument("posterior")
    report.add_argument("--out", required=True)

    from bayesnoise.training.cli import add_parser as add_train_parser

    add_train_parser(commands)

    bench = commands.add_parser(
        "bench", help="time the jitted step against the bare network work it needs"
    )
    bench.add_argument("model_file", nargs="?", help="a model file (optional with --paper)")
    bench.add_argument("--sampler", help="default: the model file's")
    bench.add_argument(
        "--batch", type=int, nargs="+", default=[1, 4, 16, 64], help="trajectories per step"
    )
    bench.add_argument("--steps", type=int, default=10, help="timed steps per batch size")
    bench.add_argument("--options", help="sampler options as JSON")
    bench.add_argument("--json", action="store_true", help="end with one line of JSON")
    bench.add_argument(
        "--paper", action="store_true", help="the paper's 64x64x3 NCSNv2 configuration"
    )
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "sample":
            summary = _sample(args)
            say = _say(args)
            if args.json:
                print(json.dumps(summary))
            else:
                say(json.dumps({k: summary[k] for k in summary if k != "settings"}, indent=2))
            say(f"wrote {Path(args.out) / 'report.html'}")
        elif args.command == "report":
            _report(args)
        elif args.command == "bench":
            _bench(args)
        else:
            _train(args)
    except DivergedRunError as error:
        print(f"bayesnoise {args.command}: error: {error}", file=sys.stderr)
        return 1
    except (ValueError, TypeError, OSError, RuntimeError) as error:
        print(f"bayesnoise {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
