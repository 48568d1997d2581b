"""Score-network checkpoints: Equinox-serialised weights behind a JSON header, in one file.

Layout of a checkpoint file (no pickle anywhere)::

    bayesnoise-checkpoint\\n           magic line
    {"format_version": 2, ...}\\n      the header, one line of JSON
    <weights>                          eqx.tree_serialise_leaves: one .npy record per array leaf

so ``head -2 FILE`` shows the header. The header says how to rebuild the network
(``architecture``: ``name`` and ``hyperparameters``), which SDE it was trained under
(``sde``: ``name`` and ``parameters``), on what data (``data``) and how (``training``), and
carries ``weights`` (the storage dtype and the number of parameters) and ``sha256``: the SHA-256
of the rest of the header (canonical JSON) and the weight bytes, so an edited ``beta_max`` or
data shape is caught like a flipped weight bit. Loading checks the checksum before it trusts
the header, rebuilds the skeleton from it, checks every leaf's shape, and raises a
``ValueError`` that names what differs.

Training state for resuming (:mod:`bayesnoise.train`) uses the same layout with
``"kind": "training_state"``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
from pathlib import Path
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import PyTree

from bayesnoise import sde as sde_module
from bayesnoise.atomic import atomic_write_bytes
from bayesnoise.nets import build_network
from bayesnoise.priors.conditional import ConditionalScoreNetPrior
from bayesnoise.priors.score_net import ScoreNetPrior

__all__ = [
    "FORMAT_VERSION",
    "save_checkpoint",
    "load_checkpoint",
    "load_score_prior",
    "load_conditional_score_prior",
    "read_header",
    "header_checksum",
    "sde_to_header",
    "sde_from_header",
    "write_tree",
    "read_tree",
]

FORMAT_VERSION = 2
MAGIC = b"bayesnoise-checkpoint\n"
_STORAGE_DTYPES = ("float32", "float16")
_SDES = {
    cls.__name__: cls
    for cls in (sde_module.VPSDE, sde_module.SubVPSDE, sde_module.VESDE, sde_module.SimpleSDE)
}


# --------------------------------------------------------------------------- low level


def _is_array(leaf: Any) -> bool:
    return isinstance(leaf, (jax.Array, np.ndarray, jax.ShapeDtypeStruct))


def _serialise(tree: PyTree, dtype: str) -> bytes:
    def write_leaf(f, leaf):
        if _is_array(leaf):
            array = np.asarray(leaf)
            if dtype == "float16" and np.issubdtype(array.dtype, np.floating):
                array = array.astype(np.float16)
            np.save(f, array, allow_pickle=False)
        else:
            eqx.default_serialise_filter_spec(f, leaf)

    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, tree, filter_spec=write_leaf)
    return buffer.getvalue()


def _leaf_names(tree: PyTree) -> list[str]:
    paths = jax.tree_util.tree_flatten_with_path(tree, is_leaf=_is_array)[0]
    return [jax.tree_util.keystr(path) for path, leaf in paths if _is_array(leaf)]


def _deserialise(weights: bytes, like: PyTree, source: str) -> PyTree:
    """Read ``weights`` into the structure of ``like``, checking every array leaf's shape."""
    names = iter(_leaf_names(like))
    differences, missing = [], []

    def read_leaf(f, leaf):
        if not _is_array(leaf):
            return eqx.default_deserialise_filter_spec(f, leaf)
        name = next(names)
        try:
            array = np.load(f, allow_pickle=False)
        except (ValueError, EOFError, OSError):
            missing.append(name)
            return jnp.zeros(leaf.shape, leaf.dtype)  # keep going; reported below
        if tuple(array.shape) != tuple(leaf.shape):
            differences.append(f"{name}: expected {tuple(leaf.shape)}, got {tuple(array.shape)}")
            return jnp.zeros(leaf.shape, leaf.dtype)  # keep reading; all differences reported
        return jnp.asarray(array, dtype=leaf.dtype)

    buffer = io.BytesIO(weights)
    tree = eqx.tree_deserialise_leaves(buffer, like, filter_spec=read_leaf)
    if missing:
        raise ValueError(
            f"{source}: the file holds fewer weights than the architecture needs "
            f"({len(missing)} leaves missing, from {missing[0]}): the architecture in the "
            "header does not match."
        )
    if differences:
        shown = "; ".join(differences[:5])
        more = f" (and {len(differences) - 5} more)" if len(differences) > 5 else ""
        raise ValueError(f"{source}: leaf shapes differ: {shown}{more}.")
    leftover = len(weights) - buffer.tell()
    if leftover:
        raise ValueError(
            f"{source}: the file holds more weights than the architecture needs "
            f"({leftover} bytes left over): the architecture in the header does not match."
        )
    return tree


