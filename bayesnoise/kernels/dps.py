"""Joint DPS: an unconditional reverse Euler–Maruyama step, then a step down the gradient of
the residual norm of the Tweedie estimates (DPS Algorithm 1, extended to (x, n)):

    x_{t-dt} = EM(x_t; s_theta) - zeta_x grad_{x_t} ||y - A x0_hat - B n0_hat||
    n_{t-dt} = EM(n_t; s_phi)   - zeta_n grad_{n_t} ||y - A x0_hat - B n0_hat||

The norm is taken per image (the released code's batch-wide norm makes the step depend on the
batch size). DPS is an approximation: its error against the exact posterior is measured, not
assumed to vanish.
"""

from __future__ import annotations

from bayesnoise.guidance import dps_guidance
from bayesnoise.kernels.base import (
    DiffusionInfo,
    DiffusionState,
    init,
    reverse_euler_maruyama,
    sampling_algorithm,
)

__all__ = ["init", "build_kernel", "as_top_level_api"]


def build_kernel(target):
    """A joint DPS step of ``target``."""

    def kernel(rng_key, state, observation, time_step, step_sizes):
        norm_gradient, scores, residual_norm = dps_guidance(
            target, state.position, observation, state.time
        )
        moved = reverse_euler_maruyama(
            rng_key, state.position, scores, state.time, time_step, target.sde
        )
        position = {
            name: moved[name] - step_sizes.get(name, 1.0) * norm_gradient[name] for name in moved
        }
        return DiffusionState(position, state.time - time_step), DiffusionInfo(residual_norm)

    return kernel


def as_top_level_api(target, observation, *, time_step, start_time=1.0, step_sizes=None):
    """Joint DPS sampling; ``step_sizes`` maps each site to its zeta (default 1.0)."""
    kernel = build_kernel(target)
    return sampling_algorithm(kernel, start_time, observation, time_step, step_sizes or {})
