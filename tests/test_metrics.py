"""PSNR/SSIM against hand values and scikit-image's per-channel definition; the summary."""

import json
import math

import jax.numpy as jnp
import numpy as np
import pytest
from skimage.metrics import structural_similarity

from bayesnoise.metrics import metric_summary, psnr, ssim


@pytest.fixture
def rng():
    return np.random.default_rng(0)


def test_psnr_identical_images_is_inf():
    image = np.full((8, 8), 0.5)
    assert psnr(image, image) == math.inf


@pytest.mark.parametrize(
    ("shape", "offset", "data_range", "expected"),
    [
        ((8, 8), 0.1, 1.0, 20.0),  # MSE 0.01
        ((8, 8, 3), 0.05, 1.0, 10 * math.log10(1 / 0.0025)),  # MSE 0.0025
        ((8, 8), 0.1, 2.0, 10 * math.log10(4 / 0.01)),
    ],
)
def test_psnr_known_mse(shape, offset, data_range, expected):
    truth = np.zeros(shape)
    assert psnr(truth + offset, truth, data_range) == pytest.approx(expected, rel=1e-12)


def test_ssim_identical_images_is_one(rng):
    image = rng.random((16, 16, 3))
    assert ssim(image, image) == pytest.approx(1.0)


def test_ssim_colour_averages_the_channels(rng):
    truth = rng.random((16, 16, 3))
    estimate = np.clip(truth + 0.1 * rng.standard_normal(truth.shape), 0.0, 1.0)
    per_channel = [
        structural_similarity(truth[..., c], estimate[..., c], data_range=1.0) for c in range(3)
    ]
    assert ssim(estimate, truth) == pytest.approx(np.mean(per_channel))


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_trailing_grey_channel_is_squeezed(metric, rng):
    truth = rng.random((16, 16))
    estimate = np.clip(truth + 0.1, 0.0, 1.0)
    assert metric(estimate[..., None], truth[..., None]) == pytest.approx(metric(estimate, truth))


@pytest.mark.parametrize("metric", [psnr, ssim])
@pytest.mark.parametrize("image_shape", [(16, 16), (16, 16, 1), (16, 16, 3)])
def test_batch_gives_one_value_per_image(metric, image_shape, rng):
    truth = rng.random((4, *image_shape))
    estimate = np.clip(truth + 0.1 * rng.standard_normal(truth.shape), 0.0, 1.0)
    values = metric(estimate, truth, batch=True)
    assert values.shape == (4,)
    expected = [metric(e, t) for e, t in zip(estimate, truth, strict=True)]
    np.testing.assert_allclose(values, expected)


def test_accepts_jax_float32_arrays(rng):
    truth = rng.random((8, 8)).astype(np.float32)
    assert psnr(jnp.asarray(truth + np.float32(0.1)), jnp.asarray(truth)) == pytest.approx(
        20.0, rel=1e-5
    )


@pytest.mark.parametrize("metric", [psnr, ssim])
def test_shape_mismatch_names_both_shapes(metric):
    with pytest.raises(ValueError, match=r"estimate\.shape=\(8, 8\) and truth\.shape=\(8, 9\)"):
        metric(np.zeros((8, 8)), np.zeros((8, 9)))


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_input_is_rejected(bad):
    estimate = np.zeros((8, 8))
    estimate[2, 3] = bad
    with pytest.raises(ValueError, match=r"estimate must be finite\. Got 1 NaN/inf values of 64"):
        psnr(estimate, np.zeros((8, 8)))


def test_batch_without_flag_gets_a_hint():
    with pytest.raises(ValueError, match=r"Got shape \(5, 8, 8\)\. For a batch .* batch=True"):
        ssim(np.zeros((5, 8, 8)), np.zeros((5, 8, 8)))


def test_wrong_channel_count_is_rejected():
    with pytest.raises(ValueError, match=r"channels in \(1, 3\)\. Got shape \(8, 8, 4\)"):
        psnr(np.zeros((8, 8, 4)), np.zeros((8, 8, 4)))


@pytest.mark.parametrize("data_range", [0.0, -1.0, math.nan, "1"])
def test_data_range_must_be_positive(data_range):
    with pytest.raises(ValueError, match="data_range must be a positive finite number"):
        psnr(np.zeros((8, 8)), np.zeros((8, 8)), data_range)


def test_metric_summary_is_plain_json():
    summary = metric_summary(np.array([30.0, 32.0, 34.0], dtype=np.float32))
    assert summary == {"mean": 32.0, "std": pytest.approx(math.sqrt(8 / 3)), "n": 3}
    assert type(summary["mean"]) is float and type(summary["n"]) is int
    json.dumps(summary)


def test_metric_summary_with_an_exact_reconstruction():
    summary = metric_summary([math.inf, 30.0])
    assert summary["mean"] == math.inf and math.isnan(summary["std"]) and summary["n"] == 2


def test_metric_summary_errors():
    with pytest.raises(ValueError, match="at least one metric value"):
        metric_summary([])
    with pytest.raises(ValueError, match="must not contain NaN. Got 1 NaN of 2"):
        metric_summary([1.0, math.nan])
