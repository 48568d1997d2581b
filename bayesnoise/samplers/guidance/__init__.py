"""Guidance terms: turn prior scores into posterior scores, or apply a data step; one file each."""

from bayesnoise.samplers.guidance.data_consistency import DataConsistency
from bayesnoise.samplers.guidance.dps import DPS
from bayesnoise.samplers.guidance.pigdm import PiGDM
from bayesnoise.samplers.guidance.proximal import Proximal
from bayesnoise.samplers.guidance.pseudo_inverse import PseudoInverse
from bayesnoise.samplers.guidance.unconditional import Unconditional

GUIDANCES = {
    "dps": DPS,
    "pigdm": PiGDM,
    "data_consistency": DataConsistency,
    "pseudo_inverse": PseudoInverse,
    "proximal": Proximal,
    "none": Unconditional,
}
"""Guidance classes by name."""

__all__ = [
    "GUIDANCES",
    "DPS",
    "PiGDM",
    "DataConsistency",
    "PseudoInverse",
    "Proximal",
    "Unconditional",
]
