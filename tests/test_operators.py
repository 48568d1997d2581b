"""Forward operators: adjoints, shapes, transformations, references and error messages."""

import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.signal

from bayesnoise.operators import (
    AbstractLinearOperator,
    Blur,
    DenseMatrix,
    Identity,
    Mask,
    Nonlinear,
    Scale,
    Subsample,
    gaussian_kernel,
    random_gaussian_matrix,
)


def _normal(key, shape):
    """Standard normal float32 test data (NumPy, so JAX's sampler is not compiled per shape)."""
    seed = np.asarray(jax.random.key_data(key))
    return jnp.asarray(np.random.default_rng(seed).standard_normal(shape, np.float32))


def _binary_mask(key, shape):
    return (_normal(key, shape) > 0).astype(jnp.float32)


# Each entry: (id, factory(key) -> operator, expected output_shape).
LINEAR_OPERATORS = [
    ("identity-vector", lambda key: Identity((5,)), (5,)),
    ("identity-image", lambda key: Identity((28, 28, 1)), (28, 28, 1)),
    ("scale-matrix", lambda key: Scale((4, 3), 0.5), (4, 3)),
    ("scale-rgb", lambda key: Scale((8, 8, 3), -2.0), (8, 8, 3)),
    ("mask-vector", lambda key: Mask(_binary_mask(key, (6,))), (6,)),
    ("mask-image", lambda key: Mask(_binary_mask(key, (28, 28, 1))), (28, 28, 1)),
    ("mask-bool", lambda key: Mask(_normal(key, (4, 5, 2)) > 0.5), (4, 5, 2)),
    ("subsample-image", lambda key: Subsample((28, 28, 1), (2, 2)), (14, 14, 1)),
    ("subsample-uneven", lambda key: Subsample((7, 5, 2), (3,)), (3, 5, 2)),
    ("subsample-vector", lambda key: Subsample((9,), (4,)), (3,)),
    ("dense-image", lambda key: random_gaussian_matrix((28, 28, 1), 392, key=key), (392,)),
    ("dense-tall", lambda key: random_gaussian_matrix((5, 3), 20, key=key), (20,)),
    ("blur-gaussian", lambda key: Blur((28, 28, 1), gaussian_kernel(5, 1.0)), (28, 28, 1)),
    ("blur-rgb", lambda key: Blur((16, 12, 3), _normal(key, (3, 5))), (16, 12, 3)),
    ("blur-gray", lambda key: Blur((10, 9), _normal(key, (7, 3))), (10, 9)),
]
LINEAR_IDS = [case[0] for case in LINEAR_OPERATORS]


def _nonlinear(key):
    return Nonlinear(lambda x: jnp.tanh(x).sum(axis=-1), (6, 4), (6,))


ALL_OPERATORS = [(name, factory) for name, factory, _ in LINEAR_OPERATORS] + [
    ("nonlinear", _nonlinear)
]


