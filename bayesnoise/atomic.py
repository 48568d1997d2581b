"""Atomic file writing: a temporary file in the destination's folder, renamed into place.

Every file bayesnoise writes (checkpoints, ``posterior.nc``, ``summary.json``, the report)
goes through :func:`atomic_path`, so a reader sees either the old file or the complete new one,
never half of it, and a failure leaves nothing behind. The file gets the mode an ordinary
``open(path, "w")`` would give it, ``0o666 & ~umask`` (:func:`tempfile.mkstemp` alone creates
``0o600``).
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_path", "atomic_write_bytes", "default_file_mode", "writable_directory"]


def default_file_mode() -> int:
    """``0o666 & ~umask``: the mode ``open(path, "w")`` gives a new file."""
    umask = os.umask(0)  # the only portable way to read the umask is to set it
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path``.

    The temporary file exists (empty) when the block starts; the block writes it by name
    (e.g. ``tree.to_netcdf(temporary)``). If the block raises, the temporary file is removed
    and ``path`` is left as it was.

    Parameters
    ----------
    path : str or Path
        The destination. Its folder must exist.

    Examples
    --------
    >>> with atomic_path("out/posterior.nc") as temporary:
    ...     tree.to_netcdf(temporary, engine="h5netcdf")
    """
    path = Path(path)
    handle, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    temporary = Path(name)
    try:
        yield temporary
        os.chmod(temporary, default_file_mode())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (flushed to disk before the rename).

    Parameters
    ----------
    path : str or Path
        The destination. Its folder must exist.
    data : bytes
        The complete content.

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    with atomic_path(path) as temporary, open(temporary, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    return path


def writable_directory(path: str | Path, role: str = "output directory") -> Path:
    """Create ``path`` if needed and check it is a writable directory, before any work; the
    messages name it by ``role`` (e.g. ``"--out: folder"``)."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise OSError(f"{role} {str(path)!r} cannot be created: {error}") from error
    if not os.access(path, os.W_OK):
        raise PermissionError(f"{role} {str(path)!r} is not writable.")
    return path
