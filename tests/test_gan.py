"""The GAN baseline: CSGM finds an image that is in the generator's range; the call shape;
clear errors; the generator file's checksum."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bayesnoise.baselines import LinearProblem
from bayesnoise.baselines.gan import (
    Discriminator,
    Generator,
    TrainedGenerator,
    csgm,
    generate,
    load_generator,
    save_generator,
)
from bayesnoise.operators import Scale, random_gaussian_matrix

SHAPE = (28, 28, 1)


@eqx.filter_jit
def small_network(key):
    """A small random DCGAN generator (latent 8, width 4) and its batch-norm state (jitted:
    one compilation instead of one per initialiser)."""
    return eqx.nn.make_with_state(Generator)(latent_size=8, width=4, key=key)


@pytest.fixture(scope="module")
def small_generator():
    """A small random DCGAN (latent 8, width 4) with its initial batch-norm statistics."""
    return TrainedGenerator(*small_network(jax.random.key(3)))


@eqx.filter_jit
def draw(generator, latents):
    """Images of a batch of latents (jitted: one compilation instead of one per operation)."""
    return jax.vmap(generator)(latents)


def psnr(estimate, truth):
    return float(10 * np.log10(1.0 / np.mean((estimate - truth) ** 2)))


def test_csgm_recovers_an_image_in_the_generators_range(small_generator):
    latents = jax.random.normal(jax.random.key(7), (2, small_generator.latent_size))
    truth = np.asarray(draw(small_generator, latents))
    measurement = random_gaussian_matrix(SHAPE, 200, key=jax.random.key(1))
    observation = np.stack([np.asarray(measurement(image)) for image in truth])
    problem = LinearProblem(measurement, noise_std=0.01)
    x_hat, objective = csgm(
        observation,
        problem,
        generator=small_generator,
        weight=0.5,
        num_steps=300,
        learning_rate=0.05,
        restarts=4,
        return_objective=True,
    )
    assert x_hat.shape == truth.shape and x_hat.dtype == np.float32
    assert psnr(x_hat, truth) > 35.0
    # at z*, the objective is weight ‖z*‖² (~4 here); the optimum can only be lower
    prior_term = 0.5 * np.sum(np.asarray(latents) ** 2, axis=1)
    assert np.all(objective <= prior_term + 0.5)


def test_csgm_call_shape_on_a_mixed_observation(small_generator):
    rng = np.random.default_rng(0)
    signal, noise = rng.uniform(size=(2, 3, *SHAPE)).astype(np.float32)
    mixing = Scale(SHAPE, 0.5)
    problem = LinearProblem(mixing, mixing, noise_mean=noise.mean(0), noise_std=0.3)
    x_hat = csgm(
        0.5 * signal + 0.5 * noise, problem, generator=small_generator, num_steps=3, restarts=2
    )
    assert x_hat.shape == (3, *SHAPE) and x_hat.dtype == np.float32
    assert x_hat.min() >= 0.0 and x_hat.max() <= 1.0
    again = csgm(
        0.5 * signal + 0.5 * noise, problem, generator=small_generator, num_steps=3, restarts=2
    )
    np.testing.assert_array_equal(x_hat, again)  # same seed, same answer


@pytest.mark.parametrize(
    ("hyper", "match"),
    [
        ({"weight": 0.0}, "weight must be a positive finite number"),
        ({"learning_rate": float("nan")}, "learning_rate must be a positive finite number"),
        ({"num_steps": 0}, "num_steps must be an int >= 1"),
        ({"restarts": 2.0}, "restarts must be an int >= 1"),
        ({"seed": -1}, "seed must be a non-negative int"),
    ],
)
def test_csgm_rejects_bad_hyperparameters(small_generator, hyper, match):
    problem = LinearProblem(Scale(SHAPE, 1.0))
    with pytest.raises(ValueError, match=match):
        csgm(np.zeros((1, *SHAPE), np.float32), problem, generator=small_generator, **hyper)


def test_csgm_rejects_bad_input(small_generator):
    problem = LinearProblem(Scale(SHAPE, 1.0))
    with pytest.raises(ValueError, match=r"observation must have shape \('num_images', 28"):
        csgm(np.zeros(SHAPE, np.float32), problem, generator=small_generator)
    with pytest.raises(TypeError, match="generator must be a TrainedGenerator"):
        csgm(np.zeros((1, *SHAPE), np.float32), problem, generator=small_generator.network)
    other = LinearProblem(Scale((16, 16, 1), 1.0))
    with pytest.raises(ValueError, match=r"input_shape must be the generator's image shape"):
        csgm(np.zeros((1, 16, 16, 1), np.float32), other, generator=small_generator)


def test_generator_file_round_trip_and_checksum(small_generator, tmp_path):
    path = tmp_path / "generator.eqx"
    header = save_generator(path, small_generator, {"training": {"steps": 1}})
    loaded, read = load_generator(path)
    assert read == header and read["architecture"]["hyperparameters"]["latent_size"] == 8
    latents = jnp.ones((2, 8))
    np.testing.assert_array_equal(draw(loaded, latents), draw(small_generator, latents))
    raw = path.read_bytes()
    path.write_bytes(raw.replace(b'"steps": 1', b'"steps": 2', 1))
    with pytest.raises(ValueError, match="checksum mismatch"):
        load_generator(path)


def test_load_generator_refuses_a_file_of_another_kind(tmp_path):
    from bayesnoise.checkpoints import write_tree

    path = tmp_path / "other.eqx"
    write_tree(path, {"w": jnp.zeros(3)}, {"kind": "score_network"})
    with pytest.raises(ValueError, match="kind must be 'dcgan_generator'. Got 'score_network'"):
        load_generator(path)


def test_training_mode_generator_and_discriminator_shapes():
    network, state = small_network(jax.random.key(0))
    discriminator = eqx.filter_jit(lambda key: Discriminator(width=4, key=key))(jax.random.key(1))

    @eqx.filter_jit
    def training_forward(network, state, discriminator, latents):
        images, state = generate(network, state, latents)
        return images, jax.vmap(discriminator)(images)

    images, logits = training_forward(network, state, discriminator, jnp.ones((3, 8)))
    assert images.shape == (3, *SHAPE) and float(images.min()) >= 0 and float(images.max()) <= 1
    assert logits.shape == (3,)


def test_the_shipped_generator_draws_fashion_sized_images():
    generator, header = load_generator()
    assert header["data"]["dataset"] == "fashion_mnist" and generator.shape == SHAPE
    images = draw(generator, jax.random.normal(jax.random.key(0), (4, 100)))
    assert images.shape == (4, *SHAPE)
    assert float(images.min()) >= 0.0 and float(images.max()) <= 1.0
