"""Checkpoints: round trip, fp16 storage, tampered and mismatched files, shipped weights."""

import json

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from network_support import apply

from bayesnoise import assets
from bayesnoise.checkpoints import (
    MAGIC,
    load_checkpoint,
    load_score_prior,
    read_header,
    save_checkpoint,
    sde_from_header,
    sde_to_header,
)
from bayesnoise.nets import NCSNv2, UNet
from bayesnoise.priors import ScoreNetPrior
from bayesnoise.sde import VESDE, VPSDE

ASSETS = assets.directory()
SHIPPED = ["fashion_unet.eqx", "digits_unet.eqx", "sine_unet.eqx"]


@pytest.fixture
def key():
    # The "rbg" generator: threefry compiles slowly for the many weight shapes of a network.
    return jax.random.key(20260522, impl="rbg")


@eqx.filter_jit
def trained_like(net, key):
    """Perturb every floating leaf, so the zero-initialised head is not zero any more."""
    leaves, treedef = jax.tree.flatten(net)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        treedef,
        [
            leaf + 0.1 * jax.random.normal(k, leaf.shape)
            if isinstance(leaf, jax.Array) and jnp.issubdtype(leaf.dtype, jnp.floating)
            else leaf
            for leaf, k in zip(leaves, keys, strict=True)
        ],
    )


@pytest.fixture(scope="module")
def network():
    key = jax.random.key(1, impl="rbg")
    return trained_like(UNet(channels=(4, 8), embedding_dim=8, groups=2, key=key), key)


def header(shape=(8, 8, 1)):
    return {"sde": sde_to_header(VPSDE()), "data": {"shape": list(shape)}}


def test_round_trip_gives_identical_outputs(network, tmp_path, key):
    path = tmp_path / "net.eqx"
    written = save_checkpoint(path, network, header())
    loaded, read = load_checkpoint(path)
    assert read == written
    assert read["architecture"]["name"] == "unet"
    assert len(read["sha256"]) == 64 and "sha256" not in read["weights"]
    x = jax.random.normal(key, (8, 8, 1))
    np.testing.assert_array_equal(
        apply(loaded, x, jnp.asarray(0.3)), apply(network, x, jnp.asarray(0.3))
    )
    assert path.read_bytes().startswith(MAGIC)


def test_ncsnv2_round_trip(tmp_path, key):
    net = NCSNv2(features=4, embedding_dim=8, groups=2, key=key)
    save_checkpoint(tmp_path / "n.eqx", net, header())
    loaded, read = load_checkpoint(tmp_path / "n.eqx")
    assert read["architecture"] == {"name": "ncsnv2", "hyperparameters": net.hyperparameters}
    assert eqx.tree_equal(loaded, net)  # same structure, static fields and weights


def test_float16_storage_is_smaller_and_loads_as_float32(network, tmp_path, key):
    save_checkpoint(tmp_path / "32.eqx", network, header())
    save_checkpoint(tmp_path / "16.eqx", network, header(), dtype="float16")
    assert (tmp_path / "16.eqx").stat().st_size < 0.7 * (tmp_path / "32.eqx").stat().st_size
    loaded, read = load_checkpoint(tmp_path / "16.eqx")
    assert read["weights"]["dtype"] == "float16"
    assert loaded.conv_in.weight.dtype == jnp.float32
    x = jax.random.normal(key, (8, 8, 1))
    np.testing.assert_allclose(
        apply(loaded, x, jnp.asarray(0.3)),
        apply(network, x, jnp.asarray(0.3)),
        rtol=2e-2,
        atol=2e-2,
    )
    with pytest.raises(ValueError, match="dtype must be one of"):
        save_checkpoint(tmp_path / "x.eqx", network, header(), dtype="bfloat16")


def test_tampered_weights_fail_the_checksum(network, tmp_path):
    path = tmp_path / "net.eqx"
    save_checkpoint(path, network, header())
    raw = bytearray(path.read_bytes())
    raw[-3] ^= 0xFF
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="checksum mismatch: header says [0-9a-f]{64}, file has"):
        load_checkpoint(path)


def rewrite_header(path, change):
    raw = path.read_bytes()
    end = raw.index(b"\n", len(MAGIC))
    entry = json.loads(raw[len(MAGIC) : end])
    change(entry)
    path.write_bytes(MAGIC + json.dumps(entry).encode() + raw[end:])


def test_mismatched_architecture_names_the_leaf(network, tmp_path, key):
    path = tmp_path / "net.eqx"
    save_checkpoint(path, network, header())
    other = UNet(channels=(4, 16), embedding_dim=8, groups=2, key=key)
    with pytest.raises(
        ValueError, match=r"leaf shapes differ: .*expected \(3, 3, 4, 16\), got \(3, 3, 4, 8\)"
    ):
        load_checkpoint(path, like=other)
    # The same through the header (hyper-parameters edited, weights untouched) is caught
    # earlier, by the checksum, which covers the header.
    rewrite_header(path, lambda h: h["architecture"]["hyperparameters"].update(channels=[4, 16]))
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_checkpoint(path)


