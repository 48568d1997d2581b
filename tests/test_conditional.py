"""Conditional score networks (Iyer, Shu & Sinha): the U-Net's condition channels, eq. 14's
mask against its formula, condition dropout, classifier-free guidance (eq. 11) on a Gaussian
case with closed-form scores, checkpoints, paired training and sampling through bn.sample."""

import functools
import importlib.util
import json
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import bayesnoise as bn
from bayesnoise.checkpoints import (
    load_checkpoint,
    load_conditional_score_prior,
    load_score_prior,
    read_header,
    save_checkpoint,
    sde_to_header,
)
from bayesnoise.cli import main
from bayesnoise.data import FASHION_MNIST_DIRECTORY, load_testset
from bayesnoise.nets import UNet
from bayesnoise.priors.conditional import (
    conditioning_probability,
    draw_condition_mask,
    guided_score,
    keep_probability,
)
from bayesnoise.target import posterior_target
from bayesnoise.training import ConditioningSettings, conditional_dsm_loss, train_from_config
from bayesnoise.training.conditional import condition_masks, conditional_from_unconditional
from bayesnoise.training.paired import corrupt

SHAPE = (8, 8, 1)


@pytest.fixture(autouse=True, scope="module")
def rbg_keys():
    """Keys of the rbg kind while these tests run: threefry compiles slowly for the many
    weight shapes a network's initialisation splits keys for."""
    previous = jax.config.jax_default_prng_impl
    jax.config.update("jax_default_prng_impl", "rbg")
    yield
    jax.config.update("jax_default_prng_impl", previous)


Z_LIMIT = stats.norm.ppf(1 - 1e-4 / 2)  # two-sided z-test at level 1e-4


@functools.cache
def tiny_conditional_unet():
    return UNet(
        channels=(4,), embedding_dim=8, groups=2, condition_channels=1,
        key=jax.random.key(3, impl="rbg"),
    )  # fmt: skip


class GaussianConditionalNetwork(eqx.Module):
    """Closed-form scaled scores of x ~ N(0, I), y = x + N(0, tau^2 I) under a VP SDE.

    p_t(x_t) = N(0, a^2 + s^2); p_t(x_t | y) = N(a m, a^2 v + s^2) with m = y / (1 + tau^2),
    v = tau^2 / (1 + tau^2); the network returns s_t times the score (masked: the unconditional).
    """

    sde: bn.VPSDE
    tau: float = 0.5
    condition_channels: int = eqx.field(static=True, default=1)

    def __call__(self, x, t, condition=None, condition_mask=1.0):
        a = self.sde.marginal_mean_coefficient(t)
        s = self.sde.marginal_std(t)
        unconditional = -s * x / (a**2 + s**2)
        if condition is None:
            return unconditional
        mean = condition / (1 + self.tau**2)
        variance = self.tau**2 / (1 + self.tau**2)
        conditional = -s * (x - a * mean) / (a**2 * variance + s**2)
        return condition_mask * conditional + (1 - condition_mask) * unconditional


def closed_form_scores(x, y, t, tau=0.5):
    """(conditional, unconditional) scores, written out again in NumPy."""
    sde = bn.VPSDE()
    a, s = float(sde.marginal_mean_coefficient(t)), float(sde.marginal_std(t))
    m, v = y / (1 + tau**2), tau**2 / (1 + tau**2)
    return -(x - a * m) / (a**2 * v + s**2), -x / (a**2 + s**2)


# --------------------------------------------------------------------------- network


def test_conditional_unet_shapes_and_null_condition():
    net = tiny_conditional_unet()
    x = jax.random.normal(jax.random.key(0), SHAPE)
    y = jax.random.uniform(jax.random.key(1), SHAPE)
    outputs = eqx.filter_jit(lambda n, x, y: (n(x, 0.5, y), n(x, 0.5), n(x, 0.5, y, 0.0)))
    conditioned, unconditioned, dropped = outputs(net, x, y)
    assert conditioned.shape == unconditioned.shape == SHAPE
    assert net.hyperparameters["condition_channels"] == 1
    # a dropped condition (mask 0) is the same input as no condition
    np.testing.assert_allclose(dropped, unconditioned, atol=1e-6)
    # the unconditional network is unchanged: no extra channels, no new header entry
    plain = UNet(channels=(4,), embedding_dim=8, groups=2, key=jax.random.key(3, impl="rbg"))
    assert "condition_channels" not in plain.hyperparameters
    assert plain.conv_in.weight.size * 3 == net.conv_in.weight.size
    with pytest.raises(ValueError, match="condition must be None for an unconditional network"):
        plain(x, 0.5, y)
    with pytest.raises(ValueError, match=r"condition must have shape \(8, 8, 1\)"):
        net(x, 0.5, jnp.zeros((8, 8, 2)))


