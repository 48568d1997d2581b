"""Kept as an alias: ``bayesnoise.train`` *is* :mod:`bayesnoise.training` (its former home).

``from bayesnoise.train import train_from_config`` and the other public names keep working,
and so do patches of ``bayesnoise.train.<name>`` (the module object is the same). New code
imports :mod:`bayesnoise.training`.
"""

import sys

from bayesnoise import training

sys.modules[__name__] = training
