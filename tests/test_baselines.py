"""The baselines do what they promise on tiny problems, batch, and refuse bad input clearly."""

import numpy as np
import pytest

import bayesnoise as bn
from bayesnoise import baselines
from bayesnoise.operators import DenseMatrix, Identity, Scale, random_gaussian_matrix

SHAPE = (16, 16, 1)


def smooth_images(num_images, seed=0):
    """Piecewise-constant images in [0.2, 0.8]: easy for every denoiser."""
    rng = np.random.default_rng(seed)
    images = np.full((num_images, *SHAPE), 0.2, np.float32)
    for image in images:
        top, left = rng.integers(2, 6, size=2)
        image[top : top + 8, left : left + 8] = 0.8
    return images


def mse(estimate, truth):
    return float(np.mean((estimate - truth) ** 2))


@pytest.fixture
def noisy_pair():
    truth = smooth_images(2)
    noise = 0.1 * np.random.default_rng(1).standard_normal(truth.shape)
    return truth, (truth + noise).astype(np.float32)


@pytest.mark.parametrize("denoise", [baselines.bm3d_denoise, baselines.nl_means_denoise])
def test_denoisers_reduce_the_error_of_a_noisy_image(denoise, noisy_pair):
    truth, noisy = noisy_pair
    problem = baselines.LinearProblem(Identity(SHAPE), noise_std=0.1)
    denoised = denoise(noisy, problem)
    assert denoised.shape == truth.shape and denoised.dtype == np.float32
    assert denoised.min() >= 0.0 and denoised.max() <= 1.0
    assert mse(denoised, truth) < 0.5 * mse(noisy, truth)


def test_denoising_input_undoes_the_mixing_scale():
    truth = smooth_images(3)
    noise_mean = np.linspace(0.0, 0.5, 16 * 16, dtype=np.float32).reshape(SHAPE)
    mixing = Scale(SHAPE, 0.5)
    problem = baselines.LinearProblem(mixing, mixing, noise_mean=noise_mean, noise_std=0.3)
    noisy, noise_std = baselines.denoising_input(0.5 * truth + 0.5 * noise_mean, problem)
    np.testing.assert_allclose(noisy, truth, atol=1e-6)  # n = E[n]: nothing left
    assert noise_std == pytest.approx(0.3)


def test_bm3d_treats_a_mixed_observation_as_a_noisy_signal(noisy_pair):
    noisy = noisy_pair[1][:1]
    mixing = Scale(SHAPE, 0.5)
    problem = baselines.LinearProblem(mixing, mixing, noise_std=0.1)
    np.testing.assert_allclose(
        baselines.bm3d_denoise(0.5 * noisy, problem),
        baselines.bm3d_denoise(noisy, baselines.LinearProblem(Identity(SHAPE), noise_std=0.1)),
        atol=1e-5,
    )


@pytest.mark.parametrize("wavelet", ["haar", "db2"])
def test_wavelet_synthesis_is_orthogonal_at_the_default_level(wavelet):
    synthesis = baselines.wavelet_synthesis_matrix((28, 28, 1), wavelet)
    np.testing.assert_allclose(synthesis.T @ synthesis, np.eye(784), atol=1e-5)


def compressed_sensing(key, num_images=3, num_measurements=128):
    """Signals with 12 nonzero Haar coefficients, measured by a random Gaussian A (m < d)."""
    synthesis = baselines.wavelet_synthesis_matrix(SHAPE, "haar")
    rng = np.random.default_rng(2)
    coefficients = np.zeros((num_images, synthesis.shape[1]), np.float32)
    for row in coefficients:
        row[rng.choice(64, size=12, replace=False)] = rng.uniform(0.3, 1.0, size=12)
    signals = (coefficients @ synthesis.T).reshape(num_images, *SHAPE)
    signals = 0.5 + 0.5 * signals / np.abs(signals).max()  # inside [0, 1], still sparse + DC
    measurement = random_gaussian_matrix(SHAPE, num_measurements, key=key)
    noise = 0.01 * rng.standard_normal((num_images, num_measurements))
    observations = np.stack([np.asarray(measurement(x)) for x in signals]) + noise
    problem = baselines.LinearProblem(measurement, noise_std=0.01)
    return signals, observations.astype(np.float32), problem


def test_wavelet_lasso_beats_the_minimum_norm_solution(key):
    signals, observations, problem = compressed_sensing(key)
    lasso = baselines.wavelet_lasso(observations, problem, alpha=0.003, num_iterations=1000)
    least_norm = baselines.minimum_norm(observations, problem)
    assert lasso.shape == signals.shape and lasso.dtype == np.float32
    assert mse(lasso, signals) < 0.1 * mse(least_norm, signals)


def test_wavelet_lasso_batches_like_single_images(key):
    _, observations, problem = compressed_sensing(key)
    batch = baselines.wavelet_lasso(observations, problem, alpha=0.01, weighted=True)
    one_by_one = [
        baselines.wavelet_lasso(y[None], problem, alpha=0.01, weighted=True) for y in observations
    ]
    np.testing.assert_allclose(batch, np.concatenate(one_by_one), atol=1e-5)


def test_dense_matrix_matches_the_operator(key):
    operator = random_gaussian_matrix(SHAPE, 32, key=key)
    np.testing.assert_allclose(baselines.dense_matrix(operator), operator.matrix, atol=1e-6)


