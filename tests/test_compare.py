"""analyses/compare.py: its input checks name the argument, and its last line is the contract."""

import importlib.util
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest

from bayesnoise import baselines
from bayesnoise.data import FASHION_MNIST_DIRECTORY, load_testset
from bayesnoise.metrics import psnr

ROOT = Path(__file__).resolve().parents[1]
FASHION_PRESENT = (FASHION_MNIST_DIRECTORY / "t10k-images-idx3-ubyte.gz").is_file()


@pytest.fixture(scope="module")
def compare():
    sys.path.insert(0, str(ROOT / "analyses"))
    spec = importlib.util.spec_from_file_location("compare", ROOT / "analyses" / "compare.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["compare"] = module  # its dataclass looks its module up
    spec.loader.exec_module(module)
    return module


def write_pairs(path, **arrays):
    np.savez(path, **arrays)
    return path


def sine_pairs(num_images=2, average_std=0.2):
    """Shipped test images with fresh sinusoidal noise, as the sine task's pairs."""
    import jax

    import bayesnoise as bn

    signal = load_testset()["fashion"][:num_images, ..., 0]  # (N, 28, 28): no channel axis
    noise = np.stack(
        [
            np.asarray(bn.sample_sinusoidal_noise(jax.random.key(seed), (28, 28), average_std))
            for seed in range(num_images)
        ]
    )
    return signal, noise.astype(np.float32)


@pytest.mark.parametrize(
    ("arrays", "task", "match"),
    [
        (
            {"signal": np.zeros((2, 28, 28))},
            "sine",
            r"--pairs must hold arrays 'signal' and 'noise'.*missing \['noise'\]",
        ),
        (
            {"signal": np.zeros((2, 32, 32)), "noise": np.zeros((2, 32, 32))},
            "digits",
            r"--pairs array 'signal' must have shape \(N, 28, 28\) or \(N, 28, 28, 1\).*"
            r"Got shape \(2, 32, 32, 1\)",
        ),
        (
            {"signal": np.zeros((2, 28, 28)), "noise": np.zeros((2, 28, 28))},
            "cs_sine",
            r"--pairs array 'noise' must have shape \(N, 14, 28\) or \(N, 14, 28, 1\)",
        ),
        (
            {"signal": np.full((2, 28, 28), 1.5), "noise": np.zeros((2, 28, 28))},
            "sine",
            r"--pairs array 'signal' must have values in \[0, 1\]. Got values in \[1.5, 1.5\]",
        ),
        (
            {"signal": np.zeros((2, 28, 28)), "noise": np.full((2, 28, 28), -0.2)},
            "ood_digits",
            r"--pairs array 'noise' must have values in \[0, 1\]",
        ),
        (
            {"signal": np.zeros((2, 28, 28)), "noise": np.zeros((3, 28, 28))},
            "sine",
            r"must hold the same number of pairs. Got 2 and 3",
        ),
        (
            {"signal": np.full((1, 28, 28), np.nan), "noise": np.zeros((1, 28, 28))},
            "sine",
            r"--pairs array 'signal' must be finite",
        ),
        (
            {"signal": np.zeros((1, 28, 28), bool), "noise": np.zeros((1, 28, 28))},
            "sine",
            r"--pairs array 'signal' must be real numbers. Got bool",
        ),
    ],
)
def test_pairs_file_errors_name_the_argument(compare, tmp_path, arrays, task, match):
    path = write_pairs(tmp_path / "pairs.npz", **arrays)
    with pytest.raises(ValueError, match=match):
        compare.check_pairs(path, task)


def test_pairs_file_accepts_a_channel_axis_and_sinusoidal_noise_outside_the_unit_range(
    compare, tmp_path
):
    signal, noise = sine_pairs()
    assert noise.min() < 0.0  # zero-mean noise: only the digit tasks' noise is an image
    path = write_pairs(tmp_path / "pairs.npz", signal=signal[..., None], noise=noise)
    checked_signal, checked_noise = compare.check_pairs(path, "sine")
    assert checked_signal.shape == checked_noise.shape == (2, 28, 28, 1)
    cs = write_pairs(tmp_path / "cs.npz", signal=signal, noise=noise[:, :14])
    assert compare.check_pairs(cs, "ood_cs")[1].shape == (2, 392)


@pytest.mark.parametrize(
    ("argv", "match"),
    [
        (["--task", "sine", "--methods", "gaussian_noise"], r"--methods \['gaussian_noise'\] do"),
        (["--task", "cs_sine", "--methods", "bm3d"], r"--methods \['bm3d'\] do not apply"),
        (["--task", "digits", "--noise-std", "0.1"], r"--noise-std applies to the sinusoidal"),
        (["--task", "sine", "--noise-std", "-0.1"], r"--noise-std must be positive"),
        (["--task", "sine", "--num-images", "0"], r"--num-images must be >= 1. Got 0"),
        (["--task", "sine", "--pairs", "missing.npz"], r"--pairs must be an existing .npz"),
        (["--task", "celeba"], r"argument --task: invalid choice: 'celeba'"),
        (["--task", "ood_cs", "--split", "heldout"], r"--split heldout applies to the in-dis"),
        (["--task", "sine", "--joint-settings", "{'num_steps': 9"], r"--joint-settings must be"),
        (["--task", "sine", "--joint-settings", '{"steps": 9}'], r"keys among \['sampler'"),
    ],
)
def test_command_line_errors_name_the_argument(compare, capsys, argv, match):
    with pytest.raises(SystemExit):
        compare.parse_args(argv)
    assert re.search(match, capsys.readouterr().err)


def test_hyper_from_must_be_a_compare_json(compare, tmp_path, capsys):
    bad = tmp_path / "bad.json"
    bad.write_text('{"table": []}')
    with pytest.raises(SystemExit):
        compare.parse_args(["--task", "sine", "--hyper-from", str(bad)])
    assert "--hyper-from must be a JSON file written by compare.py" in capsys.readouterr().err


def test_faces_are_28_by_28_in_the_unit_range(compare):
    faces = compare.faces(3)
    assert faces.shape == (3, 28, 28, 1) and faces.dtype == np.float32
    assert faces.min() >= 0.0 and faces.max() <= 1.0 and faces.std() > 0.05


NLM = {"h": 0.19, "patch_size": 5, "patch_distance": 6}
LASSO = {"alpha": 0.1, "wavelet": "db2", "weighted": True}


def hyper_file(path):
    rows = [{"method": "nlm", "hyper": NLM}, {"method": "lasso", "hyper": LASSO}]
    path.write_text(json.dumps({"rows": rows}))
    return path


def test_tiny_run_last_line_is_the_json_contract(compare, tmp_path, capsys):
    signal, noise = sine_pairs()
    pairs = write_pairs(tmp_path / "mine.npz", signal=signal, noise=noise)
    argv = ["--task", "sine", "--pairs", str(pairs), "--methods", "nlm", "lasso"]
    argv += ["--hyper-from", str(hyper_file(tmp_path / "h.json")), "--out-dir", str(tmp_path)]
    compare.main(argv)
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert set(last) == {"nlm", "lasso"}
    for entry in last.values():
        assert set(entry) == {"psnr", "ssim", "seconds_per_image"}
        assert all(isinstance(value, float) for value in entry.values())
        assert entry["seconds_per_image"] > 0.0
    # the same number as the baseline called directly on y = x + n
    task = compare.make_task("sine", 2, None, pairs)
    x = signal[..., None]
    expected = psnr(
        baselines.nl_means_denoise(x + noise[..., None], task.problem, **NLM), x, batch=True
    )
    assert last["nlm"]["psnr"] == pytest.approx(float(np.mean(expected)), abs=1e-4)
    noisy = np.mean(psnr(x + noise[..., None], x, batch=True))
    assert last["nlm"]["psnr"] > noisy + 2.0  # it denoised
    written = json.loads((tmp_path / "compare_sine_std0.2_mine.json").read_text())
    assert [row["method"] for row in written["rows"]] == ["input", "nlm", "lasso"]
    assert written["rows"][1]["hyper"] == NLM and written["num_images"] == 2
    assert "| non-local means" in (tmp_path / "compare_sine_std0.2_mine.md").read_text()
    assert (tmp_path / "compare_sine_std0.2_mine.png").read_bytes()[:4] == b"\x89PNG"


def test_noise_std_sweep_reports_a_list_per_method(compare, tmp_path, capsys):
    argv = ["--task", "sine", "--noise-std", "0.1", "0.3", "--methods", "nlm"]
    argv += ["--num-images", "2", "--hyper-from", str(hyper_file(tmp_path / "h.json"))]
    compare.main([*argv, "--out-dir", str(tmp_path)])
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert last["nlm"]["noise_std"] == [0.1, 0.3]
    assert len(last["nlm"]["psnr"]) == 2
    assert last["nlm"]["psnr"][0] > last["nlm"]["psnr"][1]  # less noise, better estimate
    assert (tmp_path / "compare_sine_sweep.png").is_file()


@pytest.mark.skipif(not FASHION_PRESENT, reason="apt-get install dataset-fashion-mnist")
def test_heldout_split_takes_images_that_are_not_shipped(compare):
    shipped = load_testset()
    digits = compare.make_task("digits", 3, None, split="heldout")
    x, n = digits.test
    assert x.shape == n.shape == (3, 28, 28, 1)
    for held_out, shipped_images in ((x, shipped["fashion"]), (n, shipped["digits"])):
        distances = np.abs(held_out[:, None] - shipped_images[None]).max(axis=(2, 3, 4))
        assert distances.min() > 0.1  # no held-out image is a shipped one
    cs = compare.make_task("cs_sine", 3, None, split="heldout")
    np.testing.assert_array_equal(cs.test[0], x)  # the same images, noise seeds 20 000 + i
    tested = compare.make_task("cs_sine", 3, None)
    assert cs.test[1].shape == tested.test[1].shape and not np.allclose(cs.test[1], tested.test[1])


@pytest.mark.skipif(not FASHION_PRESENT, reason="apt-get install dataset-fashion-mnist")
def test_hyper_parameters_are_the_best_on_validation_pairs(compare, tmp_path, capsys):
    argv = ["--task", "sine", "--methods", "nlm", "--num-images", "2", "--out-dir", str(tmp_path)]
    compare.main(argv)
    row = json.loads((tmp_path / "compare_sine_std0.2.json").read_text())["rows"][1]
    assert len(row["validation"]) == 12
    assert row["hyper"] == max(row["validation"], key=lambda tried: tried["psnr"])["hyper"]


def test_joint_is_tuned_only_away_from_its_model_files_noise_level(compare):
    for name, noise_std in (("sine", 0.2), ("digits", None)):  # the model file's defaults
        task = compare.make_task(name, 1, noise_std)
        assert compare.grid("joint", task) == [task.module.defaults]
    low_noise = compare.make_task("sine", 1, 0.05)  # the analytic prior: tuned
    tried = compare.grid("joint", low_noise)
    settings = {(h["start_time"], h["sampler_options"]["guidance_weight"]) for h in tried}
    assert len(tried) == len(settings) == 8
    assert all(h["num_steps"] == low_noise.module.defaults["num_steps"] for h in tried)


def test_joint_settings_replace_the_model_files_defaults(compare):
    args = compare.parse_args(["--task", "cs_sine", "--joint-settings", '{"num_steps": 200}'])
    task = compare.make_task("cs_sine", 1, None, joint_settings=args.joint_settings)
    (settings,) = compare.grid("joint", task)
    assert settings == {**task.module.defaults, "num_steps": 200}
    assert compare.joint_label(task) == "joint posterior (--joint-settings: num_steps)"


def test_validation_ranks_a_diverged_entry_below_any_complete_one(compare):
    complete = {"psnr": 20.0, "images_without_estimate": 0}
    diverged = {"psnr": 35.0, "images_without_estimate": 1}  # scored on the other images
    nothing = {"psnr": float("nan"), "images_without_estimate": 5}
    ranked = sorted([nothing, diverged, complete], key=compare.validation_rank, reverse=True)
    assert ranked == [complete, diverged, nothing]


def test_merged_sweeps_hold_every_method_and_refuse_other_noise_levels(tmp_path):
    sys.path.insert(0, str(ROOT / "analyses"))
    spec = importlib.util.spec_from_file_location(
        "merge_sweeps", ROOT / "analyses" / "merge_sweeps.py"
    )
    merge_sweeps = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(merge_sweeps)

    def sweep(method, stds, offset):
        entry = {"psnr": [20.0 + offset] * len(stds), "psnr_per_image": [[20.0, 21.0]] * len(stds)}
        methods = {"input": {**entry, "psnr": [15.0] * len(stds)}, method: entry}
        return {"task": "sine", "noise_std": stds, "command": method, "methods": methods}

    paths = []
    for method, offset in (("gan", 1.0), ("flow", 2.0)):
        paths.append(tmp_path / f"{method}.json")
        paths[-1].write_text(json.dumps(sweep(method, [0.1, 0.2], offset)))
    out = tmp_path / "merged.json"
    merge_sweeps.main([*map(str, paths), "--out", str(out)])
    merged = json.loads(out.read_text())
    assert list(merged["methods"]) == ["input", "gan", "flow"]
    assert merged["methods"]["flow"]["psnr"] == [22.0, 22.0]
    assert merged["commands"] == ["gan", "flow"] and out.with_suffix(".png").is_file()

    with pytest.raises(ValueError, match="sweeps must share the task and noise stds"):
        merge_sweeps.merge(
            [sweep("gan", [0.1, 0.2], 0.0), sweep("nlm", [0.1, 0.3], 0.0)], ["a", "b"]
        )
