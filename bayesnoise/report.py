"""A static HTML report of a posterior: observation, posterior mean, std and draws per latent.

Figures are drawn with matplotlib's object-oriented API (``matplotlib.figure.Figure``, rendered
by the Agg canvas), so no display and no pyplot state are involved. Everything is rendered in
memory first, then each file is written atomically (:mod:`bayesnoise.atomic`), ``report.html``
last.
"""

from __future__ import annotations

import dataclasses
import errno
import html
import io
import json
import os
import re
import shutil
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
from jaxtyping import ArrayLike, Float
from matplotlib.figure import Figure

from bayesnoise.atomic import atomic_write_bytes
from bayesnoise.calibration import coverage_summary

__all__ = ["write_report"]

_CHANNELS = (1, 3)
_NAME_PATTERN = re.compile(r"[A-Za-z0-9_-]+")
_DPI = 100


@dataclasses.dataclass(frozen=True)
class _Latent:
    name: str
    samples: np.ndarray  # (chains, draws, *event_shape)
    finite: np.ndarray  # (chains, draws): False where the draw holds NaN or inf
    mean: np.ndarray | None  # None when every draw diverged
    std: np.ndarray | None
    truth: np.ndarray | None


def write_report(
    out_dir: str | os.PathLike[str],
    *,
    observation: Float[ArrayLike, "*observation_shape"],
    posterior: Mapping[str, Float[ArrayLike, "chains draws *event_shape"]],
    truth: Mapping[str, Float[ArrayLike, "*event_shape"]] | None = None,
    summary: Mapping[str, Any] | None = None,
    max_draws: int = 4,
    title: str = "bayesnoise posterior",
) -> Path:
    """Write PNG figures and a ``report.html`` page describing a posterior.

    Files written to ``out_dir``: ``observation.png``; for each latent ``name``:
    ``{name}_mean.png``, ``{name}_std.png``, ``{name}_draws.png`` and, when a truth is given,
    ``{name}_truth.png``; then ``report.html``, which shows them with captions and the summary
    table. Draws containing NaN or inf (chains that diverged) are left out of the mean and std,
    and the page says how many were left out; a latent whose every draw diverged gets that
    statement and no figures.

    Parameters
    ----------
    out_dir
        Directory of the report; created if missing. Existing files of the same names are
        replaced.
    observation
        The data ``y``: an image ``(height, width[, channels])`` with channels 1 or 3, or a flat
        vector of measurements (plotted as a line).
    posterior
        Latent name (``"x"``, ``"n"``) to draws of shape ``(chains, draws, *event_shape)``, where
        the event shape is an image ``(height, width[, channels])`` or a vector.
    truth
        Optional latent name to ground truth of the latent's event shape.
    summary
        Optional JSON-serialisable mapping (:func:`bayesnoise.summarize`: draws, Monte Carlo
        errors, divergences, wall time, PSNR/SSIM); nested mappings become dotted row names of
        the summary table. Its ``dependent_draw_diagnostics`` entry (R-hat, ESS) goes into a
        separate, labelled secondary table.
    max_draws
        Number of individual draws shown per latent, spread over the chains.
    title
        Page title.

    Returns
    -------
    pathlib.Path
        The path of ``report.html``.

    Raises
    ------
    ValueError, TypeError
        If an input has the wrong shape, type or values (all checked before anything is written).
    OSError
        If ``out_dir`` cannot be created or written; the subclass (``PermissionError``,
        ``NotADirectoryError``, ...) follows the error number, and the message names the path.

    Examples
    --------
    >>> import numpy as np, tempfile
    >>> draws = np.random.default_rng(0).random((2, 3, 8, 8))
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     path = write_report(tmp, observation=draws[0, 0], posterior={"x": draws})
    >>> path.name
    'report.html'
    """
    observation_array = _finite_array(observation, "observation")
    if not (observation_array.ndim == 1 or _is_image_shape(observation_array.shape)):
        raise ValueError(
            "observation must be a vector or an image (height, width[, channels]) with channels "
            f"in {_CHANNELS}. Got shape {observation_array.shape}."
        )
    latents = _check_latents(posterior, truth)
    summary_rows = _check_summary(summary)
    if isinstance(max_draws, bool) or not isinstance(max_draws, int) or max_draws < 1:
        raise ValueError(f"max_draws must be a positive integer. Got {max_draws!r}.")
    if not isinstance(title, str):
        raise TypeError(f"title must be a str. Got {type(title).__name__}.")

    out_dir = Path(out_dir)
    created_root = _make_writable_directory(out_dir)
    try:
        # Render every figure in memory first, so a failure leaves the old report untouched.
        pngs: dict[str, bytes] = {}
        sections = [_render_observation(pngs, observation_array)]
        sections += [_render_latent(pngs, latent, max_draws) for latent in latents]
        page = _page(title, summary_rows, sections)
        for file_name, png in pngs.items():
            atomic_write_bytes(out_dir / file_name, png)
        atomic_write_bytes(out_dir / "report.html", page.encode("utf-8"))  # last: the index
    except BaseException:
        if created_root is not None:
            shutil.rmtree(created_root, ignore_errors=True)
        raise
    return out_dir / "report.html"


