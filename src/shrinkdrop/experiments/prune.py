"""``shrinkdrop prune``: which residual blocks (ADD) and conv channels the data switched off.

Structured VI (:func:`shrinkdrop.inference.fit_svi`) with spike-and-slab scales:

* ``--what depth``: a residual MLP ``Linear -> ReLU -> blocks x NoisyResidual(Linear(bias=False)
  -> ReLU, layer_noise=Bernoulli) -> Linear`` with ``--blocks`` blocks, against the same net
  with 1, 2, 4, ... blocks trained the same way (does the data need the depth?). Which blocks
  go is chosen from the posterior without a guessed threshold (``--rule one-se``, default): the
  blocks in increasing ``p(on)`` order, as many as keep the validation log-likelihood (15% of
  the training rows, held out of the fit) within one standard error of the full net's
  (:func:`shrinkdrop.inference.one_se_removal`); ``--rule median`` removes ``p(on) <
  --threshold`` (the median-probability model at 0.5), which on kin8nm removed all four blocks
  although two fit better. A removed block has its scale set to 0, which for a bias-free ReLU
  block is removing it (``h + block(0) = h``); the pruned net is scored again.
* ``--what channels``: a CNN on scikit-learn's digits, ``Conv2d(1, C, 3) -> ChannelNoise(
  Bernoulli) -> ReLU -> MaxPool -> Linear``: one scale per channel (tied filters, SpatialDropout's
  prior); channels with ``p(on) < --threshold`` are removed and the accuracy compared.

Each seed uses its own train/test split (split = seed) and initialisation; the summary gives
means and standard errors over seeds and the paired differences (pruned - full).
"""

from __future__ import annotations

import enum
import json
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ..noise import NoiseDistribution
from .runner import atomic_write_text, write_csv_atomic
from .stats import mean_se

HELP = ("Which residual blocks (ADD) and conv channels the data switched off: structured VI, "
        "pruned vs full test log-likelihood / accuracy over seeds")

__all__ = ["HELP", "run", "depth_model", "channel_model", "What", "PruneOptions"]


class What(str, enum.Enum):
    """What to prune: residual blocks or conv channels."""

    DEPTH = "depth"
    CHANNELS = "channels"


@dataclass(frozen=True)
class PruneOptions:
    """One ``shrinkdrop prune`` run (the command line's options, defaults and ``--quick``
    applied: ``epochs`` is a number)."""

    what: str  # a What value
    out: str
    epochs: int
    data: str = "diabetes"
    blocks: int = 4
    width: int = 32
    channels: int = 16
    keep: float = 0.5
    threshold: float = 0.5
    rule: str = "refit"
    fit: str = "point"
    seeds: int = 5
    test_samples: int = 1000
    quick: bool = False
    no_progress: bool = False


def depth_model(d_in: int, width: int, blocks: int, law: NoiseDistribution) -> nn.Sequential:
    """Residual MLP with one ADD scale per block (bias-free ReLU blocks: ``tau = 0`` removes)."""
    import shrinkdrop as sd

    layers: list[nn.Module] = [nn.Linear(d_in, width), nn.ReLU()]
    for _ in range(blocks):
        layers.append(sd.nn.NoisyResidual(
            nn.Sequential(nn.Linear(width, width, bias=False), nn.ReLU()), layer_noise=law,
            normalize=False))
    layers.append(nn.Linear(width, 1))
    return nn.Sequential(*layers)


def channel_model(channels: int, law: NoiseDistribution, classes: int = 10) -> nn.Sequential:
    """8x8 digits CNN with one tied-filters scale per channel."""
    import shrinkdrop as sd

    return nn.Sequential(nn.Unflatten(1, (1, 8, 8)), nn.Conv2d(1, channels, 3, padding=1),
                         sd.nn.ChannelNoise(law, normalize=False), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(channels * 16, classes))


def _mean_se(v: list[float]) -> tuple[float, float]:
    return mean_se(v, skip_nan=False, skip_inf=False)


