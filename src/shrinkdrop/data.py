"""Data sets: the UCI-layout loader and scikit-learn's bundled sets.

The UCI layout is the one of Hernandez-Lobato & Adams (2015) and Gal & Ghahramani (2016): a
directory ``<dataset>/data/`` with ``data.txt`` (whitespace-separated numbers, one row per example),
``index_features.txt``, ``index_target.txt`` (0-based columns), ``n_splits.txt``,
``index_train_<k>.txt`` / ``index_test_<k>.txt`` (0-based rows of split ``k``), and the
hyperparameters MC dropout searched: ``n_hidden.txt``, ``n_epochs.txt``, ``dropout_rates.txt``,
``tau_values.txt``. An optional ``<dataset>/reference/`` holds published per-split results, one
number per line (e.g. ``test_ll_100_xepochs_1_hidden_layers.txt``).

Everything is validated when loading, before any work starts. Problems raise
:class:`shrinkdrop.errors.DataError` naming the file and the 1-based line, e.g.
``"data.txt line 12: expected 14 numbers, got 13"`` or
``"index_train_3.txt line 40: index 600 out of range for 506 rows"``. Trailing blank lines are
allowed; a blank line between rows is not (it would make row numbers ambiguous).

No data is downloaded: built-in sets are the ones scikit-learn ships inside its package.

    >>> from shrinkdrop.data import load_builtin
    >>> d = load_builtin("diabetes")
    >>> d.features.shape, len(d.splits)
    ((442, 10), 20)
"""

from __future__ import annotations

import hashlib
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import DataError

__all__ = [
    "Split",
    "UCIData",
    "BUILTIN",
    "load_uci_dir",
    "load_builtin",
    "resolve_data",
    "find_uci_dirs",
    "standardize",
]

#: the files every UCI-layout ``data/`` directory must hold (split files come from n_splits.txt)
REQUIRED_FILES = (
    "data.txt", "index_features.txt", "index_target.txt", "n_splits.txt", "n_hidden.txt",
    "n_epochs.txt", "dropout_rates.txt", "tau_values.txt",
)


@dataclass(frozen=True)
class Split:
    """One train/test split: 0-based row indices into :attr:`UCIData.features`."""

    train: np.ndarray
    test: np.ndarray


@dataclass(frozen=True)
class UCIData:
    """A data set with its fixed splits and the hyperparameter grid of MC dropout.

    Attributes:
        name: data set name (the UCI directory's name, or the built-in name).
        features: inputs, shape ``(N, D)``, float64.
        target: targets, shape ``(N,)``: float64 (regression) or class labels 0..C-1
            (classification, stored as float64 holding integers).
        splits: the train/test splits, in order ``0 .. n_splits - 1``.
        n_hidden: hidden units of the one-hidden-layer network.
        n_epochs: base number of epochs (multiplied by the run's epoch multiplier).
        dropout_rates: the dropout rates MC dropout searched.
        tau_values: the model precisions tau (in the target's original units) it searched.
        task: ``"regression"`` or ``"classification"``.
        n_classes: number of classes (0 for regression).
        reference: published per-split results from ``reference/``: file stem -> values.
        source: where the data came from (a path, or ``builtin:<name>``).
    """

    name: str
    features: np.ndarray
    target: np.ndarray
    splits: tuple[Split, ...]
    n_hidden: int
    n_epochs: int
    dropout_rates: tuple[float, ...]
    tau_values: tuple[float, ...]
    task: str = "regression"
    n_classes: int = 0
    reference: dict[str, np.ndarray] = field(default_factory=dict)
    source: str = ""

    @property
    def n_splits(self) -> int:
        return len(self.splits)

    def fingerprint(self) -> str:
        """SHA-256 (first 16 hex digits) of the numbers that affect results: data, splits, grid."""
        h = hashlib.sha256()
        for arr in (self.features, self.target):
            h.update(np.ascontiguousarray(arr, dtype=np.float64).tobytes())
        for s in self.splits:
            h.update(np.asarray(s.train, dtype=np.int64).tobytes())
            h.update(b"|")
            h.update(np.asarray(s.test, dtype=np.int64).tobytes())
            h.update(b"#")
        h.update(repr((self.n_hidden, self.n_epochs, self.dropout_rates, self.tau_values,
                       self.task, self.n_classes)).encode())
        return h.hexdigest()[:16]


