"""The README's UCI table: selected configuration and MC dropout (bernoulli-mc) vs the reference.

Reads every ``<results>/<dataset>/results.csv`` written by ``shrinkdrop uci`` and the data set's
``reference/`` files (MC dropout's published per-split results) from ``--data``, and prints a
Markdown table over the splits that were run (the reference restricted to the same splits):

    python benchmarks/uci_table.py --results results/uci100 --data ../shared/data/uci
    python benchmarks/uci_table.py --results results/uci100 --data ../shared/data/uci --by-method
    python benchmarks/uci_table.py --results results/uci100 --data ../shared/data/uci \
        --write README.md        # replaces the lines between <!-- uci-table --> markers
    python benchmarks/uci_table.py --results results/uci100 --data ../shared/data/uci \
        --by-method --write docs/uci.md --marker uci-by-method

Columns: splits run; methods run (the selection is among them); test LL and MC RMSE (mean ±
standard error over those splits) of the row selected on validation, of bernoulli-mc (MC
dropout, our reproduction) and of the reference;
"Δ LL, paired" = mean ± standard error over splits of (selected - reference) test LL; "LL win" =
the selected mean test LL is above the reference mean; "RMSE ok" = the selected
mean RMSE is at most the reference mean plus one reference standard error.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import numpy as np

from shrinkdrop.experiments.stats import decimals as _decimals
from shrinkdrop.experiments.stats import mean_se as _mean_se
from shrinkdrop.experiments.stats import pm as _pm
from shrinkdrop.experiments.uci.summary import is_skipped as _is_skipped

LL_DIGITS = 3  # the table's LL columns keep three decimals (summary.md follows the SE)


def _ref(data: Path, stem: str):
    files = sorted((data / "reference").glob(f"{stem}_100_xepochs_1_hidden_layers.txt"))
    if not files:
        return None
    return np.loadtxt(files[0], ndmin=1)


def _standard_splits(data: Path) -> int | None:
    """The data set's number of standard splits (``data/n_splits.txt``), None if not stated."""
    from shrinkdrop.data import _read_scalar  # the loader's own reader and its errors

    f = data / "data" / "n_splits.txt"
    return int(_read_scalar(f, "posint")) if f.exists() else None


def _read(results: Path) -> dict[str, list[dict]]:
    """``{dataset: rows}`` of every ``results/<dataset>/results.csv``, skipped units left out."""
    out: dict[str, list[dict]] = {}
    for d in sorted(p for p in results.iterdir() if (p / "results.csv").exists()):
        with open(d / "results.csv", newline="") as fh:
            for r in csv.DictReader(fh):
                if not _is_skipped(r):
                    out.setdefault(r["dataset"], []).append(r)
    return out


def table(results: Path, data_root: Path) -> str:
    lines = ["| data set | splits | epochs | methods | selected LL | MC dropout (ours) LL | "
             "reference LL | Δ LL, paired | LL win | selected RMSE | MC dropout (ours) RMSE | "
             "reference RMSE | RMSE ok |", "|" + "---|" * 13]
    wins = oks = n = 0
    found = _read(results)
    # every data set of the data root counts: one not run is a row of its own, never a win
    names = sorted(set(found) | {d.name for d in data_root.iterdir() if (d / "data").is_dir()})
    for name in names:
        rows = found.get(name)
        n += 1
        if rows is None:
            lines.append(f"| {name} | 0 | | not run | | | | | no | | | | no |")
            continue
        standard = _standard_splits(data_root / name)
        ref_ll, ref_rmse = _ref(data_root / name, "test_ll"), _ref(data_root / name, "test_MC_rmse")
        sel = {int(r["split"]): r for r in rows if r["selected"] == "1"}
        mc = {int(r["split"]): r for r in rows if r["method"] == "bernoulli-mc"}
        splits = sorted(sel)
        methods = sorted({r["method"] for r in rows})
        epochs = sorted({r["epochs"] for r in rows})
        s_ll = _mean_se([float(sel[k]["test_ll"]) for k in splits])
        s_rm = _mean_se([float(sel[k]["test_rmse"]) for k in splits])
        b_ll = _mean_se([float(mc[k]["test_ll"]) for k in splits if k in mc])
        b_rm = _mean_se([float(mc[k]["test_rmse"]) for k in splits if k in mc])
        r_ll = _mean_se([ref_ll[k] for k in splits]) if ref_ll is not None else (math.nan,) * 2
        r_rm = _mean_se([ref_rmse[k] for k in splits]) if ref_rmse is not None else (math.nan,) * 2
        diff = _mean_se([float(sel[k]["test_ll"]) - ref_ll[k] for k in splits]) \
            if ref_ll is not None else (math.nan,) * 2
        partial = standard is not None and len(splits) < standard
        # a set run on only some of its standard splits is shown but never counted as met
        win = s_ll[0] > r_ll[0] and not partial
        ok = s_rm[0] <= r_rm[0] + (r_rm[1] if math.isfinite(r_rm[1]) else 0.0) and not partial
        wins += win
        oks += ok
        digits = _decimals(*r_rm)  # RMSE: two significant figures of the SE
        lines.append(
            f"| {name} | {len(splits)}{f' of {standard} (partial)' if partial else ''} | "
            f"{'/'.join(epochs)} | {', '.join(methods)} | "
            f"{_pm(*s_ll, LL_DIGITS)} | {_pm(*b_ll, LL_DIGITS)} | {_pm(*r_ll, LL_DIGITS)} | "
            f"{_pm(*diff, LL_DIGITS)} | {'yes' if win else 'no'} | "
            f"{_pm(*s_rm, digits)} | {_pm(*b_rm, digits)} | {_pm(*r_rm, digits)} | "
            f"{'yes' if ok else 'no'} |")
    lines.append("")
    lines.append(f"Selected beats the reference test LL on {wins}/{n} data sets; RMSE within one "
                 f"reference standard error on {oks}/{n} (a data set not run, or run on only some "
                 f"of its standard splits, counts as not met).")
    return "\n".join(lines)


