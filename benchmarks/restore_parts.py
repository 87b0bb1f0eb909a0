"""Rebuild a ``shrinkdrop uci`` output folder's ``parts/`` from its committed ``results.csv``.

``parts/`` (one JSON per finished unit, what a rerun resumes from) is not committed; a fresh
checkout has only ``results.csv``, ``summary.md`` and ``run.json``. Rerunning a command there
would republish ``results.csv`` from the new units alone. This writes one part per row (every
column but ``selected``, which the runner recomputes), then republishes the rows into a
scratch file and checks it is byte-identical to ``results.csv``; exit 1 if not (the parts are
then removed again). Used for the 2026-12-04 protein and bostonHousing resumes
(docs/uci.md, "The rerun with the final engine"):

    python benchmarks/restore_parts.py results/uci100-2026-12-03/protein-tertiary-structure
"""

from __future__ import annotations

import argparse
import csv
import filecmp
import json
import shutil
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

from shrinkdrop.experiments.runner import ResultStore, write_csv_atomic
from shrinkdrop.experiments.uci import COLUMNS, UnitTask, select_rows

TEXT = ("dataset", "method", "config", "note")
INTS = ("split", "epochs")


def restore(out: Path) -> bool:
    manifest = json.loads((out / ResultStore.MANIFEST).read_text())
    store = ResultStore(out, manifest["settings"], manifest["inputs"])
    if store.parts.is_dir() and any(store.parts.glob("*.json")):
        raise SystemExit(f"{store.parts} already holds parts; nothing to restore")
    with open(out / "results.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    store.parts.mkdir()
    methods = list(dict.fromkeys(r["method"] for r in rows))
    for r in rows:
        row = {k: v if k in TEXT else int(v) if k in INTS else float(v)
               for k, v in r.items() if k != "selected"}
        store.put(UnitTask.key.fget(SimpleNamespace(**row)), row)
    with tempfile.TemporaryDirectory() as tmp:
        again = Path(tmp) / "results.csv"
        write_csv_atomic(again, select_rows(store.rows(), methods), COLUMNS)
        same = filecmp.cmp(again, out / "results.csv", shallow=False)
    if not same:
        shutil.rmtree(store.parts)
    return same


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out", type=Path, help="a shrinkdrop uci --out folder")
    out = ap.parse_args(argv).out
    ok = restore(out)
    print(f"{out}: parts rebuilt; republished results.csv "
          + ("identical" if ok else "DIFFERS (parts removed)"))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
