"""The files shipped inside the package: the trained score priors and the held-out test set.

They are package data (``bayesnoise/assets/``), found through :mod:`importlib.resources`, so
an editable install, a wheel installed anywhere and a checkout on ``sys.path`` all find them
the same way. Model files and analyses name them with :func:`path`::

    from bayesnoise import assets
    signal_prior = load_score_prior(assets.path("fashion_unet.eqx"))

Shipped: the score priors ``fashion_unet.eqx`` (Fashion-MNIST), ``digits_unet.eqx`` (MNIST
digits) and ``sine_unet.eqx`` (sinusoidal noise); the baselines' networks ``fashion_dcgan.eqx``
(the GAN's generator), ``fashion_flow.eqx`` and ``digits_flow.eqx`` (the flows of Whang et al.'s
MAP); ``conditional_digits_unet.eqx``, ``conditional_gaussian_unet.eqx`` and
``conditional_inpaint_unet.eqx`` (U-Nets conditioned on y, Iyer et al., for digits on clothing,
Gaussian denoising and missing pixels: ``models/conditional_*.py``); and ``testset.npz`` (read
by :func:`bayesnoise.data.load_testset`).
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

__all__ = ["directory", "names", "path"]

_SUFFIXES = (".eqx", ".npz")


def directory() -> Path:
    """The folder that holds the shipped files (where ``analyses/`` scripts write them)."""
    folder = resources.files(__name__)
    if not isinstance(folder, Path):  # e.g. imported from a zip archive
        raise RuntimeError(
            f"bayesnoise's assets must be files on disk; the package was imported from "
            f"{folder!r}. Install it with pip (a wheel unpacks to disk)."
        )
    return folder


def names() -> list[str]:
    """The shipped files, sorted: ``["digits_unet.eqx", ..., "testset.npz"]``."""
    return sorted(p.name for p in directory().iterdir() if p.suffix in _SUFFIXES)


def path(name: str) -> Path:
    """The path of the shipped file ``name``, e.g. ``path("fashion_unet.eqx")``.

    Raises
    ------
    FileNotFoundError
        If no such file is shipped; the message lists those that are.
    """
    found = directory() / name
    if not found.is_file():
        raise FileNotFoundError(
            f"name must be one of the shipped assets {names()}. Got {name!r} "
            f"(looked in {directory()})."
        )
    return found
