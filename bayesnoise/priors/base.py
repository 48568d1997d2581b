"""The abstract score prior: the one thing a sampler needs from a prior is its diffused score."""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
from jaxtyping import Array, Float, PRNGKeyArray

from bayesnoise.sde import AbstractSDE

__all__ = ["AbstractScorePrior"]


class AbstractScorePrior(eqx.Module):
    """A prior p(x) known through the score of its diffused marginal p_t (under ``sde``).

    ``score(x, t)`` is the gradient of log p_t(x) for ONE unbatched signal of ``shape``.
    Priors with a closed-form density also implement ``log_prob`` and ``sample``; these make a
    model runnable under NUTS (at t = 0) and give exact references in tests.

    A prior whose score also depends on the observation y (a network conditioned on the noisy
    image, :class:`~bayesnoise.priors.ConditionalScoreNetPrior`) sets ``needs_observation``
    and returns from ``with_observation(y)`` a copy bound to y; the posterior target binds
    each trajectory's y into such priors before every step (:mod:`bayesnoise.target`).
    """

    shape: eqx.AbstractVar[tuple[int, ...]]
    sde: eqx.AbstractVar[AbstractSDE]
    needs_observation: ClassVar[bool] = False

    def with_observation(self, observation: Float[Array, "..."]) -> AbstractScorePrior:
        """This prior with the observation y bound in (unchanged unless ``needs_observation``)."""
        return self

    @abc.abstractmethod
    def score(self, x: Float[Array, "..."], t: Float[Array, ""]) -> Float[Array, "..."]:
        """The diffused score grad_x log p_t(x)."""

    def log_prob(self, x: Float[Array, "..."], t: Float[Array, ""]) -> Float[Array, ""] | None:
        """log p_t(x), or None when the prior has no closed-form density (a score network)."""
        return None

    def sample(self, key: PRNGKeyArray, t: Float[Array, ""]) -> Float[Array, "..."]:
        """A draw from p_t; only priors with a closed form can do this directly."""
        raise NotImplementedError(
            f"{type(self).__name__} cannot be sampled directly; "
            "draw from it with bayesnoise.sample on a model without observation."
        )
