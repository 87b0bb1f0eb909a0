"""The UCI-layout loader and the built-in sets: validation errors name the file and line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from shrinkdrop.data import BUILTIN, load_builtin, load_uci_dir, resolve_data
from shrinkdrop.errors import DataError


def make_uci(root: Path, name: str = "toy", n: int = 30, d: int = 3, n_splits: int = 2,
             seed: int = 0, reference: bool = True) -> Path:
    """A tiny synthetic data set in the UCI layout (same files as ../shared/data/uci)."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d))
    y = x @ rng.normal(size=d) + 0.1 * rng.normal(size=n)
    ddir = root / name / "data"
    ddir.mkdir(parents=True)
    np.savetxt(ddir / "data.txt", np.column_stack([x, y]), fmt="%.6f")
    (ddir / "index_features.txt").write_text("".join(f"{i}\n" for i in range(d)))
    (ddir / "index_target.txt").write_text(f"{d}\n")
    (ddir / "n_splits.txt").write_text(f"{n_splits}\n")
    (ddir / "n_hidden.txt").write_text("4\n")
    (ddir / "n_epochs.txt").write_text("2\n")
    (ddir / "dropout_rates.txt").write_text("0.01\n0.1\n")
    (ddir / "tau_values.txt").write_text("1.0\n10.0\n")
    for k in range(n_splits):
        perm = rng.permutation(n)
        n_test = n // 5
        (ddir / f"index_train_{k}.txt").write_text("".join(f"{i}\n" for i in perm[n_test:]))
        (ddir / f"index_test_{k}.txt").write_text("".join(f"{i}\n" for i in perm[:n_test]))
    if reference:
        rdir = root / name / "reference"
        rdir.mkdir()
        (rdir / "test_ll_100_xepochs_1_hidden_layers.txt").write_text(
            "".join(f"{-1.0 - 0.1 * k}\n" for k in range(n_splits)))
        (rdir / "test_MC_rmse_100_xepochs_1_hidden_layers.txt").write_text(
            "".join(f"{0.5 + 0.1 * k}\n" for k in range(n_splits)))
    return root / name


def test_load_valid(tmp_path):
    d = load_uci_dir(make_uci(tmp_path))
    assert d.name == "toy"
    assert d.features.shape == (30, 3) and d.target.shape == (30,)
    assert d.n_splits == 2 and d.n_hidden == 4 and d.n_epochs == 2
    assert d.dropout_rates == (0.01, 0.1) and d.tau_values == (1.0, 10.0)
    assert len(d.splits[0].train) == 24 and len(d.splits[0].test) == 6
    assert set(d.reference) == {"test_ll_100_xepochs_1_hidden_layers",
                                "test_MC_rmse_100_xepochs_1_hidden_layers"}
    # the data/ directory itself is accepted too, with the same name and numbers
    d2 = load_uci_dir(tmp_path / "toy" / "data")
    assert d2.name == "toy" and d2.fingerprint() == d.fingerprint()


def test_trailing_blank_lines_are_fine(tmp_path):
    root = make_uci(tmp_path)
    f = root / "data" / "data.txt"
    f.write_text(f.read_text() + "\n\n   \n")
    g = root / "data" / "index_test_0.txt"
    g.write_text(g.read_text() + "\n")
    assert load_uci_dir(root).features.shape == (30, 3)


def _edit(path: Path, lineno: int, new: str | None):
    lines = path.read_text().splitlines()
    if new is None:
        del lines[lineno - 1]
    else:
        lines[lineno - 1] = new
    path.write_text("\n".join(lines) + "\n")