# --------------------------------------------------------------------------- eq. 14


@pytest.mark.parametrize("distance", ["rms", "l2"])
def test_conditioning_probability_is_eq_14(distance):
    x = np.asarray(jax.random.normal(jax.random.key(0), SHAPE))
    y = np.asarray(jax.random.uniform(jax.random.key(1), SHAPE))
    norm = np.sqrt(np.sum((x - y) ** 2)) / (np.sqrt(x.size) if distance == "rms" else 1.0)
    for temperature in (1.0, 3.0):
        expected = 1 - np.exp(-norm / temperature)
        got = conditioning_probability(jnp.asarray(x), jnp.asarray(y), temperature, distance)
        assert float(got) == pytest.approx(expected, rel=1e-5)


@pytest.mark.parametrize(
    "rule, dropout", [("keep", 0.0), ("mask", 0.0), ("keep", 0.1), (None, 0.1)]
)
def test_mask_frequency_matches_eq_14(rule, dropout):
    x = 0.6 * jax.random.normal(jax.random.key(0), SHAPE)
    y = jax.random.uniform(jax.random.key(1), SHAPE)
    p_cond = float(conditioning_probability(x, y))
    assert 0.2 < p_cond < 0.8  # a case where the rule matters
    kept_probability = {"keep": p_cond, "mask": 1 - p_cond, None: 1.0}[rule] * (1 - dropout)
    count = 20_000
    keys = jax.random.split(jax.random.key(2), count)
    draw = functools.partial(draw_condition_mask, dropout=dropout, rule=rule)
    masks = np.asarray(jax.vmap(lambda k: draw(k, x, y))(keys))
    assert set(np.unique(masks)) <= {0.0, 1.0}
    standard_error = np.sqrt(kept_probability * (1 - kept_probability) / count)
    assert abs(masks.mean() - kept_probability) <= Z_LIMIT * max(standard_error, 1e-3)


def test_condition_dropout_rate_in_training_batches():
    count = 20_000
    images = jnp.zeros((count, 2, 2, 1))
    settings = ConditioningSettings(condition_dropout=0.1, probabilistic_conditioning=None)
    masks = np.asarray(condition_masks(jax.random.key(4), images, images, settings))
    standard_error = np.sqrt(0.1 * 0.9 / count)
    assert abs((1 - masks.mean()) - 0.1) <= Z_LIMIT * standard_error

    # ... and the loss hands the network these masks: a "network" that outputs its mask m
    # has the loss mean((m + z)^2) = E[m] + 1 up to Monte Carlo error
    def mask_network(x, t, condition, condition_mask):
        return jnp.full_like(x, condition_mask)

    images = jnp.zeros((count, 4, 4, 1))
    loss = conditional_dsm_loss(
        mask_network, bn.VPSDE(), images, images, jax.random.key(5), settings=settings
    )
    assert float(loss) - 1.0 == pytest.approx(0.9, abs=0.03)


# --------------------------------------------------------------------------- eq. 11


def test_guided_score_combination():
    conditional, unconditional = jnp.array([2.0, -1.0]), jnp.array([0.5, 3.0])
    for omega in (0.0, 0.5, 2.0):
        np.testing.assert_allclose(
            guided_score(conditional, unconditional, omega),
            (1 + omega) * conditional - omega * unconditional,
            rtol=1e-6,
        )
    # a condition kept with probability 0.3: eq. 11 applied to the mean of the masked score
    mixed = 0.3 * conditional + 0.7 * unconditional
    np.testing.assert_allclose(
        guided_score(conditional, unconditional, 2.0, 0.3),
        3.0 * mixed - 2.0 * unconditional,
        rtol=1e-6,
    )