# --- checks -------------------------------------------------------------------------------------


def _is_image_shape(shape: tuple[int, ...]) -> bool:
    return len(shape) == 2 or (len(shape) == 3 and shape[-1] in _CHANNELS)


def _finite_array(value: ArrayLike, name: str) -> np.ndarray:
    try:
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must be a numeric array. Got {type(value).__name__}.") from error
    if not np.isfinite(array).all():
        raise ValueError(f"{name} must be finite. Got {int((~np.isfinite(array)).sum())} NaN/inf.")
    return array


def _check_latents(
    posterior: Mapping[str, ArrayLike], truth: Mapping[str, ArrayLike] | None
) -> list[_Latent]:
    if not isinstance(posterior, Mapping) or not posterior:
        empty = "an empty " if isinstance(posterior, Mapping) else ""
        got = f"{empty}{type(posterior).__name__}"
        raise TypeError(f"posterior must be a non-empty mapping name -> draws. Got {got}.")
    truth = {} if truth is None else truth
    if not isinstance(truth, Mapping):
        raise TypeError(
            f"truth must be a mapping name -> array or None. Got {type(truth).__name__}."
        )
    unknown = sorted(set(truth) - set(posterior))
    if unknown:
        raise ValueError(
            f"truth has names {unknown} that are not in posterior {sorted(posterior)}."
        )

    latents = []
    for name, value in posterior.items():
        if not isinstance(name, str) or not _NAME_PATTERN.fullmatch(name):
            raise ValueError(
                f"posterior names must match [A-Za-z0-9_-]+ (they become file names). Got {name!r}."
            )
        samples = np.asarray(value)  # no float64 copy: posteriors can be large
        if samples.dtype.kind not in "iuf":
            raise TypeError(f"posterior[{name!r}] must be a real array. Got dtype {samples.dtype}.")
        event_shape = samples.shape[2:]
        if not (len(event_shape) == 1 or _is_image_shape(event_shape)) or 0 in samples.shape:
            raise ValueError(
                f"posterior[{name!r}] must have shape (chains, draws, *event_shape) with an image "
                f"(height, width[, channels]) or vector event shape. Got shape {samples.shape}."
            )
        finite = np.isfinite(samples).reshape(*samples.shape[:2], -1).all(axis=-1)
        kept = int(finite.sum())
        latent_truth = None
        if name in truth:
            latent_truth = _finite_array(truth[name], f"truth[{name!r}]")
            if latent_truth.shape != event_shape:
                raise ValueError(
                    f"truth[{name!r}] must have the event shape of posterior[{name!r}], "
                    f"{event_shape}. Got {latent_truth.shape}."
                )
        mean = std = None
        if kept:
            draw_mask = finite.reshape(finite.shape + (1,) * len(event_shape))
            moments = {"axis": (0, 1), "where": draw_mask, "dtype": np.float64}
            mean = samples.mean(**moments)
            std = samples.std(**moments, ddof=1 if kept > 1 else 0)
        latents.append(_Latent(name, samples, finite, mean, std, latent_truth))
    return latents


