"""When a trajectory has diverged, judged by the scale of the problem, and which observations
float32 arithmetic can hold at all.

A reverse-diffusion position at time t is a_t x_0 + s_t z: its magnitude is set by the data
(through the observation y and, where a prior records it, its training data's range) and by
the SDE's marginal std s_t. A trajectory whose values leave ``divergence_factor`` times that
scale has run away even if every value is still finite (PiGDM from t0 = 1 with the shipped
networks reaches |x| ~ 4000 on data in [0, 1]); the driver freezes it and flags it in
``sample_stats.diverging``.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["DIVERGENCE_FACTOR", "automatic_divergence_bound", "observation_limit"]

DIVERGENCE_FACTOR = 100.0
"""The automatic bound is this many times the problem's scale (see
:func:`automatic_divergence_bound`)."""

_FLOAT32_MAX = float(np.finfo(np.float32).max)
_OVERFLOW_MARGIN = 1e3


def _prior_data_scale(prior) -> float:
    """max |value| of a prior's data range when the prior records one (``data_range``)."""
    data_range = getattr(prior, "data_range", None)
    if data_range is None:
        return 0.0
    return float(np.max(np.abs(np.asarray(data_range, dtype=np.float64))))


def automatic_divergence_bound(target, observations, start_time: float) -> float:
    """``DIVERGENCE_FACTOR * max(1, max|y|, prior data ranges, s_t0)``.

    Parameters
    ----------
    target : the :class:`~bayesnoise.target.PosteriorTarget` being sampled.
    observations : every observation of the run, ``(num_images, *observation_shape)``.
    start_time : t0; the SDE's marginal std at t0 bounds the noise part of a position.

    Returns
    -------
    The bound on |value| beyond which a trajectory counts as diverged.
    """
    data_scale = float(np.max(np.abs(np.asarray(observations, dtype=np.float64))))
    prior_scale = max((_prior_data_scale(prior) for prior in target.priors.values()), default=0)
    noise_scale = float(target.sde.marginal_std(start_time))
    return DIVERGENCE_FACTOR * max(1.0, data_scale, prior_scale, noise_scale)


def observation_limit(num_values: int) -> float:
    """The largest |y| accepted: the sum of squares of ``num_values`` residuals
    ``_OVERFLOW_MARGIN`` times larger than y still fits in float32
    (``sqrt(float32 max / num_values) / 1000``, 6.6e14 for a 28 x 28 image)."""
    return math.sqrt(_FLOAT32_MAX / max(num_values, 1)) / _OVERFLOW_MARGIN
