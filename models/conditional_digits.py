"""Digits on clothing with ONE network conditioned on y (Iyer, Shu & Sinha §3.2-3.3).

The supervised alternative to ``models/digits_on_fashion.py``: instead of a clothing prior and
a digit prior combined through the likelihood, a U-Net that reads y = 0.5 x + 0.5 n as an
extra input channel was trained on (clothing, 0.5 clothing + 0.5 digit) pairs and gives the
score of p_t(x | y) directly. It was fine-tuned from the shipped clothing prior for 55 min
(README "The supervised alternative", with the exact command and the measured figures).
Classifier-free guidance ω (eq. 11, with the minus sign) and probabilistic conditioning (eq. 14)
act inside the prior (default: neither, which measured best); the sampler follows the prior's
score alone (ancestral DDPM steps from t = 1, no likelihood guidance): the likelihood below only
scores the draws (residuals, posterior predictive), it does not steer them.

``conditional_model(checkpoint, guidance_weight=..., probabilistic_conditioning=...)`` builds
the same model with another network or guidance; ``simulate(seed)`` mixes the shipped held-out
pairs exactly as ``models/digits_on_fashion.py`` does.
"""

import numpy as np

import bayesnoise as bn
from bayesnoise import assets
from bayesnoise.checkpoints import load_conditional_score_prior
from bayesnoise.data import load_testset

SHAPE = (28, 28, 1)
CHECKPOINT = "conditional_digits_unet.eqx"
TRAIN_COMMAND = (
    "bayesnoise train fashion_mnist --corruption digits --out conditional_digits_unet.eqx "
    "(see analyses/conditional_vs_joint.py)"
)
# On 30 test pairs (analyses/conditional_vs_joint.py, README "The supervised alternative"):
# omega = 0 without eq. 14's mixture at sampling scored best (25.9 dB; omega 1, 2, 4: 24.5,
# 21.7, 16.9). With the mixture ("keep") omega = 0 gave 19.6 and guidance won most of it back
# (25.2 at omega = 2). The network was trained without the eq. 14 mask (y given but for 10%
# condition dropout).
GUIDANCE_WEIGHT = 0.0
PROBABILISTIC_CONDITIONING = None


def conditional_model(
    checkpoint=None,
    *,
    guidance_weight: float = GUIDANCE_WEIGHT,
    probabilistic_conditioning: str | None = PROBABILISTIC_CONDITIONING,
    mixing_weight: float = 0.5,
):
    """The model of y = (1 − α) x + α n with the conditional network as x's prior.

    ``checkpoint``: a conditional checkpoint (default: the shipped ``conditional_digits_unet.eqx``).
    ``mixing_weight`` α only sets the (unused by the default sampler) likelihood's operator.
    """
    if checkpoint is None:
        if CHECKPOINT not in assets.names():
            _missing_network()
        checkpoint = assets.path(CHECKPOINT)
    prior = load_conditional_score_prior(
        checkpoint,
        guidance_weight=guidance_weight,
        probabilistic_conditioning=probabilistic_conditioning,
    )
    if tuple(prior.shape) != SHAPE:
        raise ValueError(f"checkpoint must hold a {SHAPE} network. Got {tuple(prior.shape)}.")
    # y = (1 - alpha) x + alpha n; the digit term is not modelled: sigma is roughly the
    # per-pixel std of 0.5 n over MNIST digits, for residuals and the posterior predictive.
    operator = bn.operators.Scale(SHAPE, 1.0 - mixing_weight)
    return bn.joint_model(prior, signal_operator=operator, measurement_std=0.2)


def _missing_network(*args, **kwargs):
    raise FileNotFoundError(
        f"checkpoint: {CHECKPOINT} is not shipped with this copy of bayesnoise. Train one "
        f"({TRAIN_COMMAND}) and pass it as conditional_model(checkpoint)."
    )


# Without the shipped network the file still imports (conditional_model(checkpoint) works);
# sampling its model then stops with the error above.
model = conditional_model() if CHECKPOINT in assets.names() else _missing_network

defaults = {
    # ancestral (DDPM, eta = 1) steps following the conditional prior's own score from t = 1
    "sampler": bn.sampler("ddim", guidance="none", name="ddpm", eta=1.0),
    "num_steps": 50,
    "num_chains": 2,
    "num_draws": 4,
    "start_time": 1.0,
}


def observe(x, seed: int):
    """y = 0.5 x + 0.5 n with held-out digit ``seed`` (0-99) of the shipped test set: ``(y, n)``."""
    n = load_testset()["digits"][seed % 100]
    return (0.5 * x + 0.5 * n).astype(np.float32), n


def simulate(seed: int = 0):
    """Held-out pair ``seed`` (0-99) of the shipped test set, mixed as y = 0.5 x + 0.5 n; the
    truth holds x only (the digit n is not a latent of this model)."""
    x = load_testset()["fashion"][seed % 100]
    y, _ = observe(x, seed)
    return y, {"x": x}
