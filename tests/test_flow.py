"""FLOW baseline: change of variables, eq. 8's MAP against a closed form, checkpoints, errors."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayesnoise import assets
from bayesnoise.baselines import LinearProblem
from bayesnoise.baselines.flow import (
    NOISE_FLOW,
    SIGNAL_FLOW,
    ImageFlow,
    build_flow,
    flow_map,
    load_flow,
    log_density,
    save_flow,
)
from bayesnoise.data import load_fashion_mnist, mnist_5k_split
from bayesnoise.operators import DenseMatrix, Identity, Mask, Scale

SHAPE = (4, 4, 1)


@eqx.filter_jit  # one compilation instead of one per eager operation
def random_flow(shape, num_steps, hidden_channels, key) -> ImageFlow:
    """A flow with every weight perturbed: not the identity-initialised flow."""
    flow = build_flow(shape, num_steps, hidden_channels, key=key)
    leaves, treedef = jax.tree.flatten(eqx.filter(flow, eqx.is_array))
    keys = jax.random.split(key, len(leaves))
    leaves = [
        leaf + 0.1 * jax.random.normal(k, leaf.shape) for leaf, k in zip(leaves, keys, strict=True)
    ]
    return eqx.combine(jax.tree.unflatten(treedef, leaves), flow)


def gaussian_flow(mean: float, std: float) -> ImageFlow:
    """A flow whose density is exactly N(mean, std² I) on images of SHAPE."""
    return _gaussian_flow(jnp.float32(mean), jnp.float32(std))


@eqx.filter_jit
def _gaussian_flow(mean, std):
    flow = build_flow(SHAPE, num_steps=2, hidden_channels=4, key=jax.random.key(0))
    steps = flow.distribution.bijection.bijections
    channels = steps[0].log_scale.shape
    first = eqx.tree_at(
        lambda s: (s.log_scale, s.bias, s.mixing),
        steps[0],
        (jnp.full(channels, jnp.log(std)), jnp.full(channels, mean - 0.5), jnp.eye(4)),
    )
    second = eqx.tree_at(lambda s: s.mixing, steps[1], jnp.eye(4))
    return eqx.tree_at(lambda f: f.distribution.bijection.bijections, flow, (first, second))


def test_log_density_is_the_change_of_variables(key):
    flow = random_flow(SHAPE, 2, 4, key)
    image = jax.random.uniform(jax.random.key(1), SHAPE)

    @eqx.filter_jit  # one compilation for every quantity compared
    def densities(flow, image):
        def latent(flat):
            return flow.to_latent(flat.reshape(SHAPE)).ravel()

        jacobian = jax.jacfwd(latent)(image.ravel())
        by_hand = jax.scipy.stats.norm.logpdf(latent(image.ravel())).sum()
        by_hand = by_hand + jnp.linalg.slogdet(jacobian)[1]
        regenerated, through_latent = flow.from_latent(flow.to_latent(image))
        return by_hand, flow.log_density(image), through_latent, regenerated

    expected, log_p, log_p_through_latent, regenerated = densities(flow, image)
    np.testing.assert_allclose(log_p, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(log_p_through_latent, expected, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(regenerated, image, atol=1e-5)


def test_gaussian_flow_is_the_gaussian_it_claims():
    flow = gaussian_flow(0.6, 0.2)
    image = jax.random.uniform(jax.random.key(2), SHAPE)
    expected = jax.scipy.stats.norm.logpdf(image, 0.6, 0.2).sum()
    np.testing.assert_allclose(log_density(flow, image[None])[0], expected, rtol=1e-6)


def test_map_is_the_closed_form_ridge_solution_for_gaussian_flows():
    # y = a x + b n, x ~ N(mx, sx²), n ~ N(mn, sn²): eq. 8's objective is quadratic in x.
    (a, b), (mx, sx), (mn, sn), weight = (0.5, 0.5), (0.6, 0.2), (0.3, 0.1), 0.5
    rng = np.random.default_rng(0)
    observation = rng.uniform(0.2, 0.6, (3, *SHAPE)).astype(np.float32)
    precision = a**2 / (b * sn) ** 2 + weight / sx**2
    expected = (a * (observation - b * mn) / (b * sn) ** 2 + weight * mx / sx**2) / precision
    problem = LinearProblem(Scale(SHAPE, a), Scale(SHAPE, b), noise_mean=mn, noise_std=sn)
    estimate = flow_map(
        observation,
        problem,
        signal_flow=gaussian_flow(mx, sx),
        noise_flow=gaussian_flow(mn, sn),
        weight=weight,
        num_steps=300,
        learning_rate=0.05,
    )
    assert estimate.shape == observation.shape and estimate.dtype == np.float32
    np.testing.assert_allclose(estimate, np.clip(expected, 0, 1), atol=2e-3)


def test_map_with_gaussian_noise_is_the_closed_form_on_measurements():
    # y = A x + n on 6 measurements of a 16-pixel image, x ~ N(mx, sx²), n ~ N(0, diag s²):
    # x̂ = (AᵀS⁻²A + λ/sx² I)⁻¹ (AᵀS⁻² y + λ mx / sx²).
    (mx, sx), weight = (0.5, 0.2), 0.5
    matrix = np.random.default_rng(1).normal(0.0, 0.4, (6, 16)).astype(np.float32)
    noise_std = np.linspace(0.1, 0.3, 6).astype(np.float32)
    problem = LinearProblem(DenseMatrix(matrix, SHAPE), noise_std=noise_std)
    truth = np.random.default_rng(2).uniform(0.3, 0.7, (2, 16)).astype(np.float32)
    observation = truth @ matrix.T
    weighted = matrix.T / noise_std**2
    expected = np.linalg.solve(
        weighted @ matrix + weight / sx**2 * np.eye(16),
        (observation @ weighted.T + weight * mx / sx**2).T,
    ).T
    estimate = flow_map(
        observation,
        problem,
        signal_flow=gaussian_flow(mx, sx),
        noise_flow="gaussian",
        weight=weight,
        num_steps=400,
        learning_rate=0.05,
    )
    np.testing.assert_allclose(estimate.reshape(2, 16), np.clip(expected, 0, 1), atol=3e-3)


def test_map_shapes_dtype_and_range(key):
    signal_flow = random_flow(SHAPE, 2, 4, key)
    problem = LinearProblem(Scale(SHAPE, 0.7), Scale(SHAPE, 0.3), noise_mean=0.1, noise_std=0.3)
    observation = np.random.default_rng(2).uniform(-1, 2, (2, *SHAPE)).astype(np.float32)
    estimate = flow_map(
        observation, problem, signal_flow=signal_flow, noise_flow=gaussian_flow(0.1, 0.3),
        num_steps=5,
    )  # fmt: skip
    assert estimate.shape == (2, *SHAPE) and estimate.dtype == np.float32
    assert np.all((estimate >= 0) & (estimate <= 1))


@pytest.fixture
def flows():
    return {"signal_flow": gaussian_flow(0.5, 0.3), "noise_flow": gaussian_flow(0.2, 0.3)}


@pytest.mark.parametrize(
    "hyper, match",
    [
        ({"weight": 0.0}, "weight must be a positive finite number"),
        ({"learning_rate": float("nan")}, "learning_rate must be a positive finite number"),
        ({"num_steps": 0}, "num_steps must be an int >= 1"),
        ({"seed": -1}, "seed must be a non-negative int"),
    ],
)
def test_flow_map_refuses_bad_hyperparameters(flows, hyper, match):
    problem = LinearProblem(Identity(SHAPE))
    with pytest.raises(ValueError, match=match):
        flow_map(np.zeros((1, *SHAPE), np.float32), problem, **flows, **hyper)


def test_flow_map_refuses_bad_observations_and_problems(flows):
    problem = LinearProblem(Identity(SHAPE))
    with pytest.raises(ValueError, match=r"observation must have shape \('num_images', 4, 4, 1\)"):
        flow_map(np.zeros(SHAPE, np.float32), problem, **flows)
    mask = LinearProblem(Identity(SHAPE), Mask(np.ones(SHAPE, np.float32)))
    with pytest.raises(ValueError, match="noise_operator must be Identity or a nonzero Scale"):
        flow_map(np.zeros((1, *SHAPE), np.float32), mask, **flows)
    wide = eqx.filter_eval_shape(build_flow, (4, 6, 1), 1, 4, key=jax.random.key(0))
    with pytest.raises(ValueError, match=r"noise_flow must model images of shape \(4, 4, 1\)"):
        flow_map(np.zeros((1, *SHAPE), np.float32), problem, **(flows | {"noise_flow": wide}))
    with pytest.raises(TypeError, match="signal_flow must be an ImageFlow"):
        flow_map(np.zeros((1, *SHAPE), np.float32), problem, **(flows | {"signal_flow": 1.0}))
    with pytest.raises(ValueError, match="noise_flow must be an ImageFlow, 'gaussian' or None"):
        flow_map(np.zeros((1, *SHAPE), np.float32), problem, **(flows | {"noise_flow": "laplace"}))
    with pytest.raises(ValueError, match="image_shape must be .* even height and width"):
        build_flow((5, 4, 1), key=jax.random.key(0))


def test_checkpoint_round_trip_and_checksum(tmp_path, key):
    flow = random_flow(SHAPE, 2, 4, key)
    path = tmp_path / "flow.eqx"
    save_flow(path, flow, {"data": {"dataset": "test"}})
    loaded, header = load_flow(path)
    assert header["kind"] == "normalizing_flow" and header["data"] == {"dataset": "test"}
    image = jnp.full(SHAPE, 0.3)
    np.testing.assert_allclose(loaded.log_density(image), flow.log_density(image), rtol=1e-6)
    path.write_bytes(path.read_bytes().replace(b'"dataset": "test"', b'"dataset": "tess"'))
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_flow(path)


@pytest.mark.parametrize("name", [SIGNAL_FLOW, NOISE_FLOW])
def test_shipped_flows_prefer_their_own_data(name):
    # Not "each flow prefers its own data over the other's": a flow trained on Fashion-MNIST
    # gives MNIST digits a higher likelihood (Nalisnick et al. 2019, measured here too); the
    # digits flow is the one that tells the two apart, which is what eq. 8 uses.
    flow, header = load_flow(assets.path(name))
    assert flow.image_shape == (28, 28, 1) and header["training"]["steps"] > 0
    fashion = load_fashion_mnist("test")[0][5000:5008]
    digits = mnist_5k_split()[1][0][:8]
    noise = np.random.default_rng(0).uniform(size=fashion.shape).astype(np.float32)
    own, other = (fashion, noise) if name == SIGNAL_FLOW else (digits, fashion)
    assert np.mean(log_density(flow, own)) > np.mean(log_density(flow, other))
