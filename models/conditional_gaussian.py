"""Gaussian denoising with ONE network conditioned on y (Iyer, Shu & Sinha §3.2).

y = x + σ ε, ε ~ N(0, I), σ = 0.3 (pixel values in [0, 1]). A U-Net that reads y as an extra
input channel was fine-tuned from the shipped clothing prior on (clothing, clothing + 0.3 ε)
pairs and gives the score of p_t(x | y) directly (README "The supervised alternative", with the
exact command and the measured figures). The sampler follows that score alone (ancestral DDPM
steps from t = 1, no likelihood guidance); the likelihood below is the exact one of this
corruption, used to score the draws (residuals, posterior predictive), not to steer them.

The joint counterpart (the clothing prior with a Gaussian noise prior, coupled through the
likelihood) is ``analyses/conditional_vs_joint.py``'s ``joint_model("gaussian")``.
``conditional_model(checkpoint, guidance_weight=..., probabilistic_conditioning=...)`` builds
this model with another network or guidance; ``simulate(seed)`` corrupts shipped test image
``seed``; ``observe(x, seed)`` corrupts any image.
"""

import numpy as np

import bayesnoise as bn
from bayesnoise import assets
from bayesnoise.checkpoints import load_conditional_score_prior
from bayesnoise.data import load_testset

SHAPE = (28, 28, 1)
NOISE_STD = 0.3
CHECKPOINT = "conditional_gaussian_unet.eqx"
# Classifier-free guidance ω (eq. 11, with the minus sign) and eq. 14's mixture at sampling:
# neither, as for conditional_digits.py (the network was trained without the eq. 14 mask).
GUIDANCE_WEIGHT = 0.0
PROBABILISTIC_CONDITIONING = None


def conditional_model(
    checkpoint=None,
    *,
    guidance_weight: float = GUIDANCE_WEIGHT,
    probabilistic_conditioning: str | None = PROBABILISTIC_CONDITIONING,
    noise_std: float = NOISE_STD,
):
    """The model of y = x + σ ε with the conditional network as x's prior.

    ``checkpoint``: a conditional checkpoint (default: the shipped
    ``conditional_gaussian_unet.eqx``).
    ``noise_std`` σ sets the likelihood (the network was trained at σ = 0.3 only).
    """
    prior = load_conditional_score_prior(
        assets.path(CHECKPOINT) if checkpoint is None else checkpoint,
        guidance_weight=guidance_weight,
        probabilistic_conditioning=probabilistic_conditioning,
    )
    if tuple(prior.shape) != SHAPE:
        raise ValueError(f"checkpoint must hold a {SHAPE} network. Got {tuple(prior.shape)}.")
    identity = bn.operators.Identity(SHAPE)
    return bn.joint_model(prior, signal_operator=identity, measurement_std=noise_std)


model = conditional_model()

defaults = {
    # ancestral (DDPM, eta = 1) steps following the conditional prior's own score from t = 1
    "sampler": bn.sampler("ddim", guidance="none", name="ddpm", eta=1.0),
    "num_steps": 50,
    "num_chains": 2,
    "num_draws": 4,
    "start_time": 1.0,
}


def observe(x, seed: int):
    """y = x + σ ε with ε drawn from ``seed``: ``(y, σ ε)``."""
    noise = NOISE_STD * np.random.default_rng(seed).standard_normal(np.shape(x))
    return (x + noise).astype(np.float32), noise.astype(np.float32)


def simulate(seed: int = 0):
    """Shipped test image ``seed`` (0-99) plus Gaussian noise drawn from ``seed``."""
    x = load_testset()["fashion"][seed % 100]
    y, _ = observe(x, seed)
    return y, {"x": x}