def paired_table(base: Path, other: Path, data_root: Path, labels: tuple[str, str],
                 methods: tuple[str, str] = ("bernoulli-mc", "bernoulli-mc")) -> str:
    """Method ``methods[0]`` of folder ``base`` against ``methods[1]`` of folder ``other`` on
    their common splits, paired, beside the reference: e.g. MC dropout with two weight
    initialisations (two folders), or two methods of one folder."""
    from scipy import stats

    def by_split(folder, method):
        return {name: {int(r["split"]): r for r in rows if r["method"] == method}
                for name, rows in _read(folder).items()}

    a_all, b_all = by_split(base, methods[0]), by_split(other, methods[1])
    la, lb = labels
    lines = [f"| data set | splits | LL, {la} | LL, {lb} | Δ LL ({lb} - {la}), paired | "
             f"p (paired t) | reference LL | Δ LL ({lb} - reference) | RMSE, {la} | RMSE, {lb} | "
             "reference RMSE |", "|" + "---|" * 11]
    for name in sorted(set(a_all) & set(b_all)):
        a, b = a_all[name], b_all[name]
        splits = sorted(set(a) & set(b))
        if not splits:
            continue
        ref_ll, ref_rm = _ref(data_root / name, "test_ll"), _ref(data_root / name, "test_MC_rmse")
        lla = [float(a[k]["test_ll"]) for k in splits]
        llb = [float(b[k]["test_ll"]) for k in splits]
        d = np.subtract(llb, lla)
        p = f"{float(stats.ttest_1samp(d, 0.0).pvalue):.2g}" if len(d) > 1 else "-"  # one split
        r_ll = _mean_se([ref_ll[k] for k in splits]) if ref_ll is not None else (math.nan,) * 2
        r_rm = _mean_se([ref_rm[k] for k in splits]) if ref_rm is not None else (math.nan,) * 2
        dr = _mean_se([llb[i] - ref_ll[k] for i, k in enumerate(splits)]) \
            if ref_ll is not None else (math.nan,) * 2
        rma = _mean_se([float(a[k]["test_rmse"]) for k in splits])
        rmb = _mean_se([float(b[k]["test_rmse"]) for k in splits])
        digits = _decimals(*r_rm)  # RMSE: two significant figures of the SE
        lines.append(f"| {name} | {len(splits)} | {_pm(*_mean_se(lla), LL_DIGITS)} | "
                     f"{_pm(*_mean_se(llb), LL_DIGITS)} | {_pm(*_mean_se(d), LL_DIGITS)} | "
                     f"{p} | {_pm(*r_ll, LL_DIGITS)} | {_pm(*dr, LL_DIGITS)} | "
                     f"{_pm(*rma, digits)} | {_pm(*rmb, digits)} | {_pm(*r_rm, digits)} |")
    return "\n".join(lines)


