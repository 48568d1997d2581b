"""Load a model file: a Python file that defines a top-level NumPyro ``model``.

A model file may also define ``simulate(seed) -> (observation, truth)`` (an embedded example;
``truth`` a dict like ``{"x": ..., "n": ...}``) and ``defaults``, a dict of keyword arguments
for :func:`bayesnoise.sample` (e.g. ``{"sampler": "pigdm", "num_steps": 300}``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

__all__ = ["load_model", "load_model_file"]


def load_model_file(path) -> ModuleType:
    """Import the model file at ``path`` as a module, with clear errors."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file {str(path)!r} does not exist.")
    if path.suffix != ".py":
        raise ValueError(f"model file must be a Python file ending in .py. Got {str(path)!r}.")
    name = f"bayesnoise_model_{path.stem}_{abs(hash(path.resolve()))}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as error:
        raise RuntimeError(
            f"model file {str(path)!r} raised {type(error).__name__} on import: {error}"
        ) from error
    if not callable(getattr(module, "model", None)):
        raise ValueError(
            f"model file {str(path)!r} must define a top-level function named 'model'. "
            f"Got names {sorted(n for n in vars(module) if not n.startswith('_'))}."
        )
    sys.modules[name] = module
    return module


def load_model(path):
    """The ``model`` defined in the model file at ``path`` (imported once, then cached)."""
    return load_model_file(path).model
