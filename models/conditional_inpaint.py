"""Imputation of missing pixels with ONE network conditioned on y (Iyer, Shu & Sinha §3.2).

y = m ⊙ x: half of the pixels are missing (set to 0). A U-Net that reads y as an extra input
channel was fine-tuned from the shipped clothing prior on (clothing, clothing with a fresh random
half of its pixels zeroed) pairs and gives the score of p_t(x | y) directly (README "The
supervised alternative", with the exact command and the measured figures). It is not told which
pixels are missing: it reads that from y. The sampler follows its score alone (ancestral DDPM
steps from t = 1, no likelihood guidance); the likelihood below (the mask operator) scores the
draws, it does not steer them.

The mask ``MASK`` is one fixed draw (seed 0, each pixel missing with probability 0.5), as a
detector's dead-pixel map would be; the network was trained on fresh masks, so
``conditional_model(mask=...)`` serves any other. The joint counterpart (the clothing prior
alone with this mask as its operator) is ``analyses/conditional_vs_joint.py``'s
``joint_model("inpaint")``. ``simulate(seed)`` masks shipped test image ``seed``.
"""

import numpy as np

import bayesnoise as bn
from bayesnoise import assets
from bayesnoise.checkpoints import load_conditional_score_prior
from bayesnoise.data import load_testset

SHAPE = (28, 28, 1)
MISSING_FRACTION = 0.5
MASK = (np.random.default_rng(0).random(SHAPE) >= MISSING_FRACTION).astype(np.float32)
CHECKPOINT = "conditional_inpaint_unet.eqx"
# Classifier-free guidance ω (eq. 11, with the minus sign) and eq. 14's mixture at sampling:
# neither, as for conditional_digits.py (the network was trained without the eq. 14 mask).
GUIDANCE_WEIGHT = 0.0
PROBABILISTIC_CONDITIONING = None


def conditional_model(
    checkpoint=None,
    *,
    guidance_weight: float = GUIDANCE_WEIGHT,
    probabilistic_conditioning: str | None = PROBABILISTIC_CONDITIONING,
    mask=MASK,
):
    """The model of y = m ⊙ x with the conditional network as x's prior.

    ``checkpoint``: a conditional checkpoint (default: the shipped
    ``conditional_inpaint_unet.eqx``).
    ``mask`` m (0: missing, 1: observed, shape ``SHAPE``) sets the likelihood's operator.
    """
    prior = load_conditional_score_prior(
        assets.path(CHECKPOINT) if checkpoint is None else checkpoint,
        guidance_weight=guidance_weight,
        probabilistic_conditioning=probabilistic_conditioning,
    )
    if tuple(prior.shape) != SHAPE:
        raise ValueError(f"checkpoint must hold a {SHAPE} network. Got {tuple(prior.shape)}.")
    return bn.joint_model(prior, signal_operator=bn.operators.Mask(mask), measurement_std=0.01)


model = conditional_model()

defaults = {
    # ancestral (DDPM, eta = 1) steps following the conditional prior's own score from t = 1
    "sampler": bn.sampler("ddim", guidance="none", name="ddpm", eta=1.0),
    "num_steps": 50,
    "num_chains": 2,
    "num_draws": 4,
    "start_time": 1.0,
}


def observe(x, seed: int = 0):
    """y = MASK ⊙ x (``seed`` is unused: the mask is the model's): ``(y, MASK)``."""
    del seed
    return (MASK * np.asarray(x)).astype(np.float32), MASK


def simulate(seed: int = 0):
    """Shipped test image ``seed`` (0-99) with the pixels of ``MASK`` missing."""
    x = load_testset()["fashion"][seed % 100]
    y, _ = observe(x, seed)
    return y, {"x": x}
