"""Pieces the guidance terms share: the data residual of Tweedie's estimates."""

from __future__ import annotations

import jax.numpy as jnp

__all__ = ["residual_norm"]


def residual_norm(target, denoised, observation):
    """||y - E[y | x0_hat, n0_hat]||: the norm of the data residual of Tweedie's estimates."""
    return jnp.linalg.norm(observation - target.predicted_observation(denoised))