@pytest.mark.parametrize("omega", [0.0, 1.0, 4.0])
@pytest.mark.parametrize("rule", [None, "keep", "mask"])
def test_prior_score_is_eq_11_on_a_gaussian_case(omega, rule):
    sde = bn.VPSDE()
    prior = bn.ConditionalScoreNetPrior(
        network=GaussianConditionalNetwork(sde), sde=sde, shape=SHAPE,
        guidance_weight=omega, probabilistic_conditioning=rule,
    )  # fmt: skip
    x = np.asarray(jax.random.normal(jax.random.key(0), SHAPE))
    y = np.asarray(jax.random.normal(jax.random.key(1), SHAPE) * np.sqrt(1.25))
    for t in (0.05, 0.5, 1.0):
        conditional, unconditional = closed_form_scores(x, y, t)
        keep = 1.0
        if rule is not None:
            p_cond = 1 - np.exp(-np.sqrt(np.mean((x - y) ** 2)))
            keep = p_cond if rule == "keep" else 1 - p_cond
        expected = unconditional + (1 + omega) * keep * (conditional - unconditional)
        bound = prior.with_observation(jnp.asarray(y))
        np.testing.assert_allclose(bound.score(jnp.asarray(x), t), expected, rtol=2e-4, atol=1e-5)
        if omega == 0.0 and rule is None:  # the exact conditional score p_t(x | y)
            np.testing.assert_allclose(bound.score(jnp.asarray(x), t), conditional, rtol=2e-4)
    # unbound (no observation): the unconditional score
    unconditional = closed_form_scores(x, y, 0.5)[1]
    np.testing.assert_allclose(prior.score(jnp.asarray(x), 0.5), unconditional, rtol=2e-4)


def test_keep_probability_rules():
    x, y = jnp.ones(SHAPE), jnp.zeros(SHAPE)
    p_cond = 1 - np.exp(-1.0)
    assert float(keep_probability(x, y, "keep")) == pytest.approx(p_cond, rel=1e-6)
    assert float(keep_probability(x, y, "mask")) == pytest.approx(1 - p_cond, rel=1e-6)
    assert float(keep_probability(x, y, None)) == 1.0
    with pytest.raises(ValueError, match="probabilistic_conditioning must be one of"):
        keep_probability(x, y, "always")


def test_prior_errors():
    sde = bn.VPSDE()
    plain = UNet(channels=(4,), embedding_dim=8, groups=2, key=jax.random.key(3, impl="rbg"))
    with pytest.raises(ValueError, match="network must be conditional"):
        bn.ConditionalScoreNetPrior(network=plain, sde=sde, shape=SHAPE)
    prior = bn.ConditionalScoreNetPrior(
        network=GaussianConditionalNetwork(sde), sde=sde, shape=SHAPE
    )
    with pytest.raises(ValueError, match=r"observation must have shape \(8, 8, 1\)"):
        prior.with_observation(jnp.zeros((8, 8, 2)))
    with pytest.raises(ValueError, match="guidance_weight must be a number >= 0"):
        bn.ConditionalScoreNetPrior(network=GaussianConditionalNetwork(sde), sde=sde,
                                    shape=SHAPE, guidance_weight=-1.0)  # fmt: skip


# --------------------------------------------------------------------------- y reaches the prior


def test_the_target_binds_the_observation_into_conditional_priors():
    sde = bn.VPSDE()
    prior = bn.ConditionalScoreNetPrior(
        network=GaussianConditionalNetwork(sde), sde=sde, shape=SHAPE,
        probabilistic_conditioning=None,
    )  # fmt: skip
    target = posterior_target(bn.joint_model(prior, measurement_std=0.1))
    assert target.observation_sites == ("x",)
    x, y = jnp.zeros(SHAPE), jnp.ones(SHAPE)
    bound = target.with_observation(y).prior_score({"x": x}, 0.5)["x"]
    np.testing.assert_allclose(bound, prior.with_observation(y).score(x, 0.5), rtol=1e-6)
    np.testing.assert_allclose(target.prior_score({"x": x}, 0.5)["x"], 0.0, atol=1e-7)
    assert float(jnp.min(bound)) > 0.1  # pulled towards y
    # models without such priors are untouched
    plain = posterior_target(bn.joint_model(bn.GaussianPrior(SHAPE, sde), measurement_std=0.1))
    assert plain.observation_sites == () and plain.with_observation(y) is plain