def methods_table(results: Path, base: str = "bernoulli-mc") -> str:
    """Every method of every data set against ``base`` (MC dropout) on their common splits:
    test LL, the paired difference with its paired t-test, MC RMSE and how often the method
    was the one selected on validation."""
    from scipy import stats

    lines = [f"| data set | method | splits | test LL | Δ LL vs {base}, paired | p (paired t) | "
             "test RMSE | selected |", "|" + "---|" * 8]
    for name, rows in _read(results).items():
        by = {}
        for r in rows:
            by.setdefault(r["method"], {})[int(r["split"])] = r
        ref = by.get(base, {})
        rm_base = [float(r["test_rmse"]) for r in ref.values()]
        digits = _decimals(*_mean_se(rm_base)) if len(rm_base) > 1 else 3  # MC dropout's SE
        for m in sorted(by, key=lambda m: (m != base, m)):
            runs = by[m]
            splits = sorted(runs)
            ll = [float(runs[k]["test_ll"]) for k in splits]
            rm = [float(runs[k]["test_rmse"]) for k in splits]
            common = [k for k in splits if k in ref]
            if m != base and len(common) > 1:
                d = [float(runs[k]["test_ll"]) - float(ref[k]["test_ll"]) for k in common]
                dd = _pm(*_mean_se(d), LL_DIGITS)
                p = f"{float(stats.ttest_1samp(d, 0.0).pvalue):.2g}"
            else:
                dd, p = "-", "-"
            sel = sum(runs[k]["selected"] == "1" for k in splits)
            lines.append(f"| {name} | {m} | {len(splits)} | {_pm(*_mean_se(ll), LL_DIGITS)} | "
                         f"{dd} | {p} | {_pm(*_mean_se(rm), digits)} | {sel}/{len(splits)} |")
    return "\n".join(lines)


def write_block(path: Path, marker: str, text: str) -> None:
    """Replace what lies between the lines ``<!-- marker -->`` and ``<!-- /marker -->`` of
    ``path`` with ``text`` (written to a temporary file, then renamed: never half-written)."""
    import os
    import tempfile

    old = path.read_text()
    start, end = f"<!-- {marker} -->\n", f"<!-- /{marker} -->"
    i, j = old.find(start), old.find(end)
    if i < 0 or j < i:
        raise SystemExit(f"uci_table.py: --write {path}: expected the lines {start.strip()!r} "
                         f"and then {end!r} in the file, found "
                         f"{'neither' if i < 0 and j < 0 else 'only one of them, or out of order'}")
    new = old[:i + len(start)] + text.rstrip("\n") + "\n" + old[j:]
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(fd, "w") as fh:
        fh.write(new)
    os.replace(tmp, path)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", type=Path, required=True,
                    help="folder of shrinkdrop uci output folders, one per data set")
    ap.add_argument("--data", type=Path, required=True,
                    help="folder of the UCI data sets (for their reference/ files)")
    ap.add_argument("--against", type=Path, default=None,
                    help="a second results folder: print MC dropout of both, paired on their "
                         "common splits, beside the reference (e.g. --init torch vs keras)")
    ap.add_argument("--labels", default="results,against",
                    help="names of the two columns in the paired table (comma-separated)")
    ap.add_argument("--pair", default=None,
                    help="two methods A,B: a paired table of A (in --results) against B (in "
                         "--against, default --results), e.g. bernoulli-mc,gaussian-mc")
    ap.add_argument("--by-method", action="store_true",
                    help="every method of every data set against bernoulli-mc, paired")
    ap.add_argument("--write", type=Path, default=None,
                    help="instead of printing, put the table into this Markdown file between "
                         "the lines <!-- MARKER --> and <!-- /MARKER -->")
    ap.add_argument("--marker", default="uci-table",
                    help="the marker name for --write (default uci-table)")
    args = ap.parse_args()
    out = print if args.write is None else (lambda text: write_block(args.write, args.marker,
                                                                     text))
    if args.by_method:
        out(methods_table(args.results))
    elif args.against is not None or args.pair is not None:
        methods = tuple(args.pair.split(",", 1)) if args.pair else ("bernoulli-mc",) * 2
        if len(methods) != 2:
            ap.error(f"--pair: expected two methods A,B, got {args.pair!r}")
        labels = tuple(args.labels.split(",", 1)) if "," in args.labels else (args.labels, "")
        if args.pair and args.labels == "results,against":
            labels = methods
        out(paired_table(args.results, args.against or args.results, args.data, labels,
                         methods))
    else:
        out(table(args.results, args.data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
