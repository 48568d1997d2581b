"""Forward operators: adjoints, shapes, transformations, references and error messages."""

import re

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.ndimage
import scipy.signal

import bayesnoise as bn
from bayesnoise.operators import (
    AbstractLinearOperator,
    Blur,
    DenseMatrix,
    FFTBlur,
    FourierSampling,
    Identity,
    Mask,
    Nonlinear,
    Scale,
    Subsample,
    SuperResolution,
    cartesian_mask,
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
    ("fftblur-rgb-even", lambda key: FFTBlur((16, 12, 3), _normal(key, (4, 6))), (16, 12, 3)),
    ("fftblur-gray", lambda key: FFTBlur((10, 9), _normal(key, (10, 9))), (10, 9)),
    (
        "fourier-cartesian",
        lambda key: FourierSampling((16, 12, 1), cartesian_mask((16, 12), 3, 0.25)),
        (16, 12, 1, 2),
    ),
    (
        "fourier-rgb-mask",
        lambda key: FourierSampling((8, 7, 3), _normal(key, (8, 7, 3)) > 0),
        (8, 7, 3, 2),
    ),
    ("superres-rgb", lambda key: SuperResolution((6, 9, 3), 3), (2, 3, 3)),
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


def _dense(linear_map, input_shape, batched=True):
    """The matrix of ``linear_map`` (float64), column k its value on the k-th basis vector;
    ``batched``: apply it to all basis vectors at once with ``jax.vmap``."""
    size = int(np.prod(input_shape))
    basis = np.eye(size, dtype=np.float32).reshape(size, *input_shape)
    if batched:
        values = eqx.filter_jit(lambda f, xs: jax.vmap(f)(xs))(linear_map, jnp.asarray(basis))
    else:
        values = [linear_map(e) for e in basis]
    return np.asarray(values, np.float64).reshape(size, -1).T


def _circular_convolution(kernel):
    """y[i, j] = sum_ab kernel[a, b] x[i - a + c_h, j - b + c_w] (periodic), in NumPy."""
    centre_height, centre_width = kernel.shape[0] // 2, kernel.shape[1] // 2

    def convolve(x):
        return sum(
            kernel[a, b] * np.roll(x, (a - centre_height, b - centre_width), axis=(0, 1))
            for a in range(kernel.shape[0])
            for b in range(kernel.shape[1])
        )

    return convolve


def _fourier_reference(mask):
    def transform(x):
        coefficients = np.where(mask, np.fft.fft2(x, axes=(0, 1), norm="ortho"), 0)
        return np.stack([coefficients.real, coefficients.imag], axis=-1)

    return transform


def _average_pool(factor):
    def pool(x):
        height, width, channels = x.shape
        return x.reshape(height // factor, factor, width // factor, factor, channels).mean((1, 3))

    return pool


KERNEL_3X4 = np.arange(1.0, 13.0).reshape(3, 4) * np.array([1, -2, 0.5, 3])  # odd x even
MASK_6X6 = (np.arange(36).reshape(6, 6, 1) * 7) % 5 < 2

# Each entry: (id, operator, a NumPy reference of its forward map).
DENSE_CASES = [
    ("fftblur", FFTBlur((6, 6, 1), KERNEL_3X4), _circular_convolution(KERNEL_3X4)),
    ("fourier", FourierSampling((6, 6, 1), MASK_6X6), _fourier_reference(MASK_6X6)),
    ("superres", SuperResolution((8, 8, 1), 2), _average_pool(2)),
]


@pytest.mark.parametrize("name, operator, reference", DENSE_CASES, ids=[c[0] for c in DENSE_CASES])
def test_against_dense_matrix(name, operator, reference):
    """A's matrix (from basis vectors) matches a NumPy reference; A^T's matrix is its transpose."""
    forward = _dense(operator, operator.input_shape)
    adjoint = _dense(operator.transpose, operator.output_shape)
    expected = _dense(reference, operator.input_shape, batched=False)
    np.testing.assert_allclose(forward, expected, atol=1e-5)
    np.testing.assert_allclose(adjoint, forward.T, atol=1e-5)


def test_fft_blur_matches_scipy_wrap_and_blur_inside(key):
    """Odd kernels: scipy.ndimage.convolve(mode="grid-wrap"); away from the border, Blur."""
    kernel = np.asarray(_normal(key, (5, 3)), np.float64)
    x = _normal(jax.random.fold_in(key, 1), (12, 9, 2))
    blurred = np.asarray(FFTBlur((12, 9, 2), kernel)(x))
    for channel in range(2):
        expected = scipy.ndimage.convolve(
            np.asarray(x[..., channel], np.float64), kernel, mode="grid-wrap"
        )
        np.testing.assert_allclose(blurred[..., channel], expected, atol=1e-5)
    direct = np.asarray(Blur((12, 9, 2), kernel)(x))
    np.testing.assert_allclose(blurred[2:-2, 1:-1], direct[2:-2, 1:-1], atol=1e-5)


def test_fourier_sampling_full_mask_is_unitary(key):
    operator = FourierSampling((8, 6, 2), np.ones((8, 6), bool))
    x = _normal(key, (8, 6, 2))
    measured = operator(x)
    np.testing.assert_allclose(np.linalg.norm(measured), np.linalg.norm(x), rtol=1e-5)
    np.testing.assert_allclose(operator.transpose(measured), x, atol=1e-5)
    np.testing.assert_allclose(
        _dense(operator.transpose, (8, 6, 2, 2)) @ _dense(operator, (8, 6, 2)),
        np.eye(96),
        atol=1e-5,
    )


def test_fourier_sampling_zero_outside_the_mask(key):
    mask = cartesian_mask((8, 10), acceleration=2, center_fraction=0.2, seed=1)
    measured = FourierSampling((8, 10, 1), mask)(_normal(key, (8, 10, 1)))
    assert np.all(measured[~mask] == 0)
    assert np.count_nonzero(np.asarray(measured)[mask]) > 0


@pytest.mark.parametrize("acceleration", [1, 2, 4, 5.5])
def test_cartesian_mask(acceleration):
    shape, center_fraction = (12, 40), 0.1
    mask = cartesian_mask(shape, acceleration, center_fraction, seed=3)
    assert mask.shape == shape
    assert mask.dtype == bool
    np.testing.assert_array_equal(mask, np.broadcast_to(mask[:1], shape))  # whole columns
    assert mask[0].sum() == round(40 / acceleration)
    assert abs(40 / mask[0].sum() - acceleration) <= acceleration**2 / 40
    centred = np.fft.fftshift(mask[0])
    assert centred[18:22].all()  # the 4 columns around zero frequency (index 20)
    np.testing.assert_array_equal(cartesian_mask(shape, acceleration, center_fraction, 3), mask)
    if acceleration > 1:
        assert not np.array_equal(cartesian_mask(shape, acceleration, center_fraction, 4), mask)


def test_new_operators_in_a_joint_model_under_dps(key):
    """The new operators as A and B of models with Gaussian priors: short DPS runs are finite.

    y = FFTBlur(x) + SuperResolution(n) + eps (x of 6 x 6, n of 12 x 12), and y = F_M x + eps.
    """
    sde = bn.VPSDE(beta_min=0.1, beta_max=20.0)
    signal = bn.GaussianPrior((6, 6, 1), sde, variance=0.25)
    noise = bn.GaussianPrior((12, 12, 1), sde, variance=0.01)
    blurred_plus_pooled = bn.joint_model(
        signal,
        noise,
        signal_operator=FFTBlur((6, 6, 1), gaussian_kernel(3, 1.0)),
        noise_operator=SuperResolution((12, 12, 1), 2),
        measurement_std=0.05,
    )
    mask = cartesian_mask((6, 6), 2, center_fraction=0.34)
    fourier = bn.joint_model(
        signal, signal_operator=FourierSampling((6, 6, 1), mask), measurement_std=0.05
    )
    truth = {"x": 0.5 * _normal(key, (6, 6, 1)), "n": 0.1 * _normal(key, (12, 12, 1))}
    for model, latent_names in [(blurred_plus_pooled, ("x", "n")), (fourier, ("x",))]:
        target = bn.target.posterior_target(model)
        observation = target.predicted_observation({name: truth[name] for name in latent_names})
        tree = bn.sample(
            model,
            np.asarray(observation),
            sampler="dps",
            sampler_options={"guidance_weight": 0.3},
            num_chains=1,
            num_draws=2,
            num_steps=8,
            progress=False,
        )
        for name, value in tree.posterior.items():
            assert np.all(np.isfinite(np.asarray(value))), name
        assert np.asarray(tree.posterior["x"]).shape == (1, 2, 6, 6, 1)


def test_gaussian_kernel_of_a_traced_width():
    """An unknown blur width is a traced std: same kernel under jit, a finite derivative."""
    traced = jax.jit(lambda std: gaussian_kernel(7, std))(1.5)
    np.testing.assert_allclose(traced, gaussian_kernel(7, 1.5), rtol=1e-6)
    derivative = jax.grad(lambda std: gaussian_kernel(7, std)[3, 3])(1.5)
    assert np.isfinite(derivative) and derivative < 0  # a wider PSF lowers the centre


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
    (
        lambda: FFTBlur((8, 6, 1), jnp.ones((9, 3))),
        "kernel must be 2-D and at most (height, width)=(8, 6). Got kernel.shape=(9, 3).",
    ),
    (
        lambda: FFTBlur((8, 6, 1), jnp.ones(3)),
        "kernel must be 2-D and at most (height, width)=(8, 6). Got kernel.shape=(3,).",
    ),
    (lambda: FFTBlur((8,), jnp.ones((3, 3))), "shape must be (height, width, *channels)."),
    (
        lambda: FourierSampling((8, 6, 1), jnp.ones((6, 8), bool)),
        "mask must have shape (height, width)=(8, 6) or shape=(8, 6, 1). Got mask.shape=(6, 8).",
    ),
    (
        lambda: FourierSampling((2, 2, 1), jnp.array([[0.0, 2.0], [1.0, 1.0]])),
        "mask must contain only 0 and 1. Got values [0.0, 1.0, 2.0].",
    ),
    (
        lambda: SuperResolution((28, 28, 1), 3),
        "shape's height and width must be divisible by factor=3. Got shape=(28, 28, 1).",
    ),
    (lambda: SuperResolution((28, 28, 1), 0), "factor must be a positive int. Got factor=0."),
    (lambda: SuperResolution((28, 28, 1), 2.0), "factor must be a positive int. Got factor=2.0."),
    (
        lambda: cartesian_mask((8, 8), 0.5),
        "acceleration must be a finite number >= 1. Got 0.5.",
    ),
    (
        lambda: cartesian_mask((8, 8), 2, center_fraction=1.5),
        "center_fraction must be a number in [0, 1]. Got 1.5.",
    ),
    (
        lambda: cartesian_mask((8, 20), 4, center_fraction=0.5),
        "center_fraction=0.5 keeps 10 columns, more than the 5 that acceleration=4 allows "
        "of width=20.",
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