def test_sampling_the_gaussian_case_gives_the_conditional_mean():
    sde = bn.VPSDE()
    tau = 0.5
    prior = bn.ConditionalScoreNetPrior(
        network=GaussianConditionalNetwork(sde, tau), sde=sde, shape=SHAPE,
        probabilistic_conditioning=None,
    )  # fmt: skip
    model = bn.joint_model(prior, measurement_std=1e3)  # the likelihood adds nothing
    y = np.full(SHAPE, 1.0, np.float32)
    tree = bn.sample(model, y, sampler="ddpm_pigdm", num_chains=2, num_draws=4, num_steps=40,
                     progress=False)  # fmt: skip
    draws = tree.posterior["x"].values.reshape(-1)
    mean, variance = 1.0 / (1 + tau**2), tau**2 / (1 + tau**2)
    assert abs(draws.mean() - mean) < Z_LIMIT * np.sqrt(variance / draws.size) + 0.02
    assert draws.var() == pytest.approx(variance, rel=0.25)


def test_bn_sample_runs_with_an_untrained_conditional_network():
    prior = bn.ConditionalScoreNetPrior(
        network=tiny_conditional_unet(), sde=bn.VPSDE(), shape=SHAPE, guidance_weight=1.0
    )
    model = bn.joint_model(prior, measurement_std=0.1)
    y = np.asarray(jax.random.uniform(jax.random.key(0), (2, *SHAPE)))
    tree = bn.sample(model, y, sampler="dps", num_chains=1, num_draws=2, num_steps=2,
                     progress=False)  # fmt: skip
    assert tree.posterior["x"].shape == (1, 2, 2, *SHAPE)  # chain, draw, image, ...
    assert np.all(np.isfinite(tree.posterior["x"].values))


# --------------------------------------------------------------------------- checkpoints, training


def test_checkpoint_round_trip(tmp_path):
    net = tiny_conditional_unet()
    sde = bn.VPSDE()
    header = {"sde": sde_to_header(sde), "data": {"shape": list(SHAPE)}}
    save_checkpoint(tmp_path / "c.eqx", net, header)
    loaded, read = load_checkpoint(tmp_path / "c.eqx")
    assert read["architecture"]["hyperparameters"]["condition_channels"] == 1
    assert eqx.tree_equal(eqx.filter(loaded, eqx.is_array), eqx.filter(net, eqx.is_array))
    assert isinstance(load_score_prior(tmp_path / "c.eqx"), bn.ConditionalScoreNetPrior)
    prior = load_conditional_score_prior(tmp_path / "c.eqx", guidance_weight=2.0)
    assert prior.guidance_weight == 2.0 and prior.shape == SHAPE
    plain = UNet(channels=(4,), embedding_dim=8, groups=2, key=jax.random.key(3, impl="rbg"))
    save_checkpoint(tmp_path / "u.eqx", plain, header)
    assert type(load_score_prior(tmp_path / "u.eqx")) is bn.ScoreNetPrior
    with pytest.raises(ValueError, match="must hold a conditional network"):
        load_conditional_score_prior(tmp_path / "u.eqx")


def test_corruptions():
    rng = np.random.default_rng(0)
    images = np.full((200, 8, 8, 1), 0.5, np.float32)
    noisy = corrupt("gaussian", images, 0.3, rng=rng)
    assert noisy.std() == pytest.approx(0.3, rel=0.05)
    holes = corrupt("inpaint", images, 0.25, rng=rng)
    assert np.mean(holes == 0) == pytest.approx(0.25, abs=0.02)
    with pytest.raises(ValueError, match="corruption must be one of"):
        corrupt("blur", images, rng=rng)