# --------------------------------------------------------------------------------------------
# parsing with file/line-precise errors
# --------------------------------------------------------------------------------------------

def _read_lines(path: Path) -> list[tuple[int, str]]:
    """Non-blank lines with their 1-based numbers; only trailing blank lines are allowed."""
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None
    lines = text.splitlines()
    while lines and not lines[-1].strip():
        lines.pop()
    out = []
    for i, line in enumerate(lines, start=1):
        if not line.strip():
            raise DataError(f"{path.name} line {i}: blank line between rows "
                            f"(only trailing blank lines are allowed) in {path}")
        out.append((i, line))
    return out


def _number(path: Path, lineno: int, token: str) -> float:
    try:
        value = float(token)
    except ValueError:
        raise DataError(f"{path.name} line {lineno}: {token!r} is not a number "
                        f"(in {path})") from None
    if not math.isfinite(value):
        raise DataError(f"{path.name} line {lineno}: {token!r} is not a finite number "
                        f"(in {path})")
    return value


def _read_matrix(path: Path) -> np.ndarray:
    lines = _read_lines(path)
    if not lines:
        raise DataError(f"{path.name}: no rows (in {path})")
    width = None
    rows = []
    for lineno, line in lines:
        tokens = line.split()
        if width is None:
            width = len(tokens)
        elif len(tokens) != width:
            raise DataError(f"{path.name} line {lineno}: expected {width} numbers, got "
                            f"{len(tokens)} (in {path})")
        rows.append([_number(path, lineno, t) for t in tokens])
    return np.asarray(rows, dtype=np.float64)


def _read_column(path: Path) -> list[tuple[int, float]]:
    """One number per line (whitespace-separated numbers on one line are also accepted)."""
    return [(lineno, _number(path, lineno, tok))
            for lineno, line in _read_lines(path) for tok in line.split()]


def _read_indices(path: Path, size: int, what: str) -> np.ndarray:
    out = []
    seen: dict[int, int] = {}
    for lineno, value in _read_column(path):
        if value != int(value):
            raise DataError(f"{path.name} line {lineno}: index {value!r} is not an integer "
                            f"(in {path})")
        idx = int(value)
        if not 0 <= idx < size:
            raise DataError(f"{path.name} line {lineno}: index {idx} out of range for {size} "
                            f"{what} (in {path})")
        if idx in seen:
            raise DataError(f"{path.name} line {lineno}: index {idx} repeats line "
                            f"{seen[idx]} (in {path})")
        seen[idx] = lineno
        out.append(idx)
    return np.asarray(out, dtype=np.int64)


def _read_scalar(path: Path, kind: str) -> float:
    values = _read_column(path)
    if len(values) != 1:
        where = f"line {values[1][0]}: " if len(values) > 1 else ""
        raise DataError(f"{path.name} {where}expected exactly one number, got {len(values)} "
                        f"(in {path})")
    lineno, value = values[0]
    if kind == "posint" and (value != int(value) or value < 1):
        raise DataError(f"{path.name} line {lineno}: expected a positive integer, got "
                        f"{value!r} (in {path})")
    if kind == "index" and (value != int(value) or value < 0):
        raise DataError(f"{path.name} line {lineno}: expected a column index (integer >= 0), "
                        f"got {value!r} (in {path})")
    return value


def _read_grid(path: Path, ok, desc: str) -> tuple[float, ...]:
    values = _read_column(path)
    if not values:
        raise DataError(f"{path.name}: no values (in {path})")
    for lineno, v in values:
        if not ok(v):
            raise DataError(f"{path.name} line {lineno}: expected a value in {desc}, got {v!r} "
                            f"(in {path})")
    return tuple(v for _, v in values)


def _data_dir(path: Path) -> tuple[Path, str]:
    """The ``data/`` directory and the data set name for a data set dir or its ``data/`` dir."""
    if (path / "data").is_dir() and not (path / "data.txt").exists():
        return path / "data", path.name
    if path.name == "data":
        return path, path.resolve().parent.name
    return path, path.resolve().name