def _check_summary(summary: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    if summary is None:
        return []
    if not isinstance(summary, Mapping):
        raise TypeError(f"summary must be a mapping or None. Got {type(summary).__name__}.")
    try:
        json.dumps(summary)
    except (TypeError, ValueError) as error:
        raise TypeError(
            "summary must be JSON-serialisable (dict, list, str, int, float, bool, None; "
            f"convert numpy scalars with float()). Got: {error}"
        ) from error
    return list(_flatten(summary))


def _flatten(mapping: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, str]]:
    for key, value in mapping.items():
        if isinstance(value, Mapping):
            yield from _flatten(value, f"{prefix}{key}.")
        else:
            yield f"{prefix}{key}", _format_value(value)


def _format_value(value: Any) -> str:
    if isinstance(value, bool) or value is None or isinstance(value, int | str):
        return str(value)
    if isinstance(value, float):
        return f"{value:.4g}"
    return ", ".join(_format_value(item) for item in value)


def _make_writable_directory(out_dir: Path) -> Path | None:
    """Create ``out_dir`` if needed; return the topmost directory this call created."""
    created_root = None
    if not out_dir.exists():
        created_root = out_dir
        while not created_root.parent.exists():
            created_root = created_root.parent
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        message = f"cannot create the report directory out_dir ({error.strerror})"
        raise OSError(error.errno, message, str(out_dir)) from error
    if not os.access(out_dir, os.W_OK | os.X_OK):
        raise PermissionError(
            errno.EACCES, "the report directory out_dir is not writable", str(out_dir)
        )
    return created_root


# --- figures ------------------------------------------------------------------------------------


def _limits(*arrays: np.ndarray) -> tuple[float, float]:
    """Shared display range; [0, 1] when every value lies in it, so images are shown as is."""
    low = min(float(array.min()) for array in arrays)
    high = max(float(array.max()) for array in arrays)
    return (0.0, 1.0) if low >= 0.0 and high <= 1.0 else (low, high)


def _plot(
    panels: list[tuple[str, np.ndarray]],
    title: str,
    limits: tuple[float, float] | None = None,
    cmap: str = "gray",
) -> bytes:
    """PNG of vectors as overlaid lines, or of images as a row sharing ``limits`` and a colorbar.

    Grey images use ``cmap`` between ``limits``; colour images are rescaled from ``limits``
    to [0, 1] (no colorbar, the caption gives the range).
    """
    arrays = [array for _, array in panels]
    if arrays[0].ndim == 1:
        figure = Figure(figsize=(5.0, 2.8), layout="constrained")
        ax = figure.add_subplot()
        for label, values in panels:
            ax.plot(np.arange(values.size), values, linewidth=1.0, label=label)
        if len(panels) > 1:
            ax.legend(fontsize=7)
        ax.set_xlabel("index")
    else:
        low, high = _limits(*arrays) if limits is None else limits
        colour = arrays[0].ndim == 3 and arrays[0].shape[-1] == 3
        figure = Figure(figsize=(2.4 * len(panels) + 1.0, 2.9), layout="constrained")
        axes = figure.subplots(1, len(panels), squeeze=False)[0]
        for ax, (label, image) in zip(axes, panels, strict=True):
            ax.set_axis_off()
            if len(panels) > 1:
                ax.set_title(label, fontsize=9)
            if colour:
                ax.imshow(np.clip((image - low) / max(high - low, 1e-12), 0.0, 1.0))
            else:
                grey = image.reshape(image.shape[:2])
                shown = ax.imshow(grey, cmap=cmap, vmin=low, vmax=high, interpolation="nearest")
        if not colour:
            figure.colorbar(shown, ax=list(axes), shrink=0.85)
    figure.suptitle(title, fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    return buffer.getvalue()


def _reliability(name: str, draws: np.ndarray, truth: np.ndarray) -> tuple[bytes, str]:
    """PNG of the reliability curve of one latent against its truth, and its caption."""
    summary = coverage_summary(draws, truth)
    curve = summary["reliability"]
    figure = Figure(figsize=(3.6, 3.4), layout="constrained")
    ax = figure.add_subplot()
    ax.plot([0, 1], [0, 1], color="grey", linewidth=1.0, label="calibrated")
    ax.plot(curve["nominal"], curve["observed"], marker="o", markersize=3, label=name)
    ax.set_xlabel("nominal coverage of the central interval", fontsize=8)
    ax.set_ylabel("observed (fraction of elements)", fontsize=8)
    ax.legend(fontsize=7)
    figure.suptitle(f"{name}: calibration against the truth", fontsize=10)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=_DPI)
    caption = (
        f"Coverage of the truth of {name} by central posterior intervals, per element, from the "
        f"rank of the truth among {summary['num_draws']} draws (randomised PIT): "
        f"{100 * summary['coverage_central_50']:.1f}% inside the 50% interval, "
        f"{100 * summary['coverage_central_90']:.1f}% inside the 90% one. Above the diagonal: "
        "intervals too wide; below: too narrow. The elements of one image share a posterior, "
        "so one image's figures scatter more than independent ones would."
    )
    return buffer.getvalue(), caption


