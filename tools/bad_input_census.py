"""Census of the bad-input table (``tests/bad_inputs/cases.py``): how each case ends.

    PYTHONPATH=src python tools/bad_input_census.py [--list] [--only WORD]

Prints, per kind (library / CLI), how many cases end in a clear error (the expected exception
type, the argument's name and what was expected; CLI: exit 2, one stderr line, no traceback),
an unclear one (a traceback, a message without the argument's name or the expectation, several
lines) or a silent bad result (no error at all). ``--list`` prints every case not clear.
Runs against whatever ``shrinkdrop`` is on the path, so the counts before and after a change
come from the same table.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def load_cases():
    spec = importlib.util.spec_from_file_location("_bad_input_cases",
                                                  ROOT / "tests" / "bad_inputs" / "cases.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    return mod


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--list", action="store_true", help="print every case that is not clear")
    ap.add_argument("--only", default=None, help="only the cases whose id holds this")
    a = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    import torch

    torch.set_num_threads(1)
    cases = load_cases()
    counts: dict[str, collections.Counter] = {"library": collections.Counter(),
                                              "cli": collections.Counter()}
    rows = []
    owners: collections.Counter = collections.Counter()
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for c in cases.LIB:
            if a.only and a.only not in c.id:
                continue
            torch.manual_seed(0)
            outcome, detail = cases.classify_lib(c)
            counts["library"][outcome] += 1
            rows.append((outcome, c.id, detail))
            if outcome != "clear":
                owners[c.owner or "(no owner: this branch's to fix)"] += 1
        for i, c in enumerate(cases.CLI):
            if a.only and a.only not in "cli." + c.id:
                continue
            scratch = cases.make_scratch(base / f"c{i}")
            outcome, detail = cases.classify_cli(c, scratch)
            counts["cli"][outcome] += 1
            if outcome != "clear":
                owners[c.owner or "(no owner: this branch's to fix)"] += 1
            rows.append((outcome, "cli." + c.id, detail))
    if a.list:
        for outcome, cid, detail in rows:
            if outcome != "clear":
                print(f"{outcome:8s} {cid}: {detail[:220]}")
    print(f"{'':8s} {'clear':>6s} {'unclear':>8s} {'silent':>7s} {'total':>6s}")
    total = collections.Counter()
    for kind, cnt in counts.items():
        total.update(cnt)
        print(f"{kind:8s} {cnt['clear']:6d} {cnt['unclear']:8d} {cnt['silent']:7d} "
              f"{sum(cnt.values()):6d}")
    print(f"{'all':8s} {total['clear']:6d} {total['unclear']:8d} {total['silent']:7d} "
          f"{sum(total.values()):6d}")
    for owner, n in owners.most_common():
        print(f"not clear, {owner}: {n}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
