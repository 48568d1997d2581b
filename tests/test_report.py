"""write_report: files, page contents, NaN draws, input checks and atomic writing."""

import html
import os

import numpy as np
import pytest

from bayesnoise import report
from bayesnoise.calibration import coverage_summary
from bayesnoise.report import write_report

SUMMARY = {
    "rhat": {"x": 1.013, "n": 1.207},
    "ess_bulk": {"x": 412.0, "n": 37.5},
    "divergences": 3,
    "wall_time_s": 81.25,
    "psnr": {"mean": 27.5, "std": 1.25, "n": 4},
}


def _posterior(rng, event_shape=(8, 8)):
    x = rng.random((2, 3, *event_shape))
    n = 0.1 * rng.standard_normal((2, 3, *event_shape))
    return x, n


@pytest.fixture(scope="module")
def image_report(tmp_path_factory):
    """One full report with a NaN draw in x (chain 1, draw 2), shared by the content tests."""
    rng = np.random.default_rng(1)
    x, n = _posterior(rng)
    x[1, 2, 4, 4] = np.nan
    parent = tmp_path_factory.mktemp("image_report")
    path = write_report(
        parent / "out",
        observation=rng.random((8, 8)),
        posterior={"x": x, "n": n},
        truth={"x": rng.random((8, 8)), "n": np.zeros((8, 8))},
        summary=SUMMARY,
        title="Posterior <of> x & n",
    )
    return parent, path


def test_writes_all_files(image_report):
    parent, path = image_report
    assert path == parent / "out" / "report.html"
    latent_files = {f"{name}_{kind}.png" for name in "xn" for kind in ("mean", "std", "draws")}
    calibration = {"x_calibration.png", "n_calibration.png"}
    expected = {"observation.png", "report.html", "x_truth.png", "n_truth.png", *latent_files}
    expected |= calibration
    assert set(os.listdir(path.parent)) == expected
    assert os.listdir(parent) == ["out"], "the staging directory was not removed"
    with open(path.parent / "x_draws.png", "rb") as png:
        assert png.read(8) == b"\x89PNG\r\n\x1a\n"


def test_calibration_against_the_truth_is_shown(image_report):
    """Truth given: a reliability figure per latent, captioned with its 50% / 90% coverage
    computed from the finite draws (x has a NaN draw: 5 of 6 draws count)."""
    page = html.unescape(image_report[1].read_text(encoding="utf-8"))
    rng = np.random.default_rng(1)
    x, n = _posterior(rng)
    x[1, 2, 4, 4] = np.nan
    rng.random((8, 8))  # the observation
    truths = {"x": rng.random((8, 8)), "n": np.zeros((8, 8))}
    finite_x = np.delete(x.reshape(6, 8, 8), 5, axis=0)
    for name, draws in (("x", finite_x), ("n", n.reshape(6, 8, 8))):
        summary = coverage_summary(draws, truths[name])
        assert (
            f"of {name} by central posterior intervals, per element, from the rank of the truth "
            f"among {len(draws)} draws (randomised PIT): "
            f"{100 * summary['coverage_central_50']:.1f}% inside the 50% interval, "
            f"{100 * summary['coverage_central_90']:.1f}% inside the 90% one"
        ) in page


def test_page_references_images_and_shows_summary(image_report):
    page = image_report[1].read_text(encoding="utf-8")
    for file_name in os.listdir(image_report[1].parent):
        if file_name.endswith(".png"):
            assert f'<img src="{file_name}"' in page
    for row, value in [
        ("rhat.x", "1.013"),
        ("rhat.n", "1.207"),
        ("ess_bulk.n", "37.5"),
        ("divergences", "3"),
        ("wall_time_s", "81.25"),
        ("psnr.mean", "27.5"),
    ]:
        assert f'<td>{row}</td><td class="value">{value}</td>' in page
    assert "<title>Posterior &lt;of&gt; x &amp; n</title>" in page
    assert "<of>" not in page


def test_page_counts_excluded_draws(image_report):
    page = image_report[1].read_text(encoding="utf-8")
    assert "1 of 6 draws excluded from the mean and std of x" in page
    assert "chain 1: 1" in page
    assert "Posterior mean of x over 5 draws" in page
    assert "0 of 6 draws excluded: the mean and std of n" in page


def test_mean_and_std_ignore_nan_draws():
    samples = np.arange(2 * 3 * 4, dtype=np.float32).reshape(2, 3, 4)
    samples[0, 1, 2] = np.nan
    (latent,) = report._check_latents({"x": samples}, None)
    kept = samples.reshape(6, 4)[[0, 2, 3, 4, 5]]
    np.testing.assert_allclose(latent.mean, kept.mean(axis=0))
    assert latent.mean.dtype == np.float64
    np.testing.assert_allclose(latent.std, kept.std(axis=0, ddof=1))


def test_vector_observation_and_latents_and_colour_images(tmp_path):
    rng = np.random.default_rng(2)
    colour, _ = _posterior(rng, (8, 8, 3))
    _, vector = _posterior(rng, (20,))
    path = write_report(
        tmp_path / "cs",
        observation=rng.standard_normal(12),
        posterior={"x": colour, "n": vector},
        truth={"n": np.zeros(20)},
        max_draws=2,
    )
    assert {"observation.png", "x_std.png", "n_draws.png", "n_truth.png"} <= set(
        os.listdir(path.parent)
    )
    page = path.read_text(encoding="utf-8")
    assert "Observation y: 12 measurements." in page
    assert "2 posterior draws of n (2 chains × 3 draws)." in page
    assert "averaged over the colour channels" in page


