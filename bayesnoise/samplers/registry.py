"""Named samplers: the compositions this package ships, and ``sampler()`` to build any other."""

from __future__ import annotations

from bayesnoise.samplers.guidance import GUIDANCES
from bayesnoise.samplers.integrators import INTEGRATORS
from bayesnoise.samplers.sampler import Sampler

__all__ = ["SAMPLERS", "sampler", "get_sampler", "RENAMED"]

_COMPOSITIONS = {
    # name: (integrator, guidance, default overrides, what it is)
    "pigdm": ("euler_maruyama", "pigdm", {}, "reverse Euler–Maruyama with PiGDM guidance"),
    "predictor_corrector": (
        "predictor_corrector",
        "pigdm",
        {},
        "Langevin corrector + Euler–Maruyama predictor, PiGDM guidance",
    ),
    "annealed_langevin": ("annealed_langevin", "pigdm", {}, "annealed Langevin, PiGDM guidance"),
    "dps": ("euler_maruyama", "dps", {}, "joint DPS with reverse Euler–Maruyama"),
    "data_consistency": (
        "euler_maruyama",
        "data_consistency",
        {},
        "the paper's Algorithm 1 (the authors' 'projection')",
    ),
    "pseudo_inverse": (
        "euler_maruyama",
        "pseudo_inverse",
        {},
        "pseudo-inverse projection onto the diffused y",
    ),
    "ddim_dps": ("ddim", "dps", {}, "DDIM(eta) with DPS guidance"),
    "ddim_pigdm": ("ddim", "pigdm", {}, "DDIM(eta) with PiGDM guidance (PiGDM's own sampler)"),
    "ddpm_pigdm": ("ddim", "pigdm", {"eta": 1.0}, "ancestral (DDPM) steps with PiGDM guidance"),
    "diffpir": ("ddim", "proximal", {}, "DiffPIR: DDIM(eta) with a proximal data step"),
    "heun_pigdm": ("heun", "pigdm", {}, "Heun probability-flow steps with PiGDM guidance"),
    "heun_proximal": ("heun", "proximal", {}, "Heun probability-flow steps, proximal guidance"),
}

RENAMED = {
    "projection": "'projection' was the pseudo-inverse step and is now 'pseudo_inverse'; the "
    "authors' 'projection' guidance is the paper's Algorithm 1, 'data_consistency'",
}


def sampler(integrator: str, guidance: str = "none", name: str | None = None, **defaults):
    """Compose an integrator and a guidance by name, e.g. ``sampler("ddim", guidance="dps")``.

    Keyword arguments override option defaults of the composition (e.g. ``eta=1.0``).
    """
    if integrator not in INTEGRATORS:
        raise ValueError(f"integrator must be one of {sorted(INTEGRATORS)}. Got {integrator!r}.")
    if guidance not in GUIDANCES:
        raise ValueError(f"guidance must be one of {sorted(GUIDANCES)}. Got {guidance!r}.")
    built = Sampler(
        INTEGRATORS[integrator](),
        GUIDANCES[guidance](),
        name or f"{integrator}_{guidance}",
        tuple(sorted(defaults.items())),
    )
    known = {**built.integrator.option_defaults, **built.guidance.option_defaults}
    unknown = sorted(set(defaults) - set(known))
    if unknown:
        raise ValueError(
            f"sampler {built.name!r} does not take option(s) {unknown}. "
            f"Valid options: {', '.join(sorted(known)) or 'none'}."
        )
    return built


SAMPLERS: dict[str, Sampler] = {
    name: sampler(integrator, guidance, name, **defaults)
    for name, (integrator, guidance, defaults, _) in _COMPOSITIONS.items()
}
"""The named samplers (name -> :class:`Sampler`)."""

DESCRIPTIONS = {name: description for name, (*_, description) in _COMPOSITIONS.items()}


def get_sampler(name_or_sampler) -> Sampler:
    """A :class:`Sampler` from a name in :data:`SAMPLERS` (or a Sampler, unchanged)."""
    if isinstance(name_or_sampler, Sampler):
        return name_or_sampler
    if name_or_sampler in RENAMED:
        raise ValueError(f"sampler {name_or_sampler!r} was renamed: {RENAMED[name_or_sampler]}.")
    if name_or_sampler not in SAMPLERS:
        raise ValueError(
            f"sampler must be one of {sorted(SAMPLERS)} or a bayesnoise.samplers.Sampler. "
            f"Got sampler={name_or_sampler!r}."
        )
    return SAMPLERS[name_or_sampler]
