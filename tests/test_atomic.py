"""Atomic writes: the file appears whole or not at all, with the mode 0o666 & ~umask."""

import json
import os
import stat

import numpy as np
import pytest

from bayesnoise.atomic import atomic_path, atomic_write_bytes, default_file_mode


@pytest.fixture(params=[0o022, 0o077, 0o002])
def umask(request):
    """Run the test under a given umask, restoring the previous one afterwards."""
    previous = os.umask(request.param)
    yield request.param
    os.umask(previous)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def test_default_file_mode_follows_the_umask(umask):
    assert default_file_mode() == 0o666 & ~umask


def test_atomic_write_bytes_mode_and_content(tmp_path, umask):
    path = atomic_write_bytes(tmp_path / "a.bin", b"content")
    assert path.read_bytes() == b"content"
    assert mode(path) == 0o666 & ~umask
    assert os.listdir(tmp_path) == ["a.bin"]


def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = tmp_path / "a.json"
    path.write_text("old")
    with pytest.raises(RuntimeError, match="writer failed"), atomic_path(path) as temporary:
        temporary.write_text("half")
        raise RuntimeError("writer failed")
    assert path.read_text() == "old"
    assert os.listdir(tmp_path) == ["a.json"]


def test_checkpoint_mode(tmp_path, umask):
    import jax

    from bayesnoise.checkpoints import save_checkpoint, sde_to_header
    from bayesnoise.nets import UNet
    from bayesnoise.sde import VPSDE

    network = UNet(channels=(4,), embedding_dim=8, groups=2, key=jax.random.key(0, impl="rbg"))
    path = tmp_path / "net.eqx"
    save_checkpoint(path, network, {"sde": sde_to_header(VPSDE()), "data": {"shape": [8, 8, 1]}})
    assert mode(path) == 0o666 & ~umask


def test_datatree_mode(tmp_path, umask):
    import arviz_base

    from bayesnoise.output import save_datatree

    tree = arviz_base.from_dict({"posterior": {"x": np.zeros((1, 2, 3))}})
    path = save_datatree(tree, tmp_path / "posterior.nc")
    assert mode(path) == 0o666 & ~umask
    assert os.listdir(tmp_path) == ["posterior.nc"]


def test_report_mode(tmp_path, umask):
    from bayesnoise.report import write_report

    path = write_report(
        tmp_path / "out", observation=np.zeros(4), posterior={"x": np.zeros((1, 2, 4))}
    )
    for file in path.parent.iterdir():
        assert mode(file) == 0o666 & ~umask, file.name


def test_summary_json_mode(tmp_path, umask):
    from bayesnoise.cli import _write_json

    _write_json(tmp_path / "summary.json", {"a": 1.5})
    assert json.loads((tmp_path / "summary.json").read_text()) == {"a": 1.5}
    assert mode(tmp_path / "summary.json") == 0o666 & ~umask