@pytest.mark.parametrize("file,lineno,new,message", [
    ("data.txt", 12, "1.0 2.0 3.0", "data.txt line 12: expected 4 numbers, got 3"),
    ("data.txt", 5, "1.0 abc 3.0 4.0", "data.txt line 5: 'abc' is not a number"),
    ("data.txt", 7, "1.0 nan 3.0 4.0", "data.txt line 7: 'nan' is not a finite number"),
    ("data.txt", 3, "", "data.txt line 3: blank line between rows"),
    ("index_train_1.txt", 4, "600", "index_train_1.txt line 4: index 600 out of range for 30 "
                                    "rows"),
    ("index_test_0.txt", 2, "-1", "index_test_0.txt line 2: index -1 out of range"),
    ("index_test_0.txt", 2, "2.5", "index_test_0.txt line 2: index 2.5 is not an integer"),
    ("index_features.txt", 1, "7", "index_features.txt line 1: index 7 out of range for 4 "
                                   "columns"),
    ("index_target.txt", 1, "9", "index_target.txt line 1: index 9 out of range for 4 columns"),
    ("n_splits.txt", 1, "0", "n_splits.txt line 1: expected a positive integer"),
    ("n_splits.txt", 1, "3", "index_train_2.txt: file not found"),
    ("dropout_rates.txt", 2, "1.5", "dropout_rates.txt line 2: expected a value in [0, 1)"),
    ("tau_values.txt", 1, "-1", "tau_values.txt line 1: expected a value in (0, inf)"),
])
def test_bad_files_name_file_and_line(tmp_path, file, lineno, new, message):
    root = make_uci(tmp_path)
    _edit(root / "data" / file, lineno, new)
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")
                       .replace("[", r"\[")):
        load_uci_dir(root)


def test_empty_split_and_missing_file(tmp_path):
    root = make_uci(tmp_path)
    (root / "data" / "index_test_1.txt").write_text("\n")
    with pytest.raises(DataError, match="index_test_1.txt: split 1 has an empty test set"):
        load_uci_dir(root)
    (root / "data" / "tau_values.txt").unlink()
    with pytest.raises(DataError, match="tau_values.txt: file not found"):
        load_uci_dir(root)


def test_overlapping_split(tmp_path):
    root = make_uci(tmp_path)
    train = (root / "data" / "index_train_0.txt").read_text().split()
    _edit(root / "data" / "index_test_0.txt", 3, train[0])
    with pytest.raises(DataError, match=rf"index_test_0.txt line 3: row {train[0]} is also in"):
        load_uci_dir(root)


def test_resolve(tmp_path):
    make_uci(tmp_path, "a")
    make_uci(tmp_path, "b", seed=1)
    assert [d.name for d in resolve_data(tmp_path)] == ["a", "b"]
    assert [d.name for d in resolve_data(tmp_path / "a")] == ["a"]
    with pytest.raises(DataError, match="no such directory"):
        resolve_data(tmp_path / "missing")
    with pytest.raises(DataError, match="neither a built-in data set"):
        resolve_data("nosuchset")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="no data set in the UCI layout"):
        resolve_data(empty)


@pytest.mark.parametrize("name", sorted(BUILTIN))
def test_builtin(name):
    d = load_builtin(name)
    assert d.n_splits == 20
    for s in d.splits[:3]:
        assert len(np.intersect1d(s.train, s.test)) == 0
        assert len(s.train) + len(s.test) == d.features.shape[0]
    # deterministic splits
    assert np.array_equal(load_builtin(name).splits[5].test, d.splits[5].test)
    assert (d.task == "classification") == (d.n_classes > 0)


@pytest.mark.skipif(not Path("/work/shared/data/uci/bostonHousing").is_dir(),
                    reason="shared UCI data not present")
def test_shared_boston():
    d = load_uci_dir("/work/shared/data/uci/bostonHousing")
    assert d.features.shape == (506, 13) and d.n_splits == 20
    assert len(d.reference["test_ll_100_xepochs_1_hidden_layers"]) == 20


def test_standardize_constant_column_and_statistics():
    """The one standardisation of the experiments: population mean and std per column, a
    constant column divided by 1 (left at 0, never NaN)."""
    from shrinkdrop.data import standardize

    x = np.array([[1.0, 5.0, 2.0], [3.0, 5.0, 4.0], [5.0, 5.0, 9.0]])
    mu, sd = standardize(x)
    assert np.array_equal(mu, x.mean(0))
    assert sd[1] == 1.0 and np.array_equal(sd[[0, 2]], x.std(0)[[0, 2]])
    z = (x - mu) / sd
    assert np.all(np.isfinite(z)) and np.all(z[:, 1] == 0)
    assert np.allclose(z[:, [0, 2]].mean(0), 0) and np.allclose(z[:, [0, 2]].std(0), 1)