def header_checksum(header: dict, weights: bytes) -> str:
    """SHA-256 of the header (all of it except ``sha256``, as canonical JSON) and the weights.

    Canonical JSON: keys sorted, no spaces, ASCII only; it holds no newline, so the newline
    that separates it from the weight bytes is unambiguous.
    """
    covered = {name: value for name, value in header.items() if name != "sha256"}
    canonical = json.dumps(covered, sort_keys=True, separators=(",", ":"), allow_nan=True)
    return hashlib.sha256(canonical.encode("ascii") + b"\n" + weights).hexdigest()


def write_tree(path: str | Path, tree: PyTree, header: dict, dtype: str = "float32") -> dict:
    """Write ``header`` and the array leaves of ``tree`` to ``path`` atomically.

    The header is completed with ``format_version``, ``weights`` (``dtype``,
    ``num_parameters``) and ``sha256`` (:func:`header_checksum`: the header and the weights),
    and returned as it reads back (JSON types: lists, not tuples).
    """
    if dtype not in _STORAGE_DTYPES:
        raise ValueError(f"dtype must be one of {_STORAGE_DTYPES}. Got dtype={dtype!r}.")
    weights = _serialise(tree, dtype)
    arrays = [leaf for leaf in jax.tree.leaves(tree) if _is_array(leaf)]
    header = {
        "format_version": FORMAT_VERSION,
        **{name: value for name, value in header.items() if name not in ("weights", "sha256")},
        "weights": {
            "dtype": dtype,
            "num_parameters": int(sum(np.size(leaf) for leaf in arrays)),
        },
    }
    header = json.loads(json.dumps(header, allow_nan=True))  # what a reader will see
    header["sha256"] = header_checksum(header, weights)
    text = json.dumps(header, allow_nan=True).encode()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, MAGIC + text + b"\n" + weights)
    return header


def _read_checked(path: Path) -> tuple[dict, bytes]:
    """The header and weight bytes of a checkpoint, after checking its format and checksum."""
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint {path} not found.")
    raw = path.read_bytes()
    if not raw.startswith(MAGIC):
        raise ValueError(
            f"{path} is not a bayesnoise checkpoint: expected it to start with {MAGIC!r}, "
            f"got {raw[: len(MAGIC)]!r}."
        )
    end = raw.find(b"\n", len(MAGIC))
    if end < 0:
        raise ValueError(f"{path}: the header line must end with a newline. Got none.")
    try:
        header = json.loads(raw[len(MAGIC) : end])
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path}: the header line is not valid JSON: {error}") from error
    if not isinstance(header, dict):
        raise ValueError(
            f"{path}: the header must be a JSON object. Got a {type(header).__name__}."
        )
    version = header.get("format_version")
    if version != FORMAT_VERSION:
        why = (
            " (format 1 checksummed only the weights, so its header cannot be verified)"
            if version == 1
            else ""
        )
        raise ValueError(f"{path}: format_version must be {FORMAT_VERSION}. Got {version!r}{why}.")
    weights = raw[end + 1 :]
    expected, actual = header.get("sha256"), header_checksum(header, weights)
    if expected != actual:
        raise ValueError(
            f"{path}: checksum mismatch: header says {expected}, file has {actual}. The "
            "checksum covers the header and the weights: the file was edited or damaged "
            "after it was written."
        )
    return header, weights


def read_header(path: str | Path) -> dict:
    """The JSON header of a checkpoint (format and checksum checked), without building a network."""
    return _read_checked(Path(path))[0]


def read_tree(path: str | Path, like: PyTree) -> tuple[PyTree, dict]:
    """Read a file written by :func:`write_tree` into the structure of ``like``.

    ``like`` may hold ``jax.ShapeDtypeStruct`` leaves (from ``eqx.filter_eval_shape``). Checks
    the checksum (header and weights), the number of leaves and every leaf's shape; floating
    weights stored as float16 come back in ``like``'s dtype.
    """
    path = Path(path)
    header, weights = _read_checked(path)
    return _deserialise(weights, like, str(path)), header


# --------------------------------------------------------------------------- SDEs


def sde_to_header(sde: sde_module.AbstractSDE) -> dict:
    """``{"name": class name, "parameters": {field: value}}`` for a bayesnoise SDE."""
    name = type(sde).__name__
    if name not in _SDES:
        raise ValueError(f"sde must be one of {sorted(_SDES)}. Got {name}.")
    return {
        "name": name,
        "parameters": {f.name: float(getattr(sde, f.name)) for f in dataclasses.fields(sde)},
    }


def sde_from_header(entry: dict) -> sde_module.AbstractSDE:
    """The SDE described by a header's ``sde`` entry."""
    try:
        cls = _SDES[entry["name"]]
        return cls(**entry.get("parameters", {}))
    except (KeyError, TypeError) as error:
        raise ValueError(
            f"sde header entry must be {{'name': one of {sorted(_SDES)}, 'parameters': {{...}}}}. "
            f"Got {entry!r}."
        ) from error


# --------------------------------------------------------------------------- networks