def test_parent_is_a_file_raises_and_leaves_nothing(tmp_path):
    blocker = tmp_path / "not_a_directory"
    blocker.write_text("")
    out_dir = blocker / "report"
    with pytest.raises(
        OSError, match=r"cannot create the report directory out_dir.*not_a_directory"
    ):
        write_report(out_dir, observation=np.zeros(4), posterior={"x": np.zeros((1, 2, 4))})
    assert os.listdir(tmp_path) == ["not_a_directory"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write to a 0o500 directory")
def test_read_only_directory_raises_permission_error(tmp_path):
    out_dir = tmp_path / "read_only"
    out_dir.mkdir(mode=0o500)
    with pytest.raises(PermissionError, match="not writable"):
        write_report(out_dir, observation=np.zeros(4), posterior={"x": np.zeros((1, 2, 4))})
    assert os.listdir(out_dir) == []


def test_access_check_runs_before_rendering(tmp_path, monkeypatch):
    """As root the chmod test above is skipped; pretend os.access says no."""
    monkeypatch.setattr(report.os, "access", lambda path, mode: False)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(PermissionError, match=r"out_dir is not writable: '.*out'"):
        write_report(out_dir, observation=np.zeros(4), posterior={"x": np.zeros((1, 2, 4))})
    assert os.listdir(tmp_path) == ["out"] and os.listdir(out_dir) == []


def test_failure_while_rendering_keeps_the_old_report(tmp_path, monkeypatch):
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    (out_dir / "report.html").write_text("old report")

    def broken_plot(*args, **kwargs):
        raise RuntimeError("renderer failed")

    monkeypatch.setattr(report, "_plot", broken_plot)
    with pytest.raises(RuntimeError, match="renderer failed"):
        write_report(out_dir, observation=np.zeros(4), posterior={"x": np.zeros((1, 2, 4))})
    assert os.listdir(tmp_path) == ["out"], "the staging directory was not removed"
    assert os.listdir(out_dir) == ["report.html"]
    assert (out_dir / "report.html").read_text() == "old report"


def test_failure_removes_the_directory_it_created(tmp_path, monkeypatch):
    monkeypatch.setattr(report, "_render_observation", lambda *args: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        write_report(
            tmp_path / "new" / "out",
            observation=np.zeros(4),
            posterior={"x": np.zeros((1, 2, 4))},
        )
    assert os.listdir(tmp_path) == []


GOOD = {"observation": np.zeros((8, 8)), "posterior": {"x": np.zeros((2, 3, 8, 8))}}


@pytest.mark.parametrize(
    ("changes", "error", "match"),
    [
        ({"observation": np.zeros((8, 8, 4))}, ValueError, r"observation must be .* \(8, 8, 4\)"),
        ({"observation": np.full(4, np.nan)}, ValueError, "observation must be finite. Got 4"),
        ({"posterior": {}}, TypeError, "non-empty mapping name -> draws. Got an empty dict"),
        ({"posterior": {"x": np.full((1, 2, 4), "a")}}, TypeError, "must be a real array"),
        ({"posterior": np.zeros((2, 3, 4))}, TypeError, "mapping name -> draws. Got ndarray"),
        ({"posterior": {"x": np.zeros((2, 3))}}, ValueError, r"\(chains, draws, \*event_shape"),
        ({"posterior": {"../x": np.zeros((1, 1, 4))}}, ValueError, r"Got '\.\./x'"),
        ({"truth": {"n": np.zeros((8, 8))}}, ValueError, r"truth has names \['n'\] that are not"),
        (
            {"truth": {"x": np.zeros((8, 9))}},
            ValueError,
            r"truth\['x'\] must have the event shape .* \(8, 8\)\. Got \(8, 9\)",
        ),
        ({"summary": {"rhat": np.float32(1.0)}}, TypeError, "summary must be JSON-serialisable"),
        ({"max_draws": 0}, ValueError, "max_draws must be a positive integer. Got 0"),
    ],
)
def test_bad_inputs_raise_before_writing(tmp_path, changes, error, match):
    with pytest.raises(error, match=match):
        write_report(tmp_path / "out", **{**GOOD, **changes})
    assert os.listdir(tmp_path) == []


def test_a_latent_whose_every_draw_diverged_is_reported_not_refused(tmp_path):
    """All draws NaN: the page says so (no mean/std figures) instead of writing nothing."""
    posterior = {"x": np.full((2, 3, 8, 8), np.nan), "n": np.zeros((2, 3, 8, 8))}
    path = write_report(tmp_path, observation=np.zeros((8, 8)), posterior=posterior)
    page = path.read_text(encoding="utf-8")
    assert "All 6 draws of x diverged (NaN or inf): there is no posterior mean" in page
    assert not (tmp_path / "x_mean.png").exists() and (tmp_path / "n_mean.png").is_file()


def test_dependent_draw_diagnostics_go_into_a_labelled_secondary_table(tmp_path):
    summary = {"num_draws": 6, "dependent_draw_diagnostics": {"x": {"rhat_max": 1.5}}}
    path = write_report(
        tmp_path,
        observation=np.zeros((8, 8)),
        posterior={"x": np.zeros((2, 3, 8, 8))},
        summary=summary,
    )
    page = path.read_text(encoding="utf-8")
    primary, secondary = page.split("<h2>Secondary: R-hat and ESS (meaningful only for dependent")
    assert '<td>num_draws</td><td class="value">6</td>' in primary
    assert '<td>x.rhat_max</td><td class="value">1.5</td>' in secondary
