"""A prior conditioned on the observation: a score network that also reads the noisy image y.

The supervised alternative to the joint posterior (Iyer, Shu & Sinha, "Optimizing Diffusion
Models for Image Denoising", §3.2-3.3): one network, trained on (clean, observed) pairs, gives
the score of p_t(x | y) directly. Two devices of the paper act at sampling time:

- **classifier-free guidance** (eq. 11): with ψ(z, c) the conditional and ψ(z) the
  unconditional (dropped-condition) prediction of the same network,
  ψ = (1 + ω) ψ(z, c) − ω ψ(z). The paper prints "+ ω ψ(z)"; the classifier-free-guidance paper
  it cites (Ho & Salimans 2022, and its eq. 10 just above) has "−", which is what is used here
  (with "+" the unconditional score would be counted 1 + 2ω times);
- **probabilistic conditioning** (eq. 14): p_cond = 1 − exp(−‖x_t − y‖ / T), see
  :func:`conditioning_probability` for how it is read and applied.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
from jaxtyping import Array, Float, PRNGKeyArray

from bayesnoise.priors.base import AbstractScorePrior
from bayesnoise.sde import AbstractSDE

__all__ = [
    "CONDITIONING_RULES",
    "DISTANCES",
    "ConditionalScoreNetPrior",
    "conditioning_probability",
    "draw_condition_mask",
    "guided_score",
    "keep_probability",
]

CONDITIONING_RULES = ("keep", "mask", None)
"""How p_cond of eq. 14 is read: the probability that y is kept ("keep", default), or that it
is masked ("mask"); None: y is always kept (no probabilistic conditioning)."""
DISTANCES = ("rms", "l2")


def conditioning_probability(
    noisy: Float[Array, "..."],
    observation: Float[Array, "..."],
    temperature: float = 1.0,
    distance: str = "rms",
) -> Float[Array, ""]:
    """p_cond = 1 − exp(−‖x_t − y‖ / T) of one image (Iyer et al. eq. 14).

    ``distance="l2"`` is the Euclidean norm of the paper's formula; ``"rms"`` (default) divides
    it by √(number of pixels). The paper reports that T = 1 keeps p_cond "between 0.2 and 0.8";
    with the plain norm of a 28 × 28 image ‖x_t − y‖ is 5-30 and p_cond is 1 to within 1e-2
    everywhere, whereas the RMS distance (about 1.1 at t = 1 for x_t ~ N(0, I) against y in
    [0, 1], about 0.2-0.3 near t = 0 for the corruptions used here) gives exactly that range.
    """
    if distance not in DISTANCES:
        raise ValueError(f"distance must be one of {DISTANCES}. Got distance={distance!r}.")
    norm = jnp.sqrt(jnp.sum((noisy - observation) ** 2))
    if distance == "rms":
        norm = norm / jnp.sqrt(jnp.asarray(noisy.size, dtype=norm.dtype))
    return 1.0 - jnp.exp(-norm / temperature)


def keep_probability(
    noisy: Float[Array, "..."],
    observation: Float[Array, "..."],
    rule: str | None = "keep",
    temperature: float = 1.0,
    distance: str = "rms",
) -> Float[Array, ""]:
    """The probability that the condition y is given to the network at x_t (eq. 14 and ``rule``).

    The paper names p_cond "the probability of conditioning" and states its purpose: "if X_t
    is very close to the noisy input, we condition the model less", so that the model "learns
    from the conditional distribution at the start of the denoising process, but learns less
    from the conditioning as it reaches the later time-steps". That is ``rule="keep"``: y is
    kept with probability p_cond (x_t far from y at the start, p_cond near 1; close to y late,
    p_cond small). One sentence says the layer is *masked* with probability p_cond, which
    would do the opposite; ``rule="mask"`` is that literal reading, for comparison.
    """
    if rule not in CONDITIONING_RULES:
        raise ValueError(
            f"probabilistic_conditioning must be one of {CONDITIONING_RULES}. Got {rule!r}."
        )
    if rule is None:
        return jnp.ones((), noisy.dtype)
    p_cond = conditioning_probability(noisy, observation, temperature, distance)
    return p_cond if rule == "keep" else 1.0 - p_cond


def draw_condition_mask(
    key: PRNGKeyArray,
    noisy: Float[Array, "..."],
    observation: Float[Array, "..."],
    *,
    dropout: float = 0.0,
    rule: str | None = "keep",
    temperature: float = 1.0,
    distance: str = "rms",
) -> Float[Array, ""]:
    """1 (condition given) or 0 (dropped) for one training image: classifier-free dropout with
    probability ``dropout`` (p_uncond), and otherwise eq. 14's mask (:func:`keep_probability`).

    The mask is kept with probability (1 − dropout) · keep_probability(x_t, y).
    """
    dropout_key, mask_key = jax.random.split(key)
    kept = jax.random.uniform(dropout_key) >= dropout
    keep = keep_probability(noisy, observation, rule, temperature, distance)
    kept = kept & (jax.random.uniform(mask_key, dtype=keep.dtype) < keep)
    return kept.astype(noisy.dtype)


def guided_score(
    conditional: Float[Array, "..."],
    unconditional: Float[Array, "..."],
    guidance_weight: float | Float[Array, ""] = 0.0,
    keep: float | Float[Array, ""] = 1.0,
) -> Float[Array, "..."]:
    """Classifier-free guidance (eq. 11) of a condition kept with probability ``keep``.

    ψ(z, c) given with probability ``keep`` and ψ(z) otherwise has the mean
    ψ_keep = keep ψ(z, c) + (1 − keep) ψ(z); guidance with weight ω (eq. 11, with the minus
    sign of the classifier-free-guidance paper; the Iyer paper prints "+ ω ψ(z)") gives

        (1 + ω) ψ_keep − ω ψ(z) = ψ(z) + (1 + ω) keep (ψ(z, c) − ψ(z)),

    which is (1 + ω) ψ(z, c) − ω ψ(z) for ``keep = 1``, and ψ(z, c) for ω = 0 as well.
    """
    return unconditional + (1.0 + guidance_weight) * keep * (conditional - unconditional)


class ConditionalScoreNetPrior(AbstractScorePrior):
    """score(x_t, t; y) = ψ(x_t, t, y) / s_t: a conditional network, guided (eq. 11, 14).

    ``network`` is a :class:`~bayesnoise.nets.UNet` with ``condition_channels > 0``, trained
    on (clean, observed) pairs with condition dropout (:mod:`bayesnoise.training.conditional`).
    The prior's score needs the observation: :meth:`with_observation` binds it, and the
    posterior target does so for every trajectory before each step, so ``bn.sample(model, y)``
    runs it with every sampler. Unbound (``observation=None``) the score is the unconditional
    ψ(z) / s_t, the network's prior of clean images.

    **Eq. 14 at sampling.** The paper masks the condition at random (with a probability set by
    p_cond) at every step. Here the score is that random score's expectation,
    keep ψ(z, c) + (1 − keep) ψ(z), with ``keep`` from :func:`keep_probability`: deterministic,
    so it needs no key in ``score(x, t)`` and composes with every integrator and guidance, and
    over many small steps the random switching acts on the trajectory through this mean (its
    fluctuation is of order Δt per step). ``keep`` is not differentiated (``stop_gradient``):
    the random mask has no derivative in x_t either, so DPS and ΠGDM see the Jacobian of the
    mixture at a fixed ``keep``. Training draws the random mask (:func:`draw_condition_mask`).

    Parameters
    ----------
    network : eqx.Module
        ``network(x, t, condition=None, condition_mask=1.0)`` predicting the scaled score.
    sde : AbstractSDE
    shape : tuple of int
        The signal's shape (height, width, channels).
    guidance_weight : float
        ω of eq. 11 (≥ 0; 0: the conditional score alone, one network call with
        ``probabilistic_conditioning=None``).
    probabilistic_conditioning : {"keep", "mask", None}
        How eq. 14's p_cond is read (:func:`keep_probability`); None: always conditioned.
    temperature : float
        T of eq. 14 (the paper's 1).
    distance : {"rms", "l2"}
        The distance in eq. 14 (:func:`conditioning_probability`).
    observation : array, optional
        The bound y (of shape (height, width, network.condition_channels)).
    """

    network: eqx.Module
    sde: AbstractSDE
    shape: tuple[int, ...] = eqx.field(static=True)
    guidance_weight: float = eqx.field(static=True, default=0.0)
    probabilistic_conditioning: str | None = eqx.field(static=True, default="keep")
    temperature: float = eqx.field(static=True, default=1.0)
    distance: str = eqx.field(static=True, default="rms")
    observation: Array | None = None
    needs_observation = True

    def __check_init__(self):
        condition_channels = getattr(self.network, "condition_channels", 0)
        if not condition_channels:
            raise ValueError(
                "network must be conditional (a UNet with condition_channels > 0). "
                f"Got {type(self.network).__name__} with condition_channels={condition_channels}."
            )
        if not (isinstance(self.guidance_weight, int | float) and self.guidance_weight >= 0):
            raise ValueError(
                f"guidance_weight must be a number >= 0. Got {self.guidance_weight!r}."
            )
        if self.probabilistic_conditioning not in CONDITIONING_RULES:
            raise ValueError(
                f"probabilistic_conditioning must be one of {CONDITIONING_RULES}. "
                f"Got {self.probabilistic_conditioning!r}."
            )
        if not (isinstance(self.temperature, int | float) and self.temperature > 0):
            raise ValueError(f"temperature must be a number > 0. Got {self.temperature!r}.")
        if self.distance not in DISTANCES:
            raise ValueError(f"distance must be one of {DISTANCES}. Got {self.distance!r}.")

    @property
    def condition_shape(self) -> tuple[int, ...]:
        """The shape of y: the signal's height and width, the network's condition channels."""
        return tuple(self.shape[:2]) + (self.network.condition_channels,)

    def with_observation(self, observation: Float[Array, "..."]) -> ConditionalScoreNetPrior:
        if jnp.shape(observation) != self.condition_shape:
            raise ValueError(
                f"observation must have shape {self.condition_shape} to condition this prior "
                f"(the signal's height and width, the network's condition channels). "
                f"Got {jnp.shape(observation)}."
            )
        if self.probabilistic_conditioning is not None and self.condition_shape != tuple(
            self.shape
        ):
            raise ValueError(
                "probabilistic_conditioning needs y of the signal's shape (eq. 14 compares x_t "
                f"with y): expected {tuple(self.shape)}. Got {self.condition_shape}; use "
                "probabilistic_conditioning=None."
            )
        return dataclasses.replace(self, observation=jnp.asarray(observation))

    def keep_probability(self, x: Float[Array, "..."]) -> Float[Array, ""]:
        """The probability that y is given to the network at x_t (eq. 14, see the class)."""
        return keep_probability(
            x, self.observation, self.probabilistic_conditioning, self.temperature, self.distance
        )

    def score(self, x: Float[Array, "..."], t: Float[Array, ""]) -> Float[Array, "..."]:
        std = self.sde.marginal_std(t)
        unconditional = None
        if self.observation is None or self.guidance_weight or self.probabilistic_conditioning:
            unconditional = self.network(x, t)
        if self.observation is None:
            return unconditional / std
        conditional = self.network(x, t, self.observation)
        if unconditional is None:
            return conditional / std
        keep = jax.lax.stop_gradient(self.keep_probability(x))
        return guided_score(conditional, unconditional, self.guidance_weight, keep) / std
