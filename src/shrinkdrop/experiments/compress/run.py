"""``shrinkdrop compress``: the run (units = seed x method, resumable), summary and report."""

from __future__ import annotations

import functools
import hashlib
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from ...errors import RunMismatchError
from ..runner import ResultStore, atomic_write_text, run_units
from . import methods as M

__all__ = ["CompressOptions", "run", "HELP", "PUBLISHED"]

HELP = ("From switched-off to a smaller, faster model: dense, structured VI (spike-and-slab, "
        "horseshoe), SBP and magnitude pruning on LeNet-5 / LeNet-300, side by side")

#: published MNIST numbers (other data: not comparable with Fashion-MNIST)
PUBLISHED = [
    ["SBP (Neklyudov et al. 2017)", "LeNet-5", "20-50-800-500 -> 3-18-284-283",
     "0.86% (dense 0.80%)", "10.5x fewer FLOPs, 5.4x faster (CPU)"],
    ["SBP", "LeNet-500-300", "784-500-300 -> 245-160-55", "1.55%", ""],
    ["Bayesian compression, group horseshoe (Louizos et al. 2017)", "LeNet-5",
     "-> 5-10-76-16", "1.0%", ""],
    ["L0 regularisation (Louizos et al. 2018)", "LeNet-5", "-> 9-18-65-25", "1.0%", ""],
]


@dataclass(frozen=True)
class CompressOptions:
    """One ``shrinkdrop compress`` run (``--quick`` applied)."""

    data: str
    arch: str
    out: str
    epochs: int = 6
    finetune: int = 4
    seeds: int = 3
    batch_size: int = 128
    lr: float = 1e-3
    q_lr: float = 1e-2
    sigma0: float = 1.0
    val: int = 5000
    train_limit: int = 0
    flops_target: float = 0.0
    retrain: int = 0
    allocation: str = "uniform"  # with flops_target: "uniform" per site or "validation"
    methods: tuple[str, ...] = tuple(M.METHODS)
    timing_repeats: int = 20
    quick: bool = False
    no_progress: bool = False


_SETTINGS = ("data", "arch", "epochs", "finetune", "batch_size", "lr", "q_lr", "sigma0", "val",
             "train_limit")


@functools.lru_cache(maxsize=2)
def _images(source: str):
    """The data set, read once per process (every unit of a run uses it)."""
    from ..images import load_images

    return load_images(source, seed=0)


