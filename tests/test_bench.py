"""`bayesnoise bench` on the Gaussian toy: its JSON line, and its errors."""

import json
import math

import pytest

from bayesnoise.cli import main

ROW_KEYS = {
    "batch",
    "ms_per_step",
    "ms_per_image",
    "compile_s",
    "bare_ms",
    "overhead_ratio",
    "flops_per_step",
    "gflops_per_s",
    "matmul_peak_fraction",
}


def test_bench_json_line_has_the_documented_keys(capsys):
    code = main(["bench", "models/gaussian_toy.py", "--batch", "1", "2", "--steps", "2", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert {"model", "sampler", "backend", "rows", "overhead_ratio", "ms_per_image"} <= set(result)
    assert result["sampler"] == "pigdm" and result["batch"] == 2
    assert [row["batch"] for row in result["rows"]] == [1, 2]
    for row in result["rows"]:
        assert set(row) >= ROW_KEYS
        for name in ("ms_per_step", "ms_per_image", "bare_ms", "overhead_ratio"):
            assert math.isfinite(row[name]) and row[name] > 0, name
        assert math.isfinite(row["compile_s"]) and row["compile_s"] >= 0
        # ms_per_image = ms_per_step x the model file's 300 default steps / B
        assert row["ms_per_image"] == pytest.approx(row["ms_per_step"] * 300 / row["batch"])
        assert row["cg_matvecs_per_step"] >= 1  # Tweedie PiGDM: its CG JVPs are counted
    assert result["overhead_ratio"] == result["rows"][-1]["overhead_ratio"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--sampler", "nope"], "sampler must be one of"),
        (["--batch", "0"], "--batch must be positive integers"),
        (["--steps", "0"], "--steps must be a positive integer"),
        (["--options", "{bad"], "--options must be JSON"),
        (["--options", "[1]"], "--options must be a JSON object"),
    ],
)
def test_bench_bad_input_exits_2_with_a_clear_error(capsys, arguments, message):
    assert main(["bench", "models/gaussian_toy.py", *arguments]) == 2
    assert message in capsys.readouterr().err


def test_bench_needs_a_model_file_or_paper(capsys):
    assert main(["bench"]) == 2
    assert "a model file is required (or --paper)" in capsys.readouterr().err
