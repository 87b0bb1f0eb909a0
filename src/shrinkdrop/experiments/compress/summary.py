"""``shrinkdrop compress``'s summary: the table (mean ± SE over seeds), the Pareto plot, the
report section."""

from __future__ import annotations

import json
import math
from pathlib import Path

from ..runner import atomic_write_text, write_csv_atomic
from ..stats import mean_se
from . import methods as M

__all__ = ["write_summary", "summarize"]


def _ms(v: list[float]) -> tuple[float, float]:
    return mean_se([float(x) for x in v])


def summarize(rows: list[dict]) -> dict[str, dict]:
    """Per method: mean and SE over seeds of error, NLL, FLOPs, parameters, speed-up; the
    kept architectures; the seeds."""
    out = {}
    for method in M.METHODS:
        rs = sorted((r for r in rows if r["method"] == method), key=lambda r: r["seed"])
        if not rs:
            continue
        s = {"seeds": [r["seed"] for r in rs], "arch": [r["arch"] for r in rs]}
        for k in ("error", "nll", "flops", "params", "speedup_min", "speedup_median"):
            if k in rs[0]:
                s[k] = _ms([r[k] for r in rs])
        s["flops_reduction"] = _ms([r["dense_flops"] / r["flops"] for r in rs])
        out[method] = s
    # paired by seed: test error minus the dense net's and minus magnitude pruning's (at the
    # same kept FLOPs), in percentage points
    by = {(r["method"], r["seed"]): r for r in rows}
    for method, s in out.items():
        for ref in ("dense", "magnitude"):
            d = [100 * (by[(method, k)]["error"] - by[(ref, k)]["error"]) for k in s["seeds"]
                 if (ref, k) in by]
            if method != ref and len(d) >= 2:
                s[f"error_minus_{ref}"] = _ms(d)
    return out


def _fmt(ms: tuple[float, float], digits: int) -> str:
    m, s = ms
    if not math.isfinite(s):
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def _plot(summary: dict[str, dict], rows: list[dict], path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a dependency of the report
        return False
    fig, ax = plt.subplots(figsize=(5.5, 4))
    for method in summary:
        rs = [r for r in rows if r["method"] == method]
        ax.scatter([r["flops"] for r in rs], [100 * r["error"] for r in rs], alpha=0.4, s=12)
        fm, em = summary[method]["flops"][0], 100 * summary[method]["error"][0]
        ax.errorbar([fm], [em], yerr=[100 * summary[method]["error"][1]]
                    if math.isfinite(summary[method]["error"][1]) else None,
                    fmt="o", label=method, capsize=3)
    ax.set_xscale("log")
    ax.set_xlabel("FLOPs per example (compacted)")
    ax.set_ylabel("test error (%)")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    tmp.replace(path)
    return True


def table_rows(summary: dict[str, dict], dense_arch: str) -> list[list]:
    rows = []
    for method, s in summary.items():
        arch = ", ".join(sorted(set(s["arch"]), key=s["arch"].index))
        speed = (_fmt(s["speedup_median"], 2) if "speedup_median" in s else "1 (reference)")
        rows.append([method, f"{dense_arch} -> {arch}", _fmt(s["params"], 0),
                     _fmt(s["flops"], 0), _fmt(s["flops_reduction"], 2), speed,
                     _fmt((100 * s["error"][0], 100 * s["error"][1]), 2), _fmt(s["nll"], 3),
                     len(s["seeds"])])
    return rows


HEADER = ["method", "kept architecture", "parameters", "FLOPs", "FLOPs reduction",
          "CPU speed-up (median)", "test error %", "test NLL", "seeds"]


def write_summary(opts, rows: list[dict], out: Path, seconds: float, command: str) -> None:
    """``results.csv``, ``summary.json``, ``pareto.png`` and the report section."""
    from ..report import Section, write_section
    from .run import PUBLISHED

    if not rows:
        return
    cols = sorted({k for r in rows for k in r})
    write_csv_atomic(out / "results.csv", rows, cols)
    summary = summarize(rows)
    atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))
    dense_arch = "20-50-800-500" if opts.arch == "lenet5" else "784-300-100"
    sec = Section(title=f"Compaction: {opts.arch} on {opts.data}", command=command,
                  seconds=seconds)
    if not opts.flops_target:
        rule = ("as far as the validation log-likelihood stays within one SE of the full "
                "model's (one-SE rule)")
    elif opts.allocation == "validation":
        rule = (f"until the FLOPs fall {opts.flops_target:g}-fold, each step at the site whose "
                "next units cost the least validation log-likelihood per FLOP saved")
    else:
        rule = (f"with one kept fraction per site, the largest whose FLOPs fall "
                f"{opts.flops_target:g}-fold")
    sec.p(f"Dense net trained {opts.epochs} epochs; each other method starts from it and "
          f"trains {opts.finetune + opts.retrain} epochs ({opts.finetune} of VI of the scales "
          f"with point weights and {opts.retrain} of training the compacted net, or "
          "fine-tuning after magnitude pruning). VI read-outs remove the units ranked lowest "
          f"by the posterior (p(on), or E/sd of xi) {rule}; magnitude pruning is pruned to "
          "the spike-and-slab net's FLOPs. CPU time: batch 256, one thread, compacted and "
          "dense interleaved in one process (a shared machine). Mean ± SE over seeds; the "
          "paired differences of test error (points) to the dense net and to magnitude "
          "pruning are in summary.json.")
    sec.table(HEADER, table_rows(summary, dense_arch))
    if _plot(summary, rows, out / "pareto.png"):
        sec.figure("pareto.png", "test error against FLOPs (points: seeds; markers: means)")
    sec.note("Published MNIST figures, for orientation only: other data (MNIST, not "
             "Fashion-MNIST), other training budgets; not comparable.")
    sec.table(["method", "net", "architecture", "error", "speed"], PUBLISHED)
    write_section(out, sec)
