"""A learned prior: an Equinox network that estimates the diffused score."""

from __future__ import annotations

import equinox as eqx
from jaxtyping import Array, Float

from bayesnoise.priors.base import AbstractScorePrior
from bayesnoise.sde import AbstractSDE

__all__ = ["ScoreNetPrior"]


class ScoreNetPrior(AbstractScorePrior):
    """score(x, t) = network(x, t) / s_t, with s_t the SDE's marginal std.

    The network predicts the *scaled* score s_t grad log p_t(x) = -E[noise | x_t], which is what
    denoising score matching with the loss ||network(a_t x_0 + s_t z, t) + z||^2 trains.
    With ``time_conditioned=False`` the network is called as ``network(x)``, the form of the
    paper's released NCSNv2 code (score = net(x) / std(t)).
    """

    network: eqx.Module
    sde: AbstractSDE
    shape: tuple[int, ...] = eqx.field(static=True)
    time_conditioned: bool = eqx.field(static=True, default=True)

    def score(self, x: Float[Array, "..."], t: Float[Array, ""]) -> Float[Array, "..."]:
        scaled_score = self.network(x, t) if self.time_conditioned else self.network(x)
        return scaled_score / self.sde.marginal_std(t)
