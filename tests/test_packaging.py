"""Packaging: the wheel ships the priors, the test set and the licence, and an installed (not
editable) package finds them from any directory."""

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = [
    "conditional_digits_unet.eqx",
    "conditional_gaussian_unet.eqx",
    "conditional_inpaint_unet.eqx",
    "digits_flow.eqx",
    "digits_unet.eqx",
    "fashion_dcgan.eqx",
    "fashion_flow.eqx",
    "fashion_unet.eqx",
    "sine_unet.eqx",
    "testset.npz",
]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """A wheel built by ``pip wheel`` from a copy of the sources (the tree is left alone)."""
    source = tmp_path_factory.mktemp("source")
    shutil.copytree(
        ROOT / "bayesnoise", source / "bayesnoise", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        shutil.copy(ROOT / name, source / name)
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(source), "--no-deps", "-q", "-w", str(out)],
        check=True,
        capture_output=True,
    )
    (built,) = out.glob("bayesnoise-*.whl")
    return built


@pytest.mark.slow  # pip builds the wheel in a fresh environment: about 10 s
def test_wheel_lists_the_priors_the_test_set_and_the_licence(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    for name in SHIPPED:
        assert f"bayesnoise/assets/{name}" in names
    assert "bayesnoise/image_io.py" in names
    assert any(".dist-info/" in name and name.endswith("/LICENSE") for name in names), names
    metadata = zipfile.ZipFile(wheel).read(
        next(name for name in names if name.endswith(".dist-info/METADATA"))
    )
    assert b"License: Apache-2.0" in metadata
    assert b"Provides-Extra: fits" in metadata


@pytest.mark.slow
def test_installed_wheel_finds_its_assets_from_another_directory(wheel, tmp_path):
    """Installed into a plain folder (no editable finder, no repository on the path)."""
    site = tmp_path / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(site)]
        + [str(wheel)],
        check=True,
        capture_output=True,
    )
    script = (
        "import bayesnoise\n"
        "from bayesnoise import assets\n"
        "from bayesnoise.checkpoints import load_score_prior\n"
        "from bayesnoise.data import load_testset\n"
        f"assert bayesnoise.__file__.startswith({str(site)!r}), bayesnoise.__file__\n"
        "print(assets.names())\n"
        "print(load_testset()['fashion'].shape)\n"
        "print(load_score_prior(assets.path('fashion_unet.eqx')).shape)\n"
    )
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=elsewhere,
        env={**os.environ, "PYTHONPATH": str(site)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [str(SHIPPED), "(100, 28, 28, 1)", "(28, 28, 1)"]


def test_missing_asset_lists_the_shipped_ones():
    from bayesnoise import assets

    assert assets.names() == SHIPPED
    assert assets.path("testset.npz").is_file()
    with pytest.raises(FileNotFoundError, match=r"name must be one of the shipped assets \["):
        assets.path("nope.eqx")
