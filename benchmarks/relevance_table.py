"""Table of `shrinkdrop relevance` runs: AUC and test LL per method, mean +- SE over runs.

    python benchmarks/relevance_table.py results/relevance-2026-12-02/*/summary.json
"""

from __future__ import annotations

import json
import math
import sys
from collections import defaultdict
from pathlib import Path

TARGETS = ("AUC >= 0.95", "AUC >= ARDRegression's", "test LL >= MC dropout's")


def _ms(v) -> str:
    v = [x for x in v if x is not None]
    if not v:
        return "-"
    m = sum(v) / len(v)
    if len(v) < 2:
        return f"{m:.3f}"
    se = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1) / len(v))
    return f"{m:.3f} ± {se:.3f}"


def _field(runs, key, name) -> list:
    return [r[key][name] if key in r else None for r in runs]


def _mc(runs, method) -> list:
    return [r["mc_dropout"][method]["test_ll"] for r in runs if "mc_dropout" in r]


def _row(name, runs) -> str:
    t = [r["targets"] for r in runs]
    counts = [f"{sum(bool(x[k]) for x in t)}/{len(t)}" for k in TARGETS]
    cells = [name, ",".join(str(r["split"]) for r in runs),
             _ms(_field(runs, "svi", "auc")), _ms(_field(runs, "ard", "auc")),
             _ms(_field(runs, "gibbs", "auc")), _ms(_field(runs, "linear_ss", "auc")),
             _ms(_field(runs, "svi", "test_ll")), _ms(_field(runs, "ard", "test_ll")),
             _ms(_field(runs, "gibbs", "test_ll")), _ms(_field(runs, "linear_ss", "test_ll")),
             _ms(_mc(runs, "bernoulli-mc")), _ms(_mc(runs, "bernoulli-mc+tau")), *counts]
    return "| " + " | ".join(cells) + " |"


def main(paths: list[str]) -> None:
    by = defaultdict(list)
    for p in paths:
        s = json.loads(Path(p).read_text())
        by[s["data"]].append(s)
    head = ["data", "splits", "VI AUC", "ARDRegression AUC", "Gibbs AUC", "linear SS AUC",
            "VI test LL", "ARDRegression test LL", "Gibbs test LL", "linear SS test LL",
            "MC dropout test LL",
            "MC dropout + tau test LL", *TARGETS]
    print("| " + " | ".join(head) + " |")
    print("|" + "---|" * len(head))
    for name, runs in sorted(by.items()):
        print(_row(name, sorted(runs, key=lambda r: r["split"])))
    print()
    for name, runs in sorted(by.items()):  # the ceiling comparison (issue 27, item 4)
        paired = [r["svi"]["auc"] - r["linear_ss"]["auc"] for r in runs if "linear_ss" in r]
        lead = [r["svi"]["test_ll"] - r["mc_dropout"]["bernoulli-mc"]["test_ll"] for r in runs
                if "mc_dropout" in r]
        rates = [x for r in runs for x in (r["svi"].get("keep_posterior_mean") or [])]
        print(f"{name}: VI AUC - linear spike-and-slab AUC (paired) {_ms(paired)}; "
              f"VI test LL - MC dropout's (paired) {_ms(lead)}"
              + (f"; q(keep) mean {min(rates):.3f}-{max(rates):.3f}" if rates else ""))


if __name__ == "__main__":
    main(sys.argv[1:])