def _render_observation(pngs: dict[str, bytes], observation: np.ndarray) -> str:
    pngs["observation.png"] = _plot([("y", observation)], "observation y")
    if observation.ndim == 1:
        caption = f"Observation y: {observation.size} measurements."
    else:
        low, high = _limits(observation)
        shape = "×".join(map(str, observation.shape))
        caption = f"Observation y ({shape}), shown on the range [{low:.3g}, {high:.3g}]."
    return f"<h2>Observation</h2>\n{_figure_html('observation.png', caption)}"


def _render_latent(pngs: dict[str, bytes], latent: _Latent, max_draws: int) -> str:
    """Plot mean, std, a few draws and the truth of one latent into ``pngs`` (file name ->
    PNG bytes); return its HTML section."""
    name, truth = latent.name, latent.truth
    num_chains, num_draws = latent.finite.shape
    total, kept = latent.finite.size, int(latent.finite.sum())
    if kept == 0:
        diverged = (
            f"All {total} draws of {name} diverged (NaN or inf): there is no posterior mean, "
            "std or draw to show."
        )
        heading = f"<h2>Latent {html.escape(name)}</h2>"
        return f'{heading}\n<p class="excluded">{html.escape(diverged)}</p>'
    # Draws evenly spaced through the finite ones in (chain, draw) order, so chains all show.
    finite_indices = np.flatnonzero(latent.finite.reshape(-1))
    picks = finite_indices[np.linspace(0, kept - 1, min(max_draws, kept)).round().astype(int)]
    draws = [
        (f"chain {chain}, draw {draw}", latent.samples[chain, draw])
        for chain, draw in (divmod(int(index), num_draws) for index in picks)
    ]
    is_image = latent.mean.ndim > 1
    shown = [latent.mean] + [draw for _, draw in draws] + ([] if truth is None else [truth])
    limits = _limits(*shown) if is_image else None
    colour_std = latent.std.ndim == 3
    std = latent.std.mean(axis=-1) if colour_std else latent.std
    mean_panels = [("posterior mean", latent.mean)]
    if truth is not None and not is_image:
        mean_panels.append(("truth", truth))

    range_note = f" Shown on the range [{limits[0]:.3g}, {limits[1]:.3g}]." if limits else ""
    std_note = " (averaged over the colour channels)" if colour_std else ""
    figures = [
        (f"{name}_mean.png", mean_panels, f"Posterior mean of {name} over {kept} draws."),
        (f"{name}_std.png", [("posterior std", std)], f"Posterior std of {name}{std_note}."),
        (
            f"{name}_draws.png",
            draws,
            f"{len(draws)} posterior draws of {name} ({num_chains} chains × {num_draws} draws).",
        ),
    ]
    if truth is not None:
        figures.append((f"{name}_truth.png", [("truth", truth)], f"Ground truth of {name}."))
    html_figures = []
    if truth is not None and kept >= 1:
        finite_draws = latent.samples.reshape((-1,) + truth.shape)[latent.finite.reshape(-1)]
        pngs[f"{name}_calibration.png"], caption = _reliability(name, finite_draws, truth)
        html_figures.append(_figure_html(f"{name}_calibration.png", caption))
    for file_name, panels, caption in figures:
        is_std = file_name.endswith("_std.png")
        std_limits = (0.0, float(std.max())) if is_image else None
        pngs[file_name] = _plot(
            panels,
            f"{name}: {file_name.removeprefix(name + '_').removesuffix('.png')}",
            std_limits if is_std else limits,
            "viridis" if is_std else "gray",
        )
        html_figures.append(_figure_html(file_name, caption + ("" if is_std else range_note)))

    excluded = total - kept
    if excluded:
        per_chain = ", ".join(
            f"chain {chain}: {count}"
            for chain, count in enumerate(num_draws - latent.finite.sum(axis=1))
            if count
        )
        exclusion = (
            f"{excluded} of {total} draws excluded from the mean and std of {name} because they "
            f"contain NaN or inf (diverged or stray trajectories; {per_chain}). The mean and "
            f"std use {kept} draws."
        )
    else:
        exclusion = f"0 of {total} draws excluded: the mean and std of {name} use all {total}."
    return (
        f'<h2>Latent {html.escape(name)}</h2>\n<p class="excluded">{html.escape(exclusion)}</p>\n'
        + "\n".join(html_figures)
    )