def load_uci_dir(path: str | os.PathLike) -> UCIData:
    """Load and validate one data set in the UCI layout.

    Args:
        path: the data set directory (holding ``data/`` and optionally ``reference/``) or its
            ``data/`` directory itself.

    Raises:
        DataError: a file is missing or malformed; the message names the file and line.
    """
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"{path}: not a directory (expected a data set in the UCI layout: "
                        f"<name>/data/data.txt, index_*.txt, ...)")
    ddir, name = _data_dir(path)
    for fname in REQUIRED_FILES:
        if not (ddir / fname).is_file():
            raise DataError(f"{ddir / fname}: file not found (required in the UCI layout)")
    data = _read_matrix(ddir / "data.txt")
    n_rows, n_cols = data.shape
    feat_idx = _read_indices(ddir / "index_features.txt", n_cols, "columns")
    if feat_idx.size == 0:
        raise DataError(f"index_features.txt: no feature columns (in {ddir})")
    target_col = int(_read_scalar(ddir / "index_target.txt", "index"))
    if target_col >= n_cols:
        raise DataError(f"index_target.txt line 1: index {target_col} out of range for {n_cols} "
                        f"columns (in {ddir / 'index_target.txt'})")
    n_splits = int(_read_scalar(ddir / "n_splits.txt", "posint"))
    splits = []
    for k in range(n_splits):
        parts = {}
        for part in ("train", "test"):
            f = ddir / f"index_{part}_{k}.txt"
            if not f.is_file():
                raise DataError(f"{f}: file not found (n_splits.txt says {n_splits} splits)")
            idx = _read_indices(f, n_rows, "rows")
            if idx.size == 0:
                raise DataError(f"{f.name}: split {k} has an empty {part} set (in {f})")
            parts[part] = idx
        if parts["train"].size < 2:
            raise DataError(f"index_train_{k}.txt: split {k} has {parts['train'].size} training "
                            f"row(s); the inner 80/20 validation split needs at least 2 "
                            f"(in {ddir})")
        overlap = np.intersect1d(parts["train"], parts["test"])
        if overlap.size:
            lineno = int(np.nonzero(parts["test"] == overlap[0])[0][0]) + 1
            raise DataError(f"index_test_{k}.txt line {lineno}: row {int(overlap[0])} is also in "
                            f"index_train_{k}.txt (in {ddir})")
        splits.append(Split(parts["train"], parts["test"]))
    reference = {}
    rdir = ddir.parent / "reference"
    if rdir.is_dir():
        for f in sorted(rdir.glob("*.txt")):
            reference[f.stem] = np.asarray([v for _, v in _read_column(f)], dtype=np.float64)
    return UCIData(
        name=name,
        features=data[:, feat_idx],
        target=data[:, target_col].copy(),
        splits=tuple(splits),
        n_hidden=int(_read_scalar(ddir / "n_hidden.txt", "posint")),
        n_epochs=int(_read_scalar(ddir / "n_epochs.txt", "posint")),
        dropout_rates=_read_grid(ddir / "dropout_rates.txt", lambda v: 0 <= v < 1, "[0, 1)"),
        tau_values=_read_grid(ddir / "tau_values.txt", lambda v: v > 0, "(0, inf)"),
        reference=reference,
        source=str(path),
    )


# --------------------------------------------------------------------------------------------
# built-in sets (scikit-learn's bundled files; nothing is downloaded)
# --------------------------------------------------------------------------------------------

#: built-in name -> (scikit-learn loader name, task)
BUILTIN: dict[str, tuple[str, str]] = {
    "diabetes": ("load_diabetes", "regression"),
    "iris": ("load_iris", "classification"),
    "wine": ("load_wine", "classification"),
    "breast_cancer": ("load_breast_cancer", "classification"),
    "digits": ("load_digits", "classification"),
}

BUILTIN_SPLITS = 20
BUILTIN_TEST_FRACTION = 0.1
BUILTIN_SEED = 1


