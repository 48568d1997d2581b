"""Carry a score prior into a NumPyro model as a differentiable log-prior gradient."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpyro.distributions as dist
from numpyro.distributions import constraints

from bayesnoise.priors.base import AbstractScorePrior

__all__ = ["ScorePriorDistribution"]


class ScorePriorDistribution(dist.Distribution):
    """A NumPyro distribution whose log-density gradient is ``prior.score(value, t)``.

    For priors with a closed-form density (Gaussian ones) the log-density is the real
    log p_t(value), so NUTS runs on the model at ``diffusion_time=0``. For a score network the
    log-density's *value* is 0 (unknown) but its gradient is still the network's score, which
    is all the diffusion kernels use. Second derivatives (Hessian-vector products, needed for
    Tweedie covariances) differentiate through the score, because the gradient is attached with
    ``jax.custom_jvp``.
    """

    pytree_data_fields = ("prior", "diffusion_time")

    def __init__(self, prior: AbstractScorePrior, diffusion_time=0.0, *, validate_args=None):
        if not isinstance(prior, AbstractScorePrior):
            raise TypeError(f"prior must be an AbstractScorePrior. Got {type(prior).__name__}.")
        self.prior = prior
        self.diffusion_time = jnp.asarray(diffusion_time, dtype=jnp.float32)
        super().__init__(batch_shape=(), event_shape=prior.shape, validate_args=validate_args)

    @constraints.dependent_property(is_discrete=False)
    def support(self):
        return constraints.independent(constraints.real, len(self.event_shape))

    def sample(self, key, sample_shape=()):
        keys = jax.random.split(key, sample_shape) if sample_shape else key
        draw = lambda k: self.prior.sample(k, self.diffusion_time)  # noqa: E731
        for _ in sample_shape:
            draw = jax.vmap(draw)
        return draw(keys)

    def log_prob(self, value):
        return _log_prob_with_score(self.prior, value, self.diffusion_time)


def _log_prob_with_score(prior, value, diffusion_time):
    @jax.custom_jvp
    def log_prob(value, diffusion_time):
        closed_form = prior.log_prob(value, diffusion_time)
        return jnp.zeros((), value.dtype) if closed_form is None else closed_form

    @log_prob.defjvp
    def log_prob_jvp(primals, tangents):
        value, diffusion_time = primals
        value_tangent, _ = tangents  # the diffusion time is never differentiated
        score = prior.score(value, diffusion_time)
        return log_prob(value, diffusion_time), jnp.sum(score * value_tangent)

    if value.shape != prior.shape:
        # vmap over leading sample axes that NumPyro may add (e.g. for init or predictive)
        batch_ndim = value.ndim - len(prior.shape)
        fn = lambda v: log_prob(v, diffusion_time)  # noqa: E731
        for _ in range(batch_ndim):
            fn = jax.vmap(fn)
        return fn(value)
    return log_prob(value, diffusion_time)