def test_bayesnoise_train_on_a_paired_npz(tmp_path):
    rng = np.random.default_rng(0)
    signal = rng.uniform(size=(20, 8, 8, 1)).astype(np.float32)
    observation = signal + 0.3 * rng.standard_normal(signal.shape).astype(np.float32)
    np.savez(tmp_path / "pairs.npz", signal=signal, observation=observation)
    out = tmp_path / "conditional.eqx"
    arguments = ["train", str(tmp_path / "pairs.npz"), "--out", str(out), "--preset", "tiny",
                 "--batch-size", "4", "--warmup-steps", "1", "--steps", "2", "--quiet",
                 "--condition-dropout", "0.2"]  # fmt: skip
    assert main(arguments) == 0
    header = read_header(out)
    assert header["architecture"]["hyperparameters"]["condition_channels"] == 1
    assert header["training"]["conditioning"]["condition_dropout"] == 0.2
    assert header["training"]["conditioning"]["probabilistic_conditioning"] == "keep"
    assert header["data"]["pairs"]["source"] == "array file"
    assert header["data"]["num_train"] == 18
    prior = load_score_prior(out)
    assert isinstance(prior, bn.ConditionalScoreNetPrior)
    assert np.all(np.isfinite(prior.with_observation(jnp.asarray(observation[0])).score(
        jnp.asarray(signal[0]), 0.5)))  # fmt: skip


# --------------------------------------------------------------------------- warm start


def tiny_unconditional_unet(**overrides):
    options = {"channels": (8,), "num_res_blocks": 1, "embedding_dim": 16, "groups": 4}
    return UNet(**{**options, **overrides}, key=jax.random.key(5, impl="rbg"))