def _pm(v: list[float], digits: int = 3) -> str:
    m, s = _mean_se(v)
    return f"{m:.{digits}f} ± {s:.{digits}f}"


def _digits_split(seed: int):
    from ..data import load_builtin

    data = load_builtin("digits")
    sp = data.splits[seed % data.n_splits]
    X = torch.tensor(np.asarray(data.features) / 16.0)
    y = torch.tensor(np.asarray(data.target)).long()
    return X[sp.train], y[sp.train], X[sp.test], y[sp.test]


def _scores(fit, X, y, samples, seed, off=None) -> dict:
    out = fit.sample_outputs(X, samples, seed=seed, off=off)
    if fit.likelihood == "categorical":
        lp = torch.log_softmax(out, -1)
        ll = torch.logsumexp(lp.gather(-1, y.expand(out.shape[0], -1)[..., None])[..., 0], 0)
        acc = (lp.exp().mean(0).argmax(-1) == y).double().mean()
        return {"ll": float((ll - math.log(samples)).mean()), "accuracy": float(acc)}
    return {}


def _depths(blocks: int) -> list[int]:
    """The depths trained beside the full net: 1, 2, 4, ... below ``blocks`` (the nets whose
    fit the pruned one is compared with)."""
    out, k = [], 1
    while k < blocks:
        out.append(k)
        k *= 2
    return out


def _split_val(d: dict, seed: int, fraction: float = 0.15) -> tuple:
    """Training rows minus a validation part (``fraction``, drawn by ``seed``) and that part."""
    n = d["X"].shape[0]
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(10_000 + seed))
    nv = max(1, int(round(fraction * n)))
    va, tr = perm[:nv], perm[nv:]
    return d["X"][tr], d["y"][tr], d["X"][va], d["y"][va]


def _fit_depth(args, X, y, blocks: int, law, seed: int):
    """One depth net fitted by ``args.fit``: ``svi`` (:func:`~shrinkdrop.inference.fit_svi`,
    mean-field weights) or ``point`` (:func:`~shrinkdrop.compress.fit_scales`: VI over the
    scales, MAP weights)."""
    from .. import compress as C
    from .. import inference as inf

    torch.manual_seed(seed)
    model = depth_model(X.shape[1], args.width, blocks, law).double()
    if args.fit == "svi":
        return inf.fit_svi(model, X, y, epochs=args.epochs, seed=seed,
                           progress=not args.no_progress)
    return C.fit_scales(model, X, y, likelihood="gaussian", epochs=args.epochs, batch_size=256,
                        lr=3e-3, q_lr=3e-2, sigma0=1.0, seed=seed,
                        progress=not args.no_progress)


def _rows_ll(args, fit, X, y, seed: int, off=None, samples: int | None = None):
    """Per-row log-likelihood (standardized target) of a depth fit, ``off`` units at 0."""
    from .. import compress as C

    if args.fit == "svi":
        return fit.log_likelihood(X, y, samples or args.test_samples, seed=seed, off=off)
    return C.row_log_likelihood(fit, X, y, off)


