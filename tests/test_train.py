"""Denoising score matching: the loss falls, resuming continues exactly, inputs are checked."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayesnoise.checkpoints import read_header
from bayesnoise.nets import UNet
from bayesnoise.sde import VPSDE
from bayesnoise.training import dsm_loss, heldout_loss, train_from_config, train_score_network

SETTINGS = dict(
    batch_size=16,
    learning_rate=3e-3,
    ema_decay=0.5,
    warmup_steps=5,
    eval_every=10,
    progress=False,
)


def toy_images(key, count):
    """8 x 8 images: a bright square at one of four places, the rest dark."""
    corner = jax.random.randint(key, (count,), 0, 4)
    rows, cols = 4 * (corner // 2), 4 * (corner % 2)
    grid = jnp.arange(8)
    inside_rows = (grid[None, :] >= rows[:, None]) & (grid[None, :] < rows[:, None] + 4)
    inside_cols = (grid[None, :] >= cols[:, None]) & (grid[None, :] < cols[:, None] + 4)
    squares = inside_rows[:, :, None] & inside_cols[:, None, :]
    return squares.astype(jnp.float32)[..., None]


@pytest.fixture(scope="module")
def problem():
    key = jax.random.key(7, impl="rbg")  # threefry compiles slowly for many weight shapes
    data_key, net_key, train_key = jax.random.split(key, 3)
    images = toy_images(data_key, 128)
    network = UNet(channels=(4,), embedding_dim=8, groups=2, key=net_key)
    return network, VPSDE(), images[:96], images[96:], train_key


@pytest.fixture(scope="module")
def uninterrupted(problem):
    network, sde, train, heldout, key = problem
    return train_score_network(network, sde, train, heldout, num_steps=40, key=key, **SETTINGS)


def test_loss_falls(problem, uninterrupted):
    network, sde, _, heldout, _ = problem
    trained, history = uninterrupted
    before = heldout_loss(network, sde, heldout, batch_size=32)
    after = heldout_loss(trained, sde, heldout, batch_size=32)
    assert before == pytest.approx(1.0, abs=0.1)  # zero-initialised head predicts 0
    assert after < 0.8 * before
    assert history["step"] == [10, 20, 30, 40]
    assert history["heldout_loss"][-1] == pytest.approx(after, rel=1e-5)
    assert history["heldout_loss"][-1] < history["heldout_loss"][0]


def test_resume_continues_at_the_saved_step(problem, uninterrupted, tmp_path):
    network, sde, train, heldout, key = problem
    path = tmp_path / "state.eqx"
    exported = []
    train_score_network(
        network, sde, train, heldout, num_steps=20, key=key, checkpoint_path=path,
        checkpoint_every=10, on_checkpoint=lambda net, summary: exported.append(summary),
        **SETTINGS,
    )  # fmt: skip
    assert [s["step"] for s in exported] == [10, 20]
    assert read_header(path)["step"] == 20
    resumed, history = train_score_network(
        network, sde, train, heldout, num_steps=40, key=key, checkpoint_path=path,
        checkpoint_every=10, on_checkpoint=lambda net, summary: exported.append(summary),
        **SETTINGS,
    )  # fmt: skip
    assert [s["step"] for s in exported] == [10, 20, 30, 40]
    assert history["step"] == [10, 20, 30, 40]
    reference, _ = uninterrupted
    x = jax.random.normal(key, (8, 8, 1))
    apply = eqx.filter_jit(lambda net, x: net(x, jnp.asarray(0.4)))
    np.testing.assert_allclose(apply(resumed, x), apply(reference, x), rtol=1e-4, atol=1e-5)


def test_dsm_loss_is_one_for_the_zero_network(problem):
    network, sde, train, _, key = problem
    # The U-Net's head starts at zero, so the loss is the mean of z², close to 1.
    assert float(eqx.filter_jit(dsm_loss)(network, sde, train, key)) == pytest.approx(1.0, abs=0.05)


def test_bad_arguments(problem):
    network, sde, train, _, key = problem
    with pytest.raises(ValueError, match="num_steps must be a positive integer. Got 0"):
        train_score_network(network, sde, train, num_steps=0, key=key)
    with pytest.raises(ValueError, match=r"ema_decay must be in \[0, 1\). Got 1.5"):
        train_score_network(network, sde, train, num_steps=1, ema_decay=1.5, key=key)
    with pytest.raises(ValueError, match=r"train_images must have shape \(N, height, width"):
        train_score_network(network, sde, train[..., 0], num_steps=1, key=key)


def test_resume_refuses_a_different_run(problem, tmp_path):
    network, sde, train, _, key = problem
    path = tmp_path / "state.eqx"
    train_score_network(network, sde, train, num_steps=1, key=key, checkpoint_path=path, **SETTINGS)
    with pytest.raises(ValueError, match="cannot resume: the saved run has batch_size=16"):
        train_score_network(
            network, sde, train, num_steps=2, key=key, checkpoint_path=path,
            **{**SETTINGS, "batch_size": 8},
        )  # fmt: skip


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"learning_rate": 1e-3}, "learning_rate=0.003, this run has learning_rate=0.001"),
        ({"ema_decay": 0.9}, "ema_decay=0.5, this run has ema_decay=0.9"),
        ({"grad_clip": 0.5}, "grad_clip=1.0, this run has grad_clip=0.5"),
        ({"adam_eps": 1e-6}, "adam_eps=1e-08, this run has adam_eps=1e-06"),
        ({"reverse_images": True}, "train_images_sha256='[0-9a-f]{64}', this run has"),
    ],
)
def test_resume_refuses_other_settings_or_data(problem, tmp_path, change, field):
    network, sde, train, _, key = problem
    path = tmp_path / "state.eqx"
    train_score_network(network, sde, train, num_steps=1, key=key, checkpoint_path=path, **SETTINGS)
    other_train = train[::-1] if change.pop("reverse_images", False) else train
    with pytest.raises(ValueError, match=f"cannot resume: the saved run has {field}"):
        train_score_network(
            network, sde, other_train, num_steps=2, key=key, checkpoint_path=path,
            **{**SETTINGS, **change},
        )  # fmt: skip


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"checkpoint_every": 0}, "checkpoint_every must be a positive integer. Got 0"),
        ({"eval_every": 2.5}, "eval_every must be a positive integer. Got 2.5"),
        ({"batch_size": 0}, "batch_size must be a positive integer. Got 0"),
        ({"learning_rate": float("nan")}, "learning_rate must be a finite number > 0. Got nan"),
        ({"max_wall_time": -1.0}, "max_wall_time must be a number of seconds > 0. Got -1.0"),
    ],
)
def test_bad_intervals_and_rates(problem, change, message):
    network, sde, train, _, key = problem
    with pytest.raises(ValueError, match=message):
        train_score_network(network, sde, train, num_steps=1, key=key, **{**SETTINGS, **change})


def test_time_limit_is_recorded_as_not_finished(problem, tmp_path):
    """A --minutes stop says finished: false, stopped: "time limit"; the rerun finishes it."""
    _, _, train, _, _ = problem
    np.save(tmp_path / "images.npy", np.asarray(train))
    out = tmp_path / "prior.eqx"
    options = dict(
        architecture_options={"channels": [4], "embedding_dim": 8, "groups": 2},
        batch_size=16,
        checkpoint_every=1,
        eval_every=1,
        progress=False,
    )
    _, header = train_from_config(
        str(tmp_path / "images.npy"), "unet", out, steps=3, max_wall_time=1e-9, **options
    )
    assert header["training"]["steps"] == 1
    assert header["training"]["finished"] is False
    assert header["training"]["stopped"] == "time limit"
    assert read_header(out) == header
    _, header = train_from_config(str(tmp_path / "images.npy"), "unet", out, steps=3, **options)
    assert header["training"]["steps"] == 3
    assert header["training"]["finished"] is True and "stopped" not in header["training"]


def test_the_former_module_is_an_alias():
    """``bayesnoise.train`` is ``bayesnoise.training``: old imports and patches still work."""
    import bayesnoise.train
    import bayesnoise.training

    assert bayesnoise.train is bayesnoise.training
    assert bayesnoise.train.train_score_network is train_score_network