def test_conditional_from_unconditional_starts_as_the_unconditional_network():
    unconditional = tiny_unconditional_unet()
    # a trained network's output layer is not the fresh one's zeros
    weight = unconditional.conv_out.weight
    unconditional = eqx.tree_at(
        lambda net: net.conv_out.weight,
        unconditional,
        0.1 * jax.random.normal(jax.random.key(1), weight.shape),
    )
    conditional = conditional_from_unconditional(unconditional)
    assert conditional.condition_channels == 1
    x, y = jax.random.normal(jax.random.key(0), SHAPE), jnp.ones(SHAPE)
    expected = unconditional(x, 0.3)
    np.testing.assert_allclose(conditional(x, 0.3, y), expected, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(conditional(x, 0.3), expected, rtol=1e-6, atol=1e-6)
    # the new inputs get gradients: training can learn to read y
    grads = eqx.filter_grad(lambda net: jnp.sum(net(x, 0.3, y) ** 2))(conditional)
    assert float(jnp.abs(grads.conv_in.weight[:, :, 1]).max()) > 0
    with pytest.raises(ValueError, match="unconditional must be a UNet with condition_channels=0"):
        conditional_from_unconditional(conditional)
    with pytest.raises(ValueError, match="condition_channels must be an int >= 1"):
        conditional_from_unconditional(unconditional, 0)


def test_bayesnoise_train_init_from_an_unconditional_checkpoint(tmp_path):
    sde = bn.VPSDE()
    start = tmp_path / "unconditional.eqx"
    header = {"sde": sde_to_header(sde), "data": {"shape": list(SHAPE)}}
    save_checkpoint(start, tiny_unconditional_unet(), header)  # the "tiny" preset's network
    rng = np.random.default_rng(0)
    signal = rng.uniform(size=(20, 8, 8, 1)).astype(np.float32)
    np.savez(tmp_path / "pairs.npz", signal=signal, observation=0.5 * signal)
    out = tmp_path / "conditional.eqx"
    arguments = [
        "train",
        str(tmp_path / "pairs.npz"),
        "--out",
        str(out),
        "--preset",
        "tiny",
        "--batch-size",
        "4",
        "--warmup-steps",
        "1",
        "--steps",
        "1",
        "--quiet",
        "--init-from",
        str(start),
    ]
    assert main(arguments) == 0
    record = read_header(out)["training"]["init_from"]
    assert record["file"] == str(start) and record["sha256"] == read_header(start)["sha256"]
    other = tmp_path / "other.eqx"
    save_checkpoint(other, tiny_unconditional_unet(embedding_dim=8), header)
    with pytest.raises(ValueError, match="init_from must be an unconditional checkpoint"):
        train_from_config(
            str(tmp_path / "pairs.npz"),
            None,
            tmp_path / "c2.eqx",
            steps=1,
            preset="tiny",
            init_from=other,
            progress=False,
        )
    with pytest.raises(ValueError, match="init_from must be trained under the same SDE"):
        train_from_config(
            str(tmp_path / "pairs.npz"),
            None,
            tmp_path / "c3.eqx",
            steps=1,
            preset="tiny",
            init_from=start,
            sde=bn.VPSDE(beta_max=7.0),
            progress=False,
        )
    np.save(tmp_path / "clean.npy", signal)
    with pytest.raises(ValueError, match="init_from starts a U-Net from a U-Net checkpoint"):
        train_from_config(
            str(tmp_path / "clean.npy"),
            "ncsnv2",
            tmp_path / "c4.eqx",
            steps=1,
            init_from=start,
            progress=False,
        )


def test_unconditional_training_trains_on_from_a_checkpoint(tmp_path):
    # init_from on clean images continues the checkpoint's network: with a learning rate of
    # 1e-9 (Adam moves a weight by about that per step) the EMA weights are the checkpoint's.
    sde = bn.VPSDE()
    start = tmp_path / "start.eqx"
    header = {"sde": sde_to_header(sde), "data": {"shape": list(SHAPE)}}
    trained = tiny_unconditional_unet()
    save_checkpoint(start, trained, header)
    signal = np.random.default_rng(0).uniform(size=(20, 8, 8, 1)).astype(np.float32)
    np.save(tmp_path / "clean.npy", signal)
    out = tmp_path / "continued.eqx"
    network, written = train_from_config(
        str(tmp_path / "clean.npy"), None, out, steps=2, preset="tiny", batch_size=4,
        learning_rate=1e-9, init_from=start, progress=False,
    )  # fmt: skip
    for leaf, expected in zip(
        jax.tree.leaves(eqx.filter(network, eqx.is_array)),
        jax.tree.leaves(eqx.filter(trained, eqx.is_array)),
        strict=True,
    ):
        np.testing.assert_allclose(leaf, expected, rtol=0, atol=1e-7)
    record = written["training"]["init_from"]
    assert record["sha256"] == read_header(start)["sha256"]
    assert record["rule"].endswith("fresh optimiser state")
    assert written["training"]["steps"] == 2


# --------------------------------------------------------------------------- the §3.1 study


def _analysis(name):
    path = Path(__file__).resolve().parents[1] / "analyses" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("level", [0.3, 0.6])
def test_noisy_input_study_matched_time_is_eq_7(level):
    study = _analysis("noisy_input_study")
    sde = bn.VPSDE()
    matched = study.matched_time(sde, level)
    # 1 - abar_t = s_t^2 (VP: a_t^2 + s_t^2 = 1) equals the level
    assert float(sde.marginal_std(matched)) ** 2 == pytest.approx(level, abs=1e-6)
    assert float(sde.marginal_mean_coefficient(matched)) ** 2 == pytest.approx(1 - level, abs=1e-6)
    with pytest.raises(ValueError, match="sde must be a VPSDE"):
        study.matched_time(bn.VESDE(), level)
    with pytest.raises(ValueError, match="level must be in"):
        study.matched_time(sde, 1.5)


SHIPPED_CONDITIONAL = {  # model file -> (network, its corruption and level)
    "conditional_digits": ("conditional_digits_unet.eqx", "digits", 0.5),
    "conditional_gaussian": ("conditional_gaussian_unet.eqx", "gaussian", 0.3),
    "conditional_inpaint": ("conditional_inpaint_unet.eqx", "inpaint", 0.5),
}


@pytest.mark.parametrize("name", sorted(SHIPPED_CONDITIONAL))
def test_shipped_conditional_model_files_sample(name):
    from bayesnoise import assets
    from bayesnoise.model_file import load_model_file

    network, corruption, level = SHIPPED_CONDITIONAL[name]
    header = read_header(assets.path(network))
    assert header["architecture"]["hyperparameters"]["condition_channels"] == 1
    assert header["data"]["pairs"]["corruption"] == corruption
    assert header["data"]["pairs"]["level"] == level
    assert (
        header["training"]["init_from"]["sha256"]
        == read_header(assets.path("fashion_unet.eqx"))["sha256"]
    )
    module = load_model_file(Path(__file__).resolve().parents[1] / f"models/{name}.py")
    assert network == module.CHECKPOINT
    y, truth = module.simulate(3)
    assert y.shape == truth["x"].shape == (28, 28, 1)
    settings = {**module.defaults, "num_steps": 3, "num_chains": 1, "num_draws": 2}
    tree = bn.sample(module.model, y, progress=False, **settings)
    assert tree.posterior["x"].shape == (1, 2, *truth["x"].shape)
    assert np.all(np.isfinite(tree.posterior["x"].values))


def test_the_model_files_corrupt_as_their_networks_were_trained():
    """observe() of the Gaussian and inpainting files is the training corruption: y - x has
    std 0.3; the fixed mask zeroes about half of the pixels and keeps the rest exactly."""
    from bayesnoise.model_file import load_model_file

    models = Path(__file__).resolve().parents[1] / "models"
    x = np.full((28, 28, 1), 0.5, np.float32)
    gaussian = load_model_file(models / "conditional_gaussian.py")
    y, noise = gaussian.observe(x, 11)
    np.testing.assert_allclose(y - x, noise, atol=1e-6)
    assert abs(noise.std() - 0.3) < 0.03  # 784 draws: the std's standard error is ~0.008
    assert not np.allclose(gaussian.observe(x, 12)[0], y)  # the seed picks the noise
    inpaint = load_model_file(models / "conditional_inpaint.py")
    y, mask = inpaint.observe(x, 0)
    assert set(np.unique(mask)) == {0.0, 1.0}
    assert 0.4 < 1.0 - mask.mean() < 0.6
    np.testing.assert_array_equal(y, mask * x)


@pytest.mark.parametrize("task", ["digits", "gaussian", "inpaint"])
def test_conditional_vs_joint_pairs_and_joint_models(task):
    """The comparison's pairs are the model files' corruptions of the right images, and each
    task's joint model samples."""
    comparison = _analysis("conditional_vs_joint")
    y, x = comparison.test_pairs(task, 2)
    np.testing.assert_array_equal(x, load_testset()["fashion"][:2])
    if task != "digits":
        expected = comparison.load_model_file(comparison.CONDITIONAL_FILES[task]).simulate(1)[0]
        np.testing.assert_array_equal(y[1], expected)
    with pytest.raises(ValueError, match="images must be in 1..100"):
        comparison.test_pairs(task, 101)
    model, defaults = comparison.joint_model(task)
    settings = {**defaults, "num_steps": 2, "num_chains": 1, "num_draws": 1}
    tree = bn.sample(model, y[0], progress=False, **settings)
    assert np.all(np.isfinite(tree.posterior["x"].values))


@pytest.mark.skipif(
    not (FASHION_MNIST_DIRECTORY / "t10k-images-idx3-ubyte.gz").is_file(),
    reason="the validation split needs the Fashion-MNIST test images (DATA.md)",
)
def test_conditional_vs_joint_validation_split_is_not_the_test_split():
    comparison = _analysis("conditional_vs_joint")
    y, x = comparison.test_pairs("gaussian", 2, split="validation")
    assert x.shape == y.shape == (2, 28, 28, 1)
    assert not np.array_equal(x, comparison.test_pairs("gaussian", 2)[1])
    with pytest.raises(ValueError, match="images must be in 1..32"):
        comparison.test_pairs("gaussian", 33, split="validation")


def test_cli_samples_the_conditional_model_file_with_its_composed_sampler(tmp_path, capsys):
    model_file = Path(__file__).resolve().parents[1] / "models/conditional_digits.py"
    arguments = ["sample", str(model_file), "--out", str(tmp_path / "run"), "--steps", "2",
                 "--chains", "1", "--draws", "2", "--json", "--quiet"]  # fmt: skip
    assert main(arguments) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["settings"]["sampler"] == "ddpm"  # recorded by name
    assert "x" in summary["metrics"]