# --- page ---------------------------------------------------------------------------------------

_STYLE = """
body { font-family: sans-serif; max-width: 72em; margin: 2em auto; color: #222; }
figure { display: inline-block; margin: 0.5em 1em 1em 0; vertical-align: top; }
figcaption { font-size: 0.9em; max-width: 40em; }
table { border-collapse: collapse; }
td, th { border: 1px solid #bbb; padding: 0.2em 0.6em; text-align: left; }
td.value { font-family: monospace; text-align: right; }
p.excluded { font-weight: bold; }
"""


def _figure_html(file_name: str, caption: str) -> str:
    escaped = html.escape(caption)
    return (
        f'<figure><img src="{html.escape(file_name)}" alt="{escaped}">'
        f"<figcaption>{escaped}</figcaption></figure>"
    )


_SECONDARY = "dependent_draw_diagnostics."
_SECONDARY_HEADING = (
    "Secondary: R-hat and ESS (meaningful only for dependent draws; every draw here is an "
    "independent trajectory)"
)


def _table(heading: str, rows: list[tuple[str, str]]) -> str:
    if not rows:
        return ""
    cells = "\n".join(
        f'<tr><td>{html.escape(key)}</td><td class="value">{html.escape(value)}</td></tr>'
        for key, value in rows
    )
    return (
        f"<h2>{html.escape(heading)}</h2>\n<table>\n<tr><th>quantity</th><th>value</th></tr>\n"
        f"{cells}\n</table>"
    )


def _page(title: str, summary_rows: list[tuple[str, str]], sections: list[str]) -> str:
    primary = [(key, value) for key, value in summary_rows if not key.startswith(_SECONDARY)]
    secondary = [
        (key.removeprefix(_SECONDARY), value)
        for key, value in summary_rows
        if key.startswith(_SECONDARY)
    ]
    tables = [_table("Summary", primary), _table(_SECONDARY_HEADING, secondary)]
    body = "\n".join([*tables, *sections])
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{html.escape(title)}</title>\n<style>{_STYLE}</style>\n</head>\n<body>\n"
        f"<h1>{html.escape(title)}</h1>\n{body}\n</body>\n</html>\n"
    )