def save_checkpoint(
    path: str | Path, network: eqx.Module, header: dict, *, dtype: str = "float32"
) -> dict:
    """Save a score network and its header in one file, atomically.

    Parameters
    ----------
    path : str or Path
        Destination (conventionally ``*.eqx``).
    network : eqx.Module
        A network from :mod:`bayesnoise.nets` (it must have ``hyperparameters``).
    header : dict
        JSON-serialisable metadata: ``sde`` (see :func:`sde_to_header`), ``data``,
        ``training``... ``architecture`` is filled in from the network.
    dtype : {"float32", "float16"}
        Storage dtype of floating weights (loaded back as float32).

    Returns
    -------
    dict
        The complete header as written.
    """
    from bayesnoise.nets import architecture_name

    if "sde" not in header:
        raise ValueError("header must have an 'sde' entry (see sde_to_header). Got none.")
    header = {
        "kind": "score_network",
        "architecture": {
            "name": architecture_name(network),
            "hyperparameters": network.hyperparameters,
        },
        **{k: v for k, v in header.items() if k not in ("architecture", "weights")},
    }
    return write_tree(path, network, header, dtype)


def load_checkpoint(path: str | Path, like: eqx.Module | None = None) -> tuple[eqx.Module, dict]:
    """Load a network saved by :func:`save_checkpoint`.

    Parameters
    ----------
    path : str or Path
        The checkpoint file.
    like : eqx.Module, optional
        A network whose structure the weights must fit; by default it is rebuilt from the
        header's ``architecture``.

    Returns
    -------
    network, header

    Raises
    ------
    ValueError
        If the checksum of the header and weights does not match ("checksum mismatch: header
        says …, file has …"), or the weights do not fit the architecture ("leaf shapes
        differ: …").
    """
    path = Path(path)
    header, weights = _read_checked(path)
    if like is None:
        try:
            architecture = header["architecture"]
            name, hyperparameters = architecture["name"], architecture["hyperparameters"]
        except (KeyError, TypeError) as error:
            raise ValueError(
                f"{path}: header must have architecture.name and architecture.hyperparameters."
            ) from error
        like = eqx.filter_eval_shape(
            lambda: build_network(name, hyperparameters, key=jax.random.key(0))
        )
    return _deserialise(weights, like, str(path)), header


def load_score_prior(path: str | Path) -> ScoreNetPrior | ConditionalScoreNetPrior:
    """A :class:`~bayesnoise.priors.ScoreNetPrior` from a checkpoint (SDE, shape: its header).

    A conditional network (``condition_channels`` in its architecture) gives a
    :class:`~bayesnoise.priors.ConditionalScoreNetPrior` with its default guidance; choose
    the guidance with :func:`load_conditional_score_prior`.

    Examples
    --------
    >>> prior = load_score_prior(assets.path("fashion_unet.eqx"))
    >>> prior.score(x, 0.5)  # x of shape prior.shape
    """
    network, header = load_checkpoint(path)
    if getattr(network, "condition_channels", 0):
        return _conditional_prior(path, network, header, {})
    shape = _data_shape(path, header)
    return ScoreNetPrior(network=network, sde=sde_from_header(header.get("sde")), shape=shape)


def load_conditional_score_prior(
    path: str | Path,
    *,
    guidance_weight: float = 0.0,
    probabilistic_conditioning: str | None = "keep",
    temperature: float = 1.0,
    distance: str = "rms",
) -> ConditionalScoreNetPrior:
    """A :class:`~bayesnoise.priors.ConditionalScoreNetPrior` from a conditional checkpoint,
    with classifier-free guidance weight ω (eq. 11) and probabilistic conditioning (eq. 14).

    Examples
    --------
    >>> prior = load_conditional_score_prior("conditional_digits.eqx", guidance_weight=1.0)
    """
    network, header = load_checkpoint(path)
    if not getattr(network, "condition_channels", 0):
        raise ValueError(
            f"{path} must hold a conditional network (architecture with condition_channels). "
            "Got an unconditional one; load it with load_score_prior."
        )
    options = {
        "guidance_weight": guidance_weight,
        "probabilistic_conditioning": probabilistic_conditioning,
        "temperature": temperature,
        "distance": distance,
    }
    return _conditional_prior(path, network, header, options)


def _conditional_prior(path, network, header, options) -> ConditionalScoreNetPrior:
    return ConditionalScoreNetPrior(
        network=network,
        sde=sde_from_header(header.get("sde")),
        shape=_data_shape(path, header),
        **options,
    )


def _data_shape(path, header) -> tuple[int, ...]:
    """The signal shape a checkpoint's header records (``data.shape``)."""
    try:
        shape = tuple(int(s) for s in header["data"]["shape"])
    except (KeyError, TypeError, ValueError) as error:
        raise ValueError(
            f"{path}: header must have data.shape, a list of integers. Got {header.get('data')!r}."
        ) from error
    return shape