@pytest.mark.parametrize(
    "edit",
    [
        lambda h: h["sde"]["parameters"].update(beta_max=10.0),
        lambda h: h["architecture"]["hyperparameters"].update(groups=4),
        lambda h: h["data"].update(shape=[16, 16, 1]),
        lambda h: h["weights"].update(dtype="float16"),
        lambda h: h.update(note="added"),
    ],
    ids=["beta_max", "groups", "data_shape", "weights_dtype", "new_field"],
)
def test_edited_header_fails_the_checksum(network, tmp_path, edit):
    path = tmp_path / "net.eqx"
    save_checkpoint(path, network, header())
    rewrite_header(path, edit)
    message = r"net.eqx: checksum mismatch: header says [0-9a-f]{64}, file has [0-9a-f]{64}\. "
    message += "The checksum covers the header and the weights"
    for load in (load_checkpoint, load_score_prior, read_header):
        with pytest.raises(ValueError, match=message):
            load(path)


def test_header_order_and_spacing_do_not_matter(network, tmp_path):
    """The checksum is over canonical JSON: reformatting the header line is not an edit."""
    path = tmp_path / "net.eqx"
    written = save_checkpoint(path, network, header())
    raw = path.read_bytes()
    end = raw.index(b"\n", len(MAGIC))
    entry = json.loads(raw[len(MAGIC) : end])
    reordered = json.dumps(dict(reversed(list(entry.items()))), separators=(" ,", ": "))
    path.write_bytes(MAGIC + reordered.encode() + raw[end:])
    assert load_checkpoint(path)[1] == written


def test_mismatched_leaf_count_is_reported(network, tmp_path, key):
    path = tmp_path / "net.eqx"
    save_checkpoint(path, network, header())
    deeper = UNet(channels=(4, 8, 8), embedding_dim=8, groups=2, key=key)
    with pytest.raises(ValueError, match="fewer weights than the architecture needs"):
        load_checkpoint(path, like=deeper)
    shallower = UNet(channels=(4,), embedding_dim=8, groups=2, key=key)
    with pytest.raises(ValueError, match="leaf shapes differ|more weights than"):
        load_checkpoint(path, like=shallower)


def test_bad_files_and_headers(network, tmp_path):
    path = tmp_path / "bad.eqx"
    path.write_bytes(b"PK\x03\x04 not a checkpoint")
    with pytest.raises(ValueError, match="is not a bayesnoise checkpoint"):
        read_header(path)
    with pytest.raises(FileNotFoundError, match="not found"):
        load_checkpoint(tmp_path / "missing.eqx")
    save_checkpoint(path, network, header())
    rewrite_header(path, lambda h: h.update(format_version=99))
    with pytest.raises(ValueError, match="format_version must be 2. Got 99"):
        load_checkpoint(path)
    rewrite_header(path, lambda h: h.update(format_version=1))
    with pytest.raises(ValueError, match="format_version must be 2. Got 1 .format 1 checksummed"):
        load_checkpoint(path)
    path.write_bytes(MAGIC + b'["a", "list"]\n')
    with pytest.raises(ValueError, match="the header must be a JSON object. Got a list"):
        read_header(path)
    path.write_bytes(MAGIC + b'{"format_version": 2')
    with pytest.raises(ValueError, match="the header line must end with a newline. Got none"):
        read_header(path)
    with pytest.raises(ValueError, match="header must have an 'sde' entry"):
        save_checkpoint(path, network, {"data": {"shape": [8, 8, 1]}})


def test_sde_header_round_trip():
    for sde in (VPSDE(beta_min=0.1, beta_max=7.0), VESDE(sigma_min=0.02, sigma_max=30.0)):
        assert sde_from_header(sde_to_header(sde)) == sde
    with pytest.raises(ValueError, match="sde header entry must be"):
        sde_from_header({"name": "CosineSDE"})


def test_load_score_prior(network, tmp_path, key):
    path = tmp_path / "net.eqx"
    save_checkpoint(path, network, {"sde": sde_to_header(VESDE()), "data": {"shape": [8, 8, 1]}})
    prior = load_score_prior(path)
    assert isinstance(prior, ScoreNetPrior)
    assert prior.sde == VESDE()
    assert prior.shape == (8, 8, 1)
    x = jax.random.normal(key, (8, 8, 1))
    np.testing.assert_allclose(
        eqx.filter_jit(lambda p, x: p.score(x, jnp.asarray(0.5)))(prior, x),
        apply(network, x, jnp.asarray(0.5)) / VESDE().marginal_std(0.5),
        rtol=1e-5,
    )


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_load_and_give_finite_scores(name, key):
    path = ASSETS / name
    if not path.is_file():
        pytest.skip(f"{path} not shipped")
    assert path.stat().st_size <= 10 * 2**20
    prior = load_score_prior(path)
    x = jax.random.normal(key, (2, *prior.shape))
    scores = eqx.filter_jit(lambda p, x: jax.vmap(p.score, in_axes=(0, None))(x, jnp.asarray(0.5)))(
        prior, x
    )
    assert scores.shape == (2, *prior.shape)
    assert bool(jnp.all(jnp.isfinite(scores)))