def _data(opts: CompressOptions, seed: int) -> dict:
    """Train / validation / test tensors (validation rows split off the training rows by
    ``seed``); images smaller than 28x28 are resized (bilinear) for the LeNets."""
    d = _images(opts.data)
    X, y, Xte, yte = d.x_train, d.y_train, d.x_test, d.y_test
    if X.shape[-1] != 28 or X.shape[-2] != 28:
        def up(t):
            return torch.nn.functional.interpolate(t, size=(28, 28), mode="bilinear",
                                                   align_corners=False)
        X, Xte = up(X), up(Xte)
    g = torch.Generator().manual_seed(1000 + seed)
    perm = torch.randperm(X.shape[0], generator=g)
    nva = min(opts.val, X.shape[0] // 5)
    va, tr = perm[:nva], perm[nva:]
    if opts.train_limit:
        tr = tr[:opts.train_limit]
    return {"X": X[tr], "y": y[tr], "Xva": X[va], "yva": y[va], "Xte": Xte, "yte": yte,
            "classes": d.classes, "name": d.name}


def _fingerprint(opts: CompressOptions) -> str:
    d = _data(opts, 0)
    h = hashlib.sha256()
    for k in ("X", "y", "Xte", "yte"):
        h.update(d[k][:512].numpy().tobytes())
        h.update(str(tuple(d[k].shape)).encode())
    return h.hexdigest()[:16]


def _unit(task: tuple) -> dict:
    """One (seed, method): fit, compact, score; the dense net is saved for the others."""
    opts, seed, method, dense_path, target = task
    torch.set_num_threads(1)
    d = _data(opts, seed)
    torch.manual_seed(seed)
    model = M.build_net(opts.arch, M.PRIORS(method), d["classes"])
    t0 = time.perf_counter()
    if method == "dense":
        M.train_dense(model, d["X"], d["y"], epochs=opts.epochs, batch_size=opts.batch_size,
                      lr=opts.lr, seed=seed, wd=opts.sigma0**-2)
        tmp = Path(str(dense_path) + ".tmp")
        torch.save(model.state_dict(), tmp)
        tmp.replace(dense_path)
    else:
        model.load_state_dict(torch.load(dense_path, weights_only=True))
    from ... import compress as C

    dense_plain = C.compact(model, None, d["X"][:2]) if method != "dense" else None
    if method == "dense":
        plain, extra = C.compact(model, None, d["X"][:2]), {}
        dense_plain = plain
    elif method == "magnitude":
        plain, extra = M.magnitude_method(dense_plain, target, d, opts, seed)
    else:
        plain, extra = M.vi_method(model, d, opts, seed)
    row = M.describe(plain, dense_plain, d["Xte"], d["yte"], method != "dense",
                     opts.timing_repeats)
    row.update(extra, seed=seed, method=method, seconds=time.perf_counter() - t0)
    return row


def _tasks(opts: CompressOptions, store: ResultStore, out: Path) -> list[tuple]:
    """The units not done yet, in order (dense first in each seed, magnitude last: it prunes
    to the spike-and-slab net's FLOPs)."""
    tasks = []
    (out / "models").mkdir(parents=True, exist_ok=True)
    for seed in range(opts.seeds):
        for method in opts.methods:
            key = f"{seed}-{method}"
            if store.done(key):
                continue
            tasks.append((seed, method))
    return tasks


def run(opts: CompressOptions, *, command: str = "") -> int:
    """Run every (seed, method) not yet in ``OUT/parts`` (resume), then write ``results.csv``,
    ``summary.json``, the Pareto plot and the report section. Returns 0."""
    out = Path(opts.out)
    settings = {k: getattr(opts, k) for k in _SETTINGS}
    for k in ("flops_target", "retrain"):  # recorded only when set: older runs resume
        if getattr(opts, k):
            settings[k] = getattr(opts, k)
    if opts.flops_target and opts.allocation != "uniform":  # uniform: the older runs' rule
        settings["allocation"] = opts.allocation
    store = ResultStore(out, settings, {opts.data: _fingerprint(opts)})
    store.check()
    store.open()
    todo = _tasks(opts, store, out)
    t0 = time.perf_counter()

    def do(task):
        seed, method = task
        dense = out / "models" / f"{seed}-dense.pt"
        target = None
        if method == "magnitude":
            ref = store.get(f"{seed}-ss") or store.get(f"{seed}-sbp") or store.get(f"{seed}-hs")
            if ref is None:
                raise RunMismatchError("magnitude pruning needs a VI method's FLOPs (ss, sbp or "
                                       "hs) of the same seed")
            target = ref["flops"]
        if method != "dense" and not dense.exists():
            raise RunMismatchError(f"{dense} is missing: run the dense method first")
        return _unit((opts, seed, method, dense, target))

    def done(task, row):
        store.put(f"{task[0]}-{task[1]}", row)
        print(f"compress seed {task[0]} {task[1]}: {row['arch']} error {row['error']:.4f} "
              f"flops {row['flops']:.3g} ({row['seconds']:.0f} s)", file=sys.stderr, flush=True)

    run_units(do, todo, on_result=done, progress=not opts.no_progress,
              describe=lambda t: f"seed {t[0]} {t[1]}", desc="compress")
    rows = store.rows()
    from .summary import write_summary

    write_summary(opts, rows, out, time.perf_counter() - t0, command)
    atomic_write_text(out / "options.json", json.dumps(asdict(opts), indent=1))
    return 0