def load_builtin(name: str) -> UCIData:
    """One of scikit-learn's bundled data sets, with 20 fixed 90/10 splits (seed 1).

    Regression sets get MC dropout's default grid (50 hidden units, 40 base epochs, dropout
    rates 0.005, 0.01, 0.05, 0.1) and a tau grid of ``1 / (c * var(y))`` for
    ``c in (0.5, 0.25, 0.1)`` (noise standard deviations of about 70%, 50% and 30% of the
    target's): the UCI files fix tau per data set in the target's units, which a built-in set
    does not have. Classification sets use tau = 1 (it only enters the weight decay).
    """
    if name not in BUILTIN:
        raise DataError(f"unknown built-in data set {name!r}; choose one of "
                        f"{', '.join(BUILTIN)} or give a directory in the UCI layout")
    import sklearn.datasets

    loader, task = BUILTIN[name]
    bunch = getattr(sklearn.datasets, loader)()
    x = np.asarray(bunch.data, dtype=np.float64)
    y = np.asarray(bunch.target, dtype=np.float64)
    n = x.shape[0]
    rng = np.random.default_rng(BUILTIN_SEED)
    n_test = max(1, int(round(BUILTIN_TEST_FRACTION * n)))
    splits = []
    for _ in range(BUILTIN_SPLITS):
        perm = rng.permutation(n)
        splits.append(Split(np.sort(perm[n_test:]), np.sort(perm[:n_test])))
    if task == "regression":
        var = float(np.var(y))
        taus = tuple(float(f"{1.0 / (c * var):.4g}") for c in (0.5, 0.25, 0.1))
        n_classes = 0
    else:
        taus = (1.0,)
        n_classes = int(y.max()) + 1
    return UCIData(
        name=name, features=x, target=y, splits=tuple(splits), n_hidden=50, n_epochs=40,
        dropout_rates=(0.005, 0.01, 0.05, 0.1), tau_values=taus, task=task,
        n_classes=n_classes, source=f"builtin:{name}",
    )


def find_uci_dirs(path: str | os.PathLike) -> list[Path]:
    """Data set directories under ``path``: itself if it is one, else its subdirectories."""
    path = Path(path)
    if not path.is_dir():
        raise DataError(f"path has to be an existing directory, but {path} is "
                        f"{'a file' if path.exists() else 'not there (no such directory)'}")
    if (path / "data.txt").is_file() or (path / "data" / "data.txt").is_file():
        return [path]
    if (path / "data").is_dir():
        return [path]
    subs = sorted(p for p in path.iterdir() if p.is_dir() and (p / "data").is_dir())
    return subs


def resolve_data(name_or_path: str | os.PathLike) -> list[UCIData]:
    """Data sets named by a built-in name, a UCI data set directory, or a directory of them.

    Every data set is loaded and validated before this returns.
    """
    if not isinstance(name_or_path, (str, os.PathLike)):
        raise TypeError(f"name_or_path has to be a data set name or a path, but got "
                        f"{type(name_or_path).__name__}")
    s = str(name_or_path)
    if not s.strip():
        raise DataError("name_or_path has to name a data set or a directory, but got ''")
    if s in BUILTIN and not Path(s).exists():
        return [load_builtin(s)]
    path = Path(s)
    if not path.exists():
        if re.fullmatch(r"[A-Za-z_]+", s):
            raise DataError(f"{s!r} is neither a built-in data set ({', '.join(BUILTIN)}) nor "
                            f"an existing directory")
        raise DataError(f"{path}: no such directory")
    if not path.is_dir():
        raise DataError(f"{path}: not a directory (expected a data set in the UCI layout)")
    dirs = find_uci_dirs(path)
    if not dirs:
        raise DataError(f"{path}: no data set in the UCI layout here (expected data/data.txt or "
                        f"subdirectories holding data/)")
    return [load_uci_dir(d) for d in dirs]


def standardize(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The column means and standard deviations of ``x`` (rows are examples), a zero standard
    deviation (a constant column) replaced by 1: ``(x - mean) / std`` standardises the inputs
    on the rows the statistics come from and leaves constant columns at 0."""
    if not isinstance(x, np.ndarray) or x.dtype.kind not in "fiub":
        raise TypeError(f"x has to be a numeric numpy array, but got {type(x).__name__}")
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"x has to be a non-empty 2-D array (rows x columns), but got shape "
                         f"{x.shape}")
    if not np.isfinite(x).all():
        raise ValueError(f"x has to be finite, but got {int((~np.isfinite(x)).sum())} NaN or "
                         "infinite value(s)")
    mean = x.mean(0)
    std = x.std(0)
    return mean, np.where(std == 0, 1.0, std)
