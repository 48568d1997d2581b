"""analyses/unknown_parameters.py: its per-pair gap figures and the pooling of runs."""

import importlib.util
import json
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def study():
    sys.path.insert(0, str(ROOT / "analyses"))  # its sibling splits.py
    path = ROOT / "analyses" / "unknown_parameters.py"
    spec = importlib.util.spec_from_file_location("unknown_parameters", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def fake_run(first, pairs, seed, **fields):
    """A result of the study's shape on pairs first .. first + pairs - 1."""
    rng = np.random.default_rng(seed)
    thetas = rng.uniform(0.3, 0.7, pairs)
    known = rng.normal(29, 3, pairs)
    return {
        "model": "digits_unknown_mixing",
        "parameter": "alpha",
        "settings": {"sampler": "ddim_dps", "num_steps": 50},
        "rescaling": None,
        "num_passes": 1,
        "conditioning": "point",
        "first": first,
        "pairs": pairs,
        "theta_fixed_wrong": 0.5,
        "theta_true": thetas.tolist(),
        "theta_posterior_mean": (thetas + rng.normal(0, 0.02, pairs)).tolist(),
        "theta_pit": rng.uniform(size=pairs).tolist(),
        "theta_interval_90_width_mean": 0.1 * (1 + seed),
        "psnr_db": {
            "unknown": (known - rng.uniform(0, 2, pairs)).tolist(),
            "known": known.tolist(),
            "fixed_at_prior_mean": (known - 6).tolist(),
        },
        "diverged_unknown": seed,
        "unknown_seconds": 10.0,
        **fields,
    }


def write(tmp_path, name, result):
    path = tmp_path / name
    path.write_text(json.dumps(result))
    return path


def test_gap_figures_are_per_pair_with_their_standard_error(study):
    figures = study.psnr_figures(
        {
            "unknown": [27.0, 30.0, 25.0],
            "known": [29.0, 30.0, 28.0],
            "fixed_at_prior_mean": [0.0] * 3,
        }
    )
    gap = figures["psnr_gap_db"]["known_minus_unknown"]
    assert gap["mean"] == pytest.approx(5 / 3)
    assert gap["median"] == pytest.approx(2.0)
    assert gap["standard_error"] == pytest.approx(np.std([2, 0, 3], ddof=1) / np.sqrt(3))
    assert figures["psnr_mean_db"]["known"] == pytest.approx(29.0)


def test_pooling_joins_disjoint_runs_in_pair_order(study, tmp_path):
    late, early = fake_run(16, 32, seed=1), fake_run(0, 16, seed=0)
    pooled = study.pool([write(tmp_path, "late.json", late), write(tmp_path, "early.json", early)])
    assert pooled["pairs"] == 48
    assert pooled["pair_ranges"] == [[0, 15], [16, 47]]
    assert pooled["psnr_db"]["known"] == early["psnr_db"]["known"] + late["psnr_db"]["known"]
    thetas = np.array(early["theta_true"] + late["theta_true"])
    means = np.array(early["theta_posterior_mean"] + late["theta_posterior_mean"])
    assert pooled["theta_abs_error_mean"] == pytest.approx(np.mean(np.abs(means - thetas)))
    assert pooled["theta_interval_90_width_mean"] == pytest.approx((16 * 0.1 + 32 * 0.2) / 48)
    assert pooled["diverged_unknown"] == 1


def test_pooling_refuses_other_settings_and_overlapping_pairs(study, tmp_path):
    first = write(tmp_path, "a.json", fake_run(0, 16, seed=0))
    other = write(tmp_path, "b.json", fake_run(16, 16, seed=1, num_passes=3))
    with pytest.raises(ValueError, match=r"num_passes.*\[3\] against \[1\]"):
        study.pool([first, other])
    two_stages = write(tmp_path, "d.json", fake_run(16, 16, seed=1, plug_in=True))
    with pytest.raises(ValueError, match=r"plug_in.*\[True\] against \[False\]"):
        study.pool([first, two_stages])
    overlapping = write(tmp_path, "c.json", fake_run(8, 16, seed=2))
    with pytest.raises(ValueError, match="disjoint pairs.*ends at pair 15.*starts at pair 8"):
        study.pool([first, overlapping])


def test_runs_without_references_have_no_gaps_and_pool_only_with_their_kind(study, tmp_path):
    alone = {key: value for key, value in fake_run(0, 8, 0).items() if key != "psnr_db"}
    runs = [
        {**alone, "first": first, "psnr_db": {"unknown": [28.0 + first] * 8}} for first in (0, 8)
    ]
    figures = study.psnr_figures(runs[0]["psnr_db"])
    assert figures["psnr_gap_db"] == {} and figures["psnr_mean_db"] == {"unknown": 28.0}
    pooled = study.pool([write(tmp_path, f"{k}.json", run) for k, run in enumerate(runs)])
    assert pooled["psnr_mean_db"] == {"unknown": 32.0} and pooled["pairs"] == 16
    with_references = write(tmp_path, "c.json", fake_run(8, 8, 1))
    with pytest.raises(
        ValueError, match=r"same references.*\['fixed_at_prior_mean', 'known', 'unknown'\]"
    ):
        study.pool([write(tmp_path, "a.json", runs[0]), with_references])


def test_runs_written_before_num_passes_existed_pool_as_one_pass(study, tmp_path):
    old = fake_run(0, 8, seed=0)
    del old["num_passes"], old["first"]
    new = fake_run(8, 8, 1, plug_in=False)
    pooled = study.pool([write(tmp_path, "old.json", old), write(tmp_path, "new.json", new)])
    assert pooled["num_passes"] == 1 and pooled["pairs"] == 16
    assert pooled["plug_in"] is False


def test_pooling_sums_stray_counts_and_refuses_another_stray_check(study, tmp_path):
    check = {"tolerance": 100.0, "num_times": 32, "min_time": 0.001}
    first = write(tmp_path, "a.json", fake_run(0, 8, 0, stray_check=check, strays_unknown=3))
    second = write(tmp_path, "b.json", fake_run(8, 8, 1, stray_check=check, strays_unknown=4))
    pooled = study.pool([first, second])
    assert pooled["stray_check"] == check and pooled["strays_unknown"] == 7
    assert pooled["strays_known"] is None  # not recorded by either run
    unchecked = write(tmp_path, "c.json", fake_run(8, 8, 1))  # a run from before the check
    with pytest.raises(ValueError, match="stray_check"):
        study.pool([first, unchecked])


def test_stray_tolerance_rows_average_the_kept_trajectories():
    """analyses/stray_tolerance.py: a stray (density 300 below the best) is averaged in only
    from tolerance 300 on; a diverged trajectory never is."""
    sys.path.insert(0, str(ROOT / "analyses"))
    path = ROOT / "analyses" / "stray_tolerance.py"
    spec = importlib.util.spec_from_file_location("stray_tolerance", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    truth = np.full((1, 4, 4), 0.5, np.float32)
    # (trajectory, image, 4, 4): two right, a stray of zeros, a diverged one of ones
    draws = np.stack([truth, truth, np.zeros_like(truth), np.ones_like(truth)])
    densities = np.array([[0.0], [-5.0], [-300.0], [10.0]])
    diverged = np.array([[False], [False], [False], [True]])
    rows = {
        row["tolerance"]: row for row in module.tolerance_rows(truth, draws, densities, diverged)
    }
    assert rows[100.0]["kept_fraction"] == 0.5 and rows[100.0]["psnr_mean_db"] > 100
    assert rows[500.0]["kept_fraction"] == 0.75
    # the stray (all zeros) pulls the mean to 1/3: PSNR of a 1/6 error
    np.testing.assert_allclose(rows["inf"]["psnr_mean_db"], 20 * np.log10(6), rtol=1e-4)


def narrow_draws_run(first, pairs, seed, split):
    """A run whose theta draws are three times too narrow: truth ~ N(m, 0.03), draws ~
    N(m, 0.01)."""
    rng = np.random.default_rng(seed)
    means = rng.uniform(0.3, 0.7, pairs)
    truths = means + rng.normal(0, 0.03, pairs)
    draws = means[:, None] + rng.normal(0, 0.01, (pairs, 64))
    return fake_run(
        first,
        pairs,
        seed,
        split=split,
        theta_true=truths.tolist(),
        theta_draws=draws.tolist(),
    )


def test_spread_scale_is_fitted_on_validation_and_widens_theta_here(study, tmp_path):
    validation = narrow_draws_run(0, 400, seed=0, split="validation")
    test = narrow_draws_run(0, 400, seed=1, split="test")
    scaled = study.with_spread_scale(test, validation, Path("v.json"))
    assert scaled["theta_spread_scale"]["scale"] == pytest.approx(3.0, rel=0.15)
    assert scaled["theta_interval_90_coverage_scaled"] == pytest.approx(0.9, abs=0.05)
    assert scaled["theta_interval_50_coverage_scaled"] == pytest.approx(0.5, abs=0.08)
    with pytest.raises(ValueError, match="validation split.*split test"):
        study.with_spread_scale(test, test, Path("t.json"))
    with pytest.raises(ValueError, match=r"differs in \['num_passes'\]"):
        study.with_spread_scale(test, {**validation, "num_passes": 2}, Path("v.json"))
    # pooling keeps the draws
    halves = [narrow_draws_run(first, 8, seed, "test") for first, seed in ((0, 2), (8, 3))]
    pooled = study.pool([write(tmp_path, f"{k}.json", run) for k, run in enumerate(halves)])
    assert pooled["theta_draws"] == halves[0]["theta_draws"] + halves[1]["theta_draws"]