def test_gaussian_noise_diffusion_gives_the_gaussian_posterior_mean():
    """Gaussian x and n: the baseline's posterior mean is the closed form (exact sampler)."""
    shape = (4, 4, 1)
    signal_prior = bn.GaussianPrior(shape, bn.VPSDE(), mean=0.5, variance=0.01)
    problem = baselines.LinearProblem(Identity(shape), noise_mean=0.1, noise_std=0.2)
    observation = np.random.default_rng(3).uniform(0.2, 1.0, (2, *shape)).astype(np.float32)
    estimate = baselines.gaussian_noise_diffusion(
        observation,
        problem,
        signal_prior=signal_prior,
        sampler_options={"covariance": "tweedie"},
        num_draws=64,
        num_steps=25,
        start_time=1.0,
        measurement_std=0.01,
    )
    gain = 0.01 / (0.01 + 0.2**2 + 0.01**2)
    expected = 0.5 + gain * (observation - 0.1 - 0.5)
    assert estimate.shape == observation.shape
    np.testing.assert_allclose(estimate, expected, atol=0.03)  # MC error ~ 0.09 / 8 = 0.011


IDENTITY_PROBLEM = baselines.LinearProblem(Identity(SHAPE), noise_std=0.1)
GOOD = np.full((1, *SHAPE), 0.5, np.float32)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (
            lambda: baselines.bm3d_denoise(GOOD[0], IDENTITY_PROBLEM),
            ValueError,
            r"observation must have shape \('num_images', 16, 16, 1\)",
        ),
        (
            lambda: baselines.nl_means_denoise(GOOD[:0], IDENTITY_PROBLEM),
            ValueError,
            "observation must hold at least one image",
        ),
        (
            lambda: baselines.wavelet_lasso(GOOD.astype(np.uint8), IDENTITY_PROBLEM),
            TypeError,
            "observation must be floating point",
        ),
        (
            lambda: baselines.bm3d_denoise(GOOD * np.nan, IDENTITY_PROBLEM),
            ValueError,
            "observation must be finite",
        ),
        (
            lambda: baselines.bm3d_denoise(GOOD, {"noise_std": 0.1}),
            TypeError,
            "problem must be a LinearProblem",
        ),
        (
            lambda: baselines.bm3d_denoise(GOOD, IDENTITY_PROBLEM, sigma=-1.0),
            ValueError,
            "sigma must be a positive finite number",
        ),
        (
            lambda: baselines.nl_means_denoise(GOOD, IDENTITY_PROBLEM, h=0.0),
            ValueError,
            "h must be a positive finite number",
        ),
        (
            lambda: baselines.nl_means_denoise(GOOD, IDENTITY_PROBLEM, patch_size=2.5),
            ValueError,
            "patch_size must be a positive int",
        ),
        (
            lambda: baselines.wavelet_lasso(GOOD, IDENTITY_PROBLEM, alpha=0),
            ValueError,
            "alpha must be a positive finite number",
        ),
        (
            lambda: baselines.wavelet_lasso(GOOD, IDENTITY_PROBLEM, wavelet="nope"),
            ValueError,
            "wavelet must be a discrete PyWavelets wavelet",
        ),
        (
            lambda: baselines.wavelet_lasso(GOOD, IDENTITY_PROBLEM, num_iterations=0),
            ValueError,
            "num_iterations must be an int >= 1",
        ),
        (
            lambda: baselines.gaussian_noise_diffusion(GOOD, IDENTITY_PROBLEM, signal_prior=None),
            TypeError,
            "signal_prior must be an AbstractScorePrior",
        ),
    ],
)
def test_bad_arguments_are_named(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_bad_problems_are_named(key):
    with pytest.raises(TypeError, match="signal_operator must be a bayesnoise.operators"):
        baselines.LinearProblem(np.eye(3))
    with pytest.raises(ValueError, match=r"noise_std must be broadcastable to .*\(16, 16, 1\)"):
        baselines.LinearProblem(Identity(SHAPE), noise_std=np.ones(3))
    with pytest.raises(ValueError, match="noise_std must be > 0"):
        baselines.LinearProblem(Identity(SHAPE), noise_std=0.0)
    with pytest.raises(ValueError, match="noise_mean must be finite"):
        baselines.LinearProblem(Identity(SHAPE), noise_mean=np.inf)
    with pytest.raises(ValueError, match="noise_operator must map to the observation shape"):
        baselines.LinearProblem(Identity(SHAPE), Identity((4, 4, 1)))
    measured = baselines.LinearProblem(random_gaussian_matrix(SHAPE, 32, key=key))
    with pytest.raises(ValueError, match="problem must be a denoising problem"):
        baselines.bm3d_denoise(np.zeros((1, 32), np.float32), measured)
    eye = np.eye(256, dtype=np.float32)
    mixed_noise = baselines.LinearProblem(DenseMatrix(eye, SHAPE), DenseMatrix(eye, (256,)))
    with pytest.raises(ValueError, match="weighted=True needs noise_operator Identity or Scale"):
        baselines.wavelet_lasso(np.zeros((1, 256), np.float32), mixed_noise, weighted=True)
    prior = bn.GaussianPrior((4, 4, 1), bn.VPSDE())
    with pytest.raises(ValueError, match=r"signal_prior.shape must be problem.signal_shape"):
        baselines.gaussian_noise_diffusion(GOOD, IDENTITY_PROBLEM, signal_prior=prior)