@pytest.mark.parametrize("name, factory, output_shape", LINEAR_OPERATORS, ids=LINEAR_IDS)
def test_adjoint_identity(key, name, factory, output_shape):
    """<A x, y> = <x, A^T y>, and A^T agrees with the transpose JAX derives from A."""
    operator_key, x_key, y_key = jax.random.split(key, 3)
    operator = factory(operator_key)
    x = _normal(x_key, operator.input_shape)
    y = _normal(y_key, operator.output_shape)

    @jax.jit
    def apply_both(x, y):
        (autodiff_adjoint,) = jax.linear_transpose(operator, x)(y)
        return operator(x), operator.transpose(y), autodiff_adjoint

    forward, adjoint, autodiff_adjoint = apply_both(x, y)
    assert forward.shape == output_shape == operator.output_shape
    assert adjoint.shape == operator.input_shape
    assert forward.dtype == adjoint.dtype == jnp.float32
    lhs, rhs = np.vdot(forward, y), np.vdot(x, adjoint)
    scale = np.linalg.norm(forward) * np.linalg.norm(y)
    assert abs(lhs - rhs) <= 1e-5 * scale, (lhs, rhs)
    np.testing.assert_allclose(adjoint, autodiff_adjoint, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name, factory", ALL_OPERATORS, ids=[case[0] for case in ALL_OPERATORS])
def test_jit_and_vmap(key, name, factory):
    operator_key, x_key = jax.random.split(key)
    operator = factory(operator_key)
    xs = _normal(x_key, (3, *operator.input_shape))
    jitted = eqx.filter_jit(operator)
    looped = np.stack([jitted(x) for x in xs])
    np.testing.assert_allclose(looped[0], operator(xs[0]), rtol=1e-5, atol=1e-5)
    batched = eqx.filter_jit(lambda operator, xs: jax.vmap(operator)(xs))(operator, xs)
    np.testing.assert_allclose(batched, looped, rtol=1e-5, atol=1e-5)
    if isinstance(operator, AbstractLinearOperator):
        adjoints = eqx.filter_jit(lambda operator, ys: jax.vmap(operator.transpose)(ys))
        assert adjoints(operator, batched).shape == xs.shape


def test_operator_as_jit_argument(key):
    """Static shape fields keep the shape checks working when the operator is traced."""
    operator = random_gaussian_matrix((4, 4, 1), 8, key=key)
    x = jnp.ones((4, 4, 1))
    np.testing.assert_allclose(jax.jit(lambda op, x: op(x))(operator, x), operator(x), rtol=1e-6)
    with pytest.raises(ValueError, match=re.escape("x must have shape input_shape=(4, 4, 1)")):
        jax.jit(lambda op, x: op(x))(operator, jnp.ones((16,)))


def test_dense_matches_numpy(key):
    operator = random_gaussian_matrix((6, 5, 2), 17, key=key)
    x = np.asarray(_normal(jax.random.fold_in(key, 1), (6, 5, 2)))
    y = np.asarray(_normal(jax.random.fold_in(key, 2), (17,)))
    matrix = np.asarray(operator.matrix, dtype=np.float64)
    np.testing.assert_allclose(operator(jnp.asarray(x)), matrix @ x.ravel(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(
        operator.transpose(jnp.asarray(y)), (matrix.T @ y).reshape(6, 5, 2), rtol=1e-5, atol=1e-5
    )


def test_random_gaussian_matrix_statistics(key):
    operator = random_gaussian_matrix((28, 28, 1), 200, key=key)
    matrix = np.asarray(operator.matrix)
    assert matrix.shape == (200, 784)
    assert matrix.dtype == np.float32
    # 156,800 entries: the standard error of the mean is ~2e-4, of the variance ~1.6e-5.
    assert abs(matrix.mean()) < 5 * (1 / np.sqrt(200)) / np.sqrt(matrix.size)
    assert abs(matrix.var() - 1 / 200) < 5 * np.sqrt(2) * (1 / 200) / np.sqrt(matrix.size)
    same = random_gaussian_matrix((28, 28, 1), 200, key=key)
    np.testing.assert_array_equal(same.matrix, operator.matrix)


def test_mask_built_from_traced_array(key):
    """Under vmap/jit the 0/1 check cannot see the values and is skipped; the operator works."""
    masks = _binary_mask(key, (4, 6, 1))
    xs = _normal(jax.random.fold_in(key, 1), (4, 6, 1))
    masked = jax.jit(jax.vmap(lambda mask, x: Mask(mask)(x)))(masks, xs)
    np.testing.assert_array_equal(masked, masks * xs)


def test_scale_is_the_paper_mixing(key):
    x_key, n_key = jax.random.split(key)
    x, n = _normal(x_key, (28, 28, 1)), _normal(n_key, (28, 28, 1))
    half = Scale((28, 28, 1), 0.5)
    np.testing.assert_allclose(half(x) + half(n), 0.5 * x + 0.5 * n, rtol=1e-6)


def test_mask_and_subsample_values():
    x = jnp.arange(24.0).reshape(4, 6, 1)
    mask = (jnp.arange(24) % 3 == 0).reshape(4, 6, 1)
    np.testing.assert_array_equal(Mask(mask)(x), jnp.where(mask, x, 0.0))
    subsample = Subsample((4, 6, 1), (2, 3))
    np.testing.assert_array_equal(subsample(x), x[::2, ::3])
    scattered = subsample.transpose(subsample(x))
    np.testing.assert_array_equal(scattered[::2, ::3], x[::2, ::3])
    assert jnp.count_nonzero(scattered) == jnp.count_nonzero(x[::2, ::3])


def test_blur_delta_kernel_is_identity(key):
    delta = jnp.zeros((5, 3)).at[2, 1].set(1.0)
    x = _normal(key, (9, 7, 2))
    operator = Blur((9, 7, 2), delta)
    np.testing.assert_array_equal(operator(x), x)
    np.testing.assert_array_equal(operator.transpose(x), x)


def test_blur_matches_scipy_convolve2d(key):
    kernel_key, x_key = jax.random.split(key)
    kernel = _normal(kernel_key, (5, 3))  # asymmetric, so a missing flip shows
    x = _normal(x_key, (11, 8, 3))
    blurred = Blur((11, 8, 3), kernel)(x)
    x64, kernel64 = np.asarray(x, np.float64), np.asarray(kernel, np.float64)
    for channel in range(3):
        expected = scipy.signal.convolve2d(x64[..., channel], kernel64, mode="same")
        np.testing.assert_allclose(blurred[..., channel], expected, rtol=1e-5, atol=1e-5)


def test_gaussian_kernel():
    kernel = gaussian_kernel(7, 1.5)
    assert kernel.shape == (7, 7)
    assert kernel.dtype == jnp.float32
    np.testing.assert_allclose(kernel.sum(), 1.0, rtol=1e-6)
    np.testing.assert_allclose(kernel, kernel.T)
    np.testing.assert_allclose(kernel, kernel[::-1, ::-1])
    assert jnp.argmax(kernel) == 3 * 7 + 3


def test_nonlinear_gradient(key):
    operator = _nonlinear(key)
    x = _normal(key, (6, 4))
    gradient = jax.grad(lambda x: operator(x).sum())(x)
    np.testing.assert_allclose(gradient, 1 - jnp.tanh(x) ** 2, rtol=1e-6)
    assert not hasattr(operator, "transpose")


def _matrix_with_700_columns():
    return DenseMatrix(jnp.zeros((392, 700)), (28, 28, 1))


ERRORS = [
    (
        lambda: Identity((28, 0)),
        "shape must be a non-empty tuple of positive ints. Got shape=(28, 0).",
    ),
    (lambda: Scale(28, 0.5), "shape must be a non-empty tuple of positive ints. Got shape=28."),
    (lambda: Mask(jnp.full((3, 3), 0.5)), "mask must contain only 0 and 1. Got values [0.5]."),
    (lambda: Mask(jnp.ones(())), "mask.shape must be a non-empty tuple of positive ints."),
    (
        lambda: Subsample((28, 28, 1), (2, 0)),
        "factors must be a non-empty tuple of positive ints. Got factors=(2, 0).",
    ),
    (
        lambda: Subsample((28,), (2, 2)),
        "factors must have at most len(shape)=1 entries. Got factors=(2, 2).",
    ),
    (
        _matrix_with_700_columns,
        "matrix must have 2 dimensions and prod(input_shape)=784 columns. "
        "Got matrix.shape=(392, 700).",
    ),
    (
        lambda: DenseMatrix(jnp.zeros(784), (28, 28, 1)),
        "matrix must have 2 dimensions and prod(input_shape)=784 columns. Got matrix.shape=(784,).",
    ),
    (
        lambda: random_gaussian_matrix((28, 28, 1), 0, key=jax.random.key(0)),
        "num_measurements must be a positive int. Got 0.",
    ),
    (
        lambda: Blur((28, 28, 1), jnp.ones((4, 5))),
        "kernel must be 2-D with odd height and width. Got kernel.shape=(4, 5).",
    ),
    (
        lambda: Blur((28, 28, 1), jnp.ones((3, 3, 1))),
        "kernel must be 2-D with odd height and width. Got kernel.shape=(3, 3, 1).",
    ),
    (
        lambda: Blur((28,), jnp.ones((3, 3))),
        "shape must be (height, width, *channels). Got shape=(28,).",
    ),
    (lambda: gaussian_kernel(4, 1.0), "size must be a positive odd int. Got size=4."),
    (lambda: gaussian_kernel(5, 0.0), "std must be positive. Got std=0.0."),
    (
        lambda: Identity((28, 28, 1))(jnp.zeros((28, 28))),
        "x must have shape input_shape=(28, 28, 1). Got x.shape=(28, 28).",
    ),
    (
        lambda: eqx.filter_jit(Mask(jnp.ones((4, 4))))(jnp.zeros((16,))),
        "x must have shape input_shape=(4, 4). Got x.shape=(16,).",
    ),
    (
        lambda: Subsample((8, 8), (2, 2)).transpose(jnp.zeros((8, 8))),
        "y must have shape output_shape=(4, 4). Got y.shape=(8, 8).",
    ),
    (
        lambda: Nonlinear(jnp.sin, (3,), (4,))(jnp.zeros(3)),
        "Nonlinear(x) must have shape output_shape=(4,). Got Nonlinear(x).shape=(3,).",
    ),
]


@pytest.mark.parametrize("make, message", ERRORS, ids=range(len(ERRORS)))
def test_error_messages(make, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        make()


def test_nonlinear_requires_callable():
    with pytest.raises(TypeError, match=re.escape("fn must be callable. Got fn of type int.")):
        Nonlinear(3, (3,), (3,))