def _refit_removal(args, fit, incl: dict, data: tuple, seed: int) -> tuple[dict, float]:
    """``--rule refit``: Breiman's one-SE rule over the compacted nets, each trained on. For
    k = 0 .. B the k blocks of lowest ``p(on)`` are removed, the net compacted
    (:func:`shrinkdrop.compress.compact`) and trained on the training rows for a quarter of
    ``args.epochs`` (Adam 3e-3, batch 256, the fit's weight decay), its noise precision set from
    its training residuals; the largest k whose validation log-likelihood is within one
    standard error (per-row SD / sqrt(n)) of the best candidate's wins. Returns the removal and
    the chosen net's mean test log-likelihood (standardized target)."""
    from .. import compress as C

    X, y, Xva, yva, Xte, yte = data
    names = sorted(incl, key=lambda k: float(incl[k].reshape(-1)[0]))
    cands = []
    for k in range(len(names) + 1):
        off = {n: torch.full_like(incl[n], i < k, dtype=torch.bool)
               for i, n in enumerate(names)}
        net = C.compact(fit.model, fit.scales(off), X[:2])
        tau = _train_regression(net, X, y, max(1, args.epochs // 4), seed)
        cands.append((off, _gaussian_ll(net, Xva, yva, tau), _gaussian_ll(net, Xte, yte, tau)))
    off, _, test = cands[largest_within_one_se([c[1] for c in cands])]
    return off, float(test.mean())


def largest_within_one_se(lls: list[torch.Tensor]) -> int:
    """The last candidate (the largest removal) whose mean per-row log-likelihood is within one
    standard error (per-row SD / sqrt(n)) of the best candidate's mean."""
    means = [float(v.mean()) for v in lls]
    b = int(np.argmax(means))
    floor = means[b] - float(lls[b].std()) / math.sqrt(lls[b].numel())
    return max(i for i, m in enumerate(means) if m >= floor)


def _train_regression(net: nn.Module, X, y, epochs: int, seed: int) -> float:
    """:func:`shrinkdrop.fit` with the fit's settings (Adam 3e-3, batch 256, sigma0 = 1; the
    Gaussian likelihood at precision 2 is the squared error); returns the precision
    1 / mean squared training residual."""
    from ..train import fit

    y = y.reshape(-1, 1)
    fit(net, X, y, likelihood="gaussian", tau=2.0, sigma0=1.0, epochs=epochs, batch_size=256,
        lr=3e-3, seed=seed, progress=False)
    net.eval()
    with torch.no_grad():
        return 1.0 / float(((net(X) - y) ** 2).mean())


def _gaussian_ll(net: nn.Module, X, y, tau: float):
    with torch.no_grad():
        r2 = (net(X).reshape(-1) - y.reshape(-1)) ** 2
    return 0.5 * (math.log(tau) - math.log(2 * math.pi)) - 0.5 * tau * r2


def _depth_seed(args, data, law, seed: int) -> dict:
    from .. import inference as inf
    from .relevance import prepare

    d = prepare(data, seed % data.n_splits, 0, seed)
    X, y, Xva, yva = _split_val(d, seed)
    lls, fits = {}, {}
    log_scale = math.log(d["y_scale"])
    for blocks in [*_depths(args.blocks), args.blocks]:
        fit = _fit_depth(args, X, y, blocks, law, seed)
        lls[blocks] = float(_rows_ll(args, fit, d["Xte"], d["yte"], seed).mean()) - log_scale
        fits[blocks] = fit
    fit = fits[args.blocks]
    incl = ({k: v for k, v in fit.scores().items()} if args.fit == "point"
            else fit.inclusion())
    p_on = [float(v) for v in incl.values()]
    if args.rule == "refit":
        off, pruned = _refit_removal(args, fit, incl, (X, y, Xva, yva, d["Xte"], d["yte"]), seed)
        pruned -= log_scale
    elif args.rule == "one-se":
        off = dict(inf.one_se_removal(incl, lambda rem: _rows_ll(
            args, fit, Xva, yva, seed, rem, min(args.test_samples, 300)), keep_one=False))
    else:
        off = {k: v < args.threshold for k, v in incl.items()}
    if args.rule != "refit":
        pruned = float(_rows_ll(args, fit, d["Xte"], d["yte"], seed, off).mean()) - log_scale
    half = args.blocks // 2
    return {"seed": seed, "ll_full": lls[args.blocks], "ll_shallow": lls[half],
            **{f"ll_{k}_blocks": v for k, v in lls.items()},
            "ll_pruned": pruned, "p_on": p_on,
            "removed": int(sum(int(v.sum()) for v in off.values()))}


def _channel_seed(args, law, seed: int) -> dict:
    from .. import inference as inf

    X, y, Xte, yte = _digits_split(seed)
    torch.manual_seed(seed)
    model = channel_model(args.channels, law).double()
    fit = inf.fit_svi(model, X, y, likelihood="categorical", epochs=args.epochs, batch_size=256,
                      seed=seed, progress=not args.no_progress)
    p_on = fit.inclusion()["2.tau"]
    off = {"2.tau": p_on < args.threshold}
    full = _scores(fit, Xte, yte, args.test_samples, seed)
    pruned = _scores(fit, Xte, yte, args.test_samples, seed, off=off)
    return {"seed": seed, "acc_full": full["accuracy"], "acc_pruned": pruned["accuracy"],
            "ll_full": full["ll"], "ll_pruned": pruned["ll"], "p_on": p_on.tolist(),
            "removed": int(off["2.tau"].sum())}


def _summary(args: PruneOptions, rows: list[dict], data_name: str) -> dict:
    s = {"what": args.what, "seeds": len(rows), "threshold": args.threshold,
         "keep": args.keep, "epochs": args.epochs, "rows": rows}
    full = [r["ll_full"] for r in rows]
    diff = [r["ll_pruned"] - r["ll_full"] for r in rows]
    s["ll_full"], s["ll_pruned"] = _mean_se(full), _mean_se([r["ll_pruned"] for r in rows])
    s["ll_pruned_minus_full"] = _mean_se(diff)
    s["removed"] = _mean_se([r["removed"] for r in rows])
    se_full = s["ll_full"][1]
    s["pruned_within_one_se"] = bool(np.mean(diff) >= -se_full) if math.isfinite(
        se_full) else None
    if args.what == "depth":
        s["blocks"], s["width"], s["data"] = args.blocks, args.width, data_name
        sh = [r["ll_shallow"] for r in rows]
        s["ll_shallow"] = _mean_se(sh)
        s["ll_shallow_minus_full"] = _mean_se([a - b for a, b in zip(sh, full)])
        m, se = s["ll_shallow_minus_full"]
        # as well: the paired difference is within one of its standard errors (or positive)
        s["shallow_fits_as_well"] = bool(m + se >= 0) if math.isfinite(se) else None
        depths = [*_depths(args.blocks), args.blocks]
        s["rule"] = args.rule
        s["ll_by_blocks"] = {str(k): _mean_se([r[f"ll_{k}_blocks"] for r in rows])
                             for k in depths}
        best = max(depths, key=lambda k: s["ll_by_blocks"][str(k)][0])
        bm, bse = s["ll_by_blocks"][str(best)]
        s["best_blocks"] = best
        # the test: the pruned net's mean within one SE of the best depth's mean
        s["pruned_within_one_se_of_best"] = (bool(s["ll_pruned"][0] >= bm - bse)
                                             if math.isfinite(bse) else None)
    else:
        s["channels"] = args.channels
        s["acc_full"] = _mean_se([r["acc_full"] for r in rows])
        s["acc_pruned"] = _mean_se([r["acc_pruned"] for r in rows])
        s["acc_pruned_minus_full"] = _mean_se([r["acc_pruned"] - r["acc_full"] for r in rows])
    return s


def _section(args: PruneOptions, out: Path, s: dict, seconds: float, command: str) -> None:
    from .report import Section, write_section

    rows = s["rows"]
    if args.what == "depth":
        sec = Section(title=f"Depth the data switched off: ADD on a {s['blocks']}-block "
                      f"residual MLP ({s['data']})", command=command, seconds=seconds)
        rule = {"one-se": "the blocks ranked lowest by p(on) removed as far as the validation "
                "log-likelihood (15% of the training rows) stays within one SE of the full "
                "net's (one-SE rule)",
                "refit": "for k = 0 .. B the k blocks ranked lowest by p(on) removed, the net "
                "compacted and trained on for a quarter of the epochs; the largest k whose "
                "validation log-likelihood (15% of the training rows) is within one SE of the "
                "best candidate's (Breiman's one-SE rule, refitted)",
                "median": f"blocks with p(on) < {args.threshold} removed"}[args.rule]
        how = ("VI over the scales with MAP weights (fit_scales)" if args.fit == "point" else
               "structured VI with mean-field weights (fit_svi)")
        sec.p(f"{how}, a Bernoulli({args.keep}) scale per residual block; {rule}. "
              f"Nets of {', '.join(s['ll_by_blocks'])} blocks trained the same way. Mean ± SE "
              f"over {len(rows)} seeds (split = seed). Pruned within one SE of the best depth: "
              f"{s['pruned_within_one_se_of_best']}.")
        sec.table(["net", "test LL"], [
            *[[f"{k} block(s)", _pm([r[f"ll_{k}_blocks"] for r in rows])]
              for k in s["ll_by_blocks"]],
            ["pruned (" + {"one-se": "one-SE rule", "refit": "one-SE rule, refitted",
                           "median": "p(on) < threshold"}[args.rule]
             + ")", _pm([r["ll_pruned"] for r in rows])],
            ["pruned - full (paired)", _pm([r["ll_pruned"] - r["ll_full"] for r in rows])]])
        sec.table(["seed", "p(on) per block", "removed"],
                  [[r["seed"], " ".join(f"{p:.2f}" for p in r["p_on"]), r["removed"]]
                   for r in rows])
    else:
        sec = Section(title=f"Channels the data switched off: tied filters on a "
                      f"{s['channels']}-channel CNN (digits)", command=command,
                      seconds=seconds)
        sec.p(f"Structured VI with a Bernoulli({args.keep}) scale per channel (tied filters); "
              f"channels with p(on) < {args.threshold} removed. Mean ± SE over {len(rows)} "
              "seeds (split = seed).")
        sec.table(["net", "accuracy", "test LL"], [
            ["full", _pm([r["acc_full"] for r in rows]), _pm([r["ll_full"] for r in rows])],
            ["pruned", _pm([r["acc_pruned"] for r in rows]),
             _pm([r["ll_pruned"] for r in rows])],
            ["pruned - full (paired)", _pm([r["acc_pruned"] - r["acc_full"] for r in rows]),
             _pm([r["ll_pruned"] - r["ll_full"] for r in rows])]])
        sec.table(["seed", "channels removed", "of"],
                  [[r["seed"], r["removed"], s["channels"]] for r in rows])
    write_section(out, sec)


def run(args: PruneOptions, *, command: str = "") -> int:
    """Fit, prune and score over the seeds of ``args``, write ``OUT``; ``command`` is the run's
    command line (the report shows it). Returns 0."""
    from .. import noise
    from ..data import resolve_data

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    law = noise.Bernoulli(args.keep)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    t0 = time.perf_counter()
    try:
        rows = []
        data = resolve_data(args.data)[0] if args.what == "depth" else None
        data_name = data.name if data is not None else "digits"
        for seed in range(args.seeds):
            r = (_depth_seed(args, data, law, seed) if args.what == "depth"
                 else _channel_seed(args, law, seed))
            rows.append(r)
            print(f"prune {args.what} seed {seed}: removed {r['removed']}, LL full "
                  f"{r['ll_full']:.3f} pruned {r['ll_pruned']:.3f}", file=sys.stderr)
        s = _summary(args, rows, data_name)
        seconds = time.perf_counter() - t0
        s["seconds"] = seconds
        cols = [k for k in rows[0] if k != "p_on"]
        write_csv_atomic(out / "seeds.csv", rows, cols)
        atomic_write_text(out / "summary.json", json.dumps(s, indent=1))
        _section(args, out, s, seconds, command)
        print(f"prune {args.what}: removed {s['removed'][0]:.1f} on average; pruned - full "
              f"test LL {s['ll_pruned_minus_full'][0]:+.3f} ± {s['ll_pruned_minus_full'][1]:.3f}"
              f" ({seconds:.0f} s) -> {out / 'summary.json'}", file=sys.stderr)
    finally:
        torch.set_default_dtype(prev)
    return 0
