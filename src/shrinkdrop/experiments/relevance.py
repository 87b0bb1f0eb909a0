"""``shrinkdrop relevance``: which inputs the data switched off, and how well each method knows.

Appends ``--noise-features`` pure-noise N(0, 1) columns to a real data set, then reads off a
per-input relevance with four methods measured in the same run, on the same training rows:

* structured VI (:func:`shrinkdrop.inference.fit_svi`) over the ARD scales of a
  ``UnitNoise -> Linear -> ReLU -> Linear`` network: inclusion probability ``p(xi_r != 0)``
  (Bernoulli) or ``1 - E[kappa_r]`` (continuous laws);
* scikit-learn's ``ARDRegression`` (linear, type-II maximum likelihood): ``|coef_r|``;
* Gibbs on the scales of the same network (Bernoulli only; MCMC, the slow reference);
* the exact posterior of the linear spike-and-slab model
  (:func:`shrinkdrop.inference.linear_spike_slab`, prior inclusion ``--keep``, slab variance
  ``--ss-g`` x the noise variance): inclusion probability ``p(gamma_r = 1 | y)``, what the
  Bayesian answer of a linear model says (the posterior ceiling of the AUC when the data are
  near linear).

and the AUC of each against the known real / noise labels. Test log-likelihoods on the split's
test rows are compared with MC dropout's (Gal's protocol, the UCI runner, on the same rows with
the same noise columns). Writes ``relevance.csv``, ``summary.json``, ``relevance.png`` and the
report's ``section.json`` to ``--out``. The mathematics is in :mod:`shrinkdrop.inference`.
"""

from __future__ import annotations

import enum
import json
import math
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch

from ..data import UCIData, standardize
from .laws import LawOptions
from .runner import atomic_write_text, jsonable, write_csv_atomic

HELP = ("Which inputs the data switched off: structured-VI relevance vs scikit-learn's "
        "ARDRegression and Gibbs, AUC against added noise features, test LL vs MC dropout")

__all__ = ["HELP", "run", "prepare", "Family", "RelevanceOptions"]


class Family(str, enum.Enum):
    """The prior laws of the ARD scales this experiment fits."""

    BERNOULLI = "bernoulli"
    HALF_CAUCHY = "half_cauchy"
    INVERSE_NAKAGAMI = "inverse_nakagami"
    RAYLEIGH = "rayleigh"


@dataclass(frozen=True, kw_only=True)
class RelevanceOptions(LawOptions):
    """One ``shrinkdrop relevance`` run (the command line's options, ``--quick`` applied)."""

    data: str
    out: str
    noise_features: int = 20
    split: int = 0
    noise: str = "bernoulli"  # a Family value
    inclusion_prior: str = "uniform"  # "uniform": keep ~ Beta(1, 1), learnt; "fixed": keep
    hidden: int = 10
    epochs: int = 3000
    lr: float = 1e-2
    restarts: int = 3
    no_gibbs: bool = False
    gibbs_warmup: int = 200
    gibbs_samples: int = 200
    gibbs_chains: int = 2
    no_linear_ss: bool = False
    ss_g: float = 1.0
    ss_sweeps: int = 2000
    no_mc_dropout: bool = False
    epochs_multiplier: float = 100.0
    test_samples: int = 10_000
    quick: bool = False
    seed: int = 0
    no_progress: bool = False


def prepare(data: UCIData, split: int, noise_features: int, seed: int) -> dict:
    """The data set with ``noise_features`` N(0, 1) columns appended (drawn with ``seed``),
    standardized on the split's training rows; float64 tensors and the raw arrays."""
    if data.task != "regression":
        raise ValueError(f"relevance needs a regression data set, but {data.name!r} is "
                         f"{data.task}")
    if not 0 <= split < data.n_splits:
        raise ValueError(f"--split has to be in [0, {data.n_splits}), but got {split}")
    rng = np.random.default_rng(seed)
    X = np.asarray(data.features, dtype=np.float64)
    n_real = X.shape[1]
    if noise_features:
        X = np.concatenate([X, rng.standard_normal((X.shape[0], noise_features))], 1)
    sp = data.splits[split]
    tr, te = np.asarray(sp.train), np.asarray(sp.test)
    mu, sd = standardize(X[tr])
    Xs = (X - mu) / sd
    y = np.asarray(data.target, dtype=np.float64)
    y_mu, y_sd = y[tr].mean(), y[tr].std()
    ys = (y - y_mu) / y_sd
    t = torch.tensor
    return dict(name=data.name, data=replace(data, features=X), X_raw=X, train=tr, test=te,
                X=t(Xs[tr]), y=t(ys[tr]), Xte=t(Xs[te]), yte=t(ys[te]), y_scale=float(y_sd),
                y_mean=float(y_mu), n_real=n_real, is_real=np.arange(X.shape[1]) < n_real)


def _rate_prior(args) -> tuple[float, float] | None:
    """``(a, b)`` of the learnt rate's hyperprior ``keep ~ Beta(a, b)``, or ``None`` (keep
    fixed)."""
    if args.inclusion_prior == "fixed":
        return None
    if args.inclusion_prior == "uniform":
        return 1.0, 1.0
    raise ValueError(f"inclusion_prior has to be 'uniform' or 'fixed', but got "
                     f"{args.inclusion_prior!r}")


def _svi(args, d, law) -> dict:
    import shrinkdrop as sd

    from .. import inference as inf

    t0 = time.perf_counter()
    rels, outs, rates = [], [], []
    ab = _rate_prior(args)
    for r in range(args.restarts):
        torch.manual_seed(args.seed + r)
        model = torch.nn.Sequential(
            sd.nn.UnitNoise(law, normalize=False), torch.nn.Linear(d["X"].shape[1], args.hidden),
            torch.nn.ReLU(), torch.nn.Linear(args.hidden, 1)).double()
        fit = inf.fit_svi(model, d["X"], d["y"], epochs=args.epochs, lr=args.lr,
                          seed=args.seed + r, progress=not args.no_progress,
                          inclusion_prior=None if ab is None else torch.distributions.Beta(*ab))
        rates.extend(float(b.mean) for b in fit.inclusion_rate().values())
        rels.append(fit.relevance()["0.xi"])
        per = max(1, args.test_samples // args.restarts)
        out = fit.sample_outputs(d["Xte"], per, seed=args.seed + r).squeeze(-1)
        outs.append((out, fit.precision))
    rel = torch.stack(rels).mean(0).numpy()
    ll_rows = torch.cat([
        0.5 * (math.log(p) - math.log(2 * math.pi)) - 0.5 * p * (o - d["yte"]) ** 2
        for o, p in outs])
    ll = (torch.logsumexp(ll_rows, 0) - math.log(ll_rows.shape[0])) - math.log(d["y_scale"])
    mean = torch.cat([o for o, _ in outs]).mean(0)
    rmse = float(((mean - d["yte"]) ** 2).mean().sqrt()) * d["y_scale"]
    return dict(relevance=rel, test_ll=float(ll.mean()), test_rmse=rmse,
                precision=[p for _, p in outs], seconds=time.perf_counter() - t0,
                inclusion_prior=args.inclusion_prior, keep_posterior_mean=rates or None,
                what="p(on)" if args.noise == "bernoulli" else "1 - E[kappa]")


def _ard(d) -> dict:
    from sklearn.linear_model import ARDRegression

    t0 = time.perf_counter()
    m = ARDRegression().fit(d["X"].numpy(), d["y"].numpy())
    mean, std = m.predict(d["Xte"].numpy(), return_std=True)
    yte = d["yte"].numpy()
    ll = (-0.5 * np.log(2 * np.pi * std**2) - 0.5 * (yte - mean) ** 2 / std**2
          - np.log(d["y_scale"]))
    return dict(relevance=np.abs(m.coef_), prior_variance=1.0 / m.lambda_,
                test_ll=float(ll.mean()),
                test_rmse=float(np.sqrt(np.mean((mean - yte) ** 2))) * d["y_scale"],
                seconds=time.perf_counter() - t0)


def _gibbs(args, d, law) -> dict:
    import pyro

    from .. import inference as inf

    t0 = time.perf_counter()
    pyro.set_rng_seed(args.seed)
    spec = inf.NetSpec([d["X"].shape[1], args.hidden, 1])
    model = inf.make_model(spec, law, "ep", likelihood="gaussian", sigma0=1.0)
    res = inf.gibbs_bernoulli(model, d["X"], d["y"], num_warmup=args.gibbs_warmup,
                              num_samples=args.gibbs_samples, chains=args.gibbs_chains,
                              seed=args.seed, progress=not args.no_progress)
    incl = inf.inclusion_probabilities(res.samples, spec)["xi_0"].numpy()
    metrics = inf.predictive_metrics(spec, res.samples, d["Xte"], d["yte"], param="ep",
                                     likelihood="gaussian", y_scale=d["y_scale"])
    return dict(relevance=incl, test_ll=float(metrics["test_ll"]),
                test_rmse=metrics.get("test_rmse"), divergences=int(res.divergences),
                seconds=time.perf_counter() - t0)


def _linear_ss(args, d) -> dict:
    from .. import inference as inf

    t0 = time.perf_counter()
    res = inf.linear_spike_slab(d["X"].numpy(), d["y"].numpy(), keep=args.keep, g=args.ss_g,
                                sweeps=args.ss_sweeps, warmup=100 if args.quick else 500, chains=2,
                                seed=args.seed,
                                inclusion_prior=_rate_prior(args))
    Xte, yte = d["Xte"].numpy(), d["yte"].numpy()
    ll = res.predictive_logpdf(Xte, yte) - math.log(d["y_scale"])
    rmse = float(np.sqrt(np.mean((res.predictive_mean(Xte) - yte) ** 2))) * d["y_scale"]
    return dict(relevance=res.inclusion, se=res.se, method=res.method, g=args.ss_g,
                inclusion_prior=args.inclusion_prior,
                sweeps=args.ss_sweeps, n_models=res.n_models, test_ll=float(ll.mean()),
                test_rmse=rmse, seconds=time.perf_counter() - t0)


def _mc_dropout(args, d) -> dict:
    from . import uci

    t0 = time.perf_counter()
    settings = uci.Settings(epochs_multiplier=args.epochs_multiplier,
                            test_samples=args.test_samples, seed=args.seed)
    tasks = uci.make_tasks([d["data"]], [args.split], ["bernoulli-mc", "bernoulli-mc+tau"],
                           replace(settings, train_eval="stacked"))
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float32)  # the runner's own precision, as `shrinkdrop uci`
    try:
        rows = uci.evaluate_stacked(tasks)
    finally:
        torch.set_default_dtype(prev)
    out = {}
    for t, row in zip(tasks, rows):
        out[t.method] = dict(test_ll=float(row["test_ll"]), test_rmse=float(row["test_rmse"]),
                             config=row["config"])
    out["seconds"] = time.perf_counter() - t0
    out["epochs"] = tasks[0].epochs
    return out


def _plot(out: Path, names: list[str], is_real, rels: dict[str, np.ndarray]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(rels), 1, figsize=(max(6, 0.28 * len(names)), 2.2 * len(rels)),
                             squeeze=False)
    colors = np.where(is_real, "tab:blue", "tab:gray")
    for ax, (label, v) in zip(axes[:, 0], rels.items()):
        ax.bar(range(len(v)), v, color=colors)
        ax.set_ylabel(label, fontsize=8)
        ax.set_xticks(range(len(v)))
        ax.set_xticklabels(names, rotation=90, fontsize=6)
    axes[0, 0].set_title("per-input relevance (blue: real inputs, grey: added noise)")
    fig.tight_layout()
    tmp = out / "relevance.png.tmp.png"
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(out / "relevance.png")


def _section(args: RelevanceOptions, out: Path, s: dict, command: str) -> None:
    from .report import Section, write_section

    sec = Section(title=f"Relevance: {s['data']} + {s['noise_features']} noise features",
                  command=command, seconds=float(s["seconds"]))
    sec.p(f"Which inputs did the data switch off? {s['n_real']} real inputs and "
          f"{s['noise_features']} pure-noise N(0, 1) columns, {s['n_train']} training rows "
          f"(split {s['split']}), test log-likelihood per point on {s['n_test']} test rows in "
          "the target's units. Structured VI: spike-and-slab (or continuous) ARD scales of a "
          f"{s['layers']} network, mean-field Gaussian weights, {s['svi']['restarts']} fit(s) "
          "averaged. Linear spike-and-slab: the exact posterior inclusion probabilities of the "
          "linear model (enumeration or collapsed Gibbs): what the data support for each "
          "input if they are near linear. AUC: probability that a real input scores above a "
          "noise input.")
    rows = []
    for key, label in (("svi", "structured VI (shrinkdrop)"), ("ard", "ARDRegression "
                       "(scikit-learn, linear)"), ("gibbs", "Gibbs (MCMC, same network)"),
                       ("linear_ss", "linear spike-and-slab posterior")):
        if key in s:
            m = s[key]
            label += f" ({m['method']})" if key == "linear_ss" else ""
            rows.append([label, m["auc"], m["test_ll"], m.get("test_rmse"), m["seconds"]])
    for key, label in (("bernoulli-mc", "MC dropout (Gal's protocol)"),
                       ("bernoulli-mc+tau", "MC dropout + fitted tau")):
        if key in s.get("mc_dropout", {}):
            m = s["mc_dropout"][key]
            rows.append([label, "-", m["test_ll"], m["test_rmse"], s["mc_dropout"]["seconds"]])
    sec.table(["method", "AUC", "test LL", "test RMSE", "seconds"], rows)
    t = s["targets"]
    sec.p("Targets: " + "; ".join(f"{k}: {'met' if v else 'not met'}" for k, v in t.items()
                                  if v is not None) + ".")
    sec.figure("relevance.png", "Per-input relevance by method (blue: real, grey: noise).")
    write_section(out, sec)


def _methods(args: RelevanceOptions, d: dict, law, s: dict) -> dict[str, np.ndarray]:
    """Run every method into the summary ``s``; their relevances by label."""
    from ..inference import relevance_auc

    is_real = d["is_real"]
    rels = {}
    svi = _svi(args, d, law)
    svi["auc"] = relevance_auc(svi["relevance"], is_real)
    svi["restarts"], svi["epochs"] = args.restarts, args.epochs
    s["svi"], rels[f"VI {svi['what']}"] = svi, svi["relevance"]
    print(f"relevance {d['name']}: structured VI auc={svi['auc']:.3f} "
          f"test_ll={svi['test_ll']:.3f} ({svi['seconds']:.0f} s)", file=sys.stderr)
    ard = _ard(d)
    ard["auc"] = relevance_auc(ard["relevance"], is_real)
    ard["auc_prior_variance"] = relevance_auc(ard["prior_variance"], is_real)
    s["ard"], rels["ARDRegression |coef|"] = ard, ard["relevance"]
    if args.noise == "bernoulli" and not args.no_gibbs:
        gb = _gibbs(args, d, law)
        gb["auc"] = relevance_auc(gb["relevance"], is_real)
        s["gibbs"], rels["Gibbs p(on)"] = gb, gb["relevance"]
        print(f"relevance {d['name']}: Gibbs auc={gb['auc']:.3f} ({gb['seconds']:.0f} s)",
              file=sys.stderr)
    if not args.no_linear_ss:
        ls = _linear_ss(args, d)
        ls["auc"] = relevance_auc(ls["relevance"], is_real)
        s["linear_ss"], rels["linear SS p(on)"] = ls, ls["relevance"]
        print(f"relevance {d['name']}: linear spike-and-slab ({ls['method']}) "
              f"auc={ls['auc']:.3f} test_ll={ls['test_ll']:.3f} ({ls['seconds']:.0f} s)",
              file=sys.stderr)
    if not args.no_mc_dropout:
        s["mc_dropout"] = _mc_dropout(args, d)
    return rels


def _write(out: Path, d: dict, s: dict, rels: dict[str, np.ndarray]) -> None:
    """``relevance.csv``, ``relevance.png`` and ``summary.json``."""
    is_real = d["is_real"]
    names = [f"x{i}" if r else f"noise{i - d['n_real']}" for i, r in enumerate(is_real)]
    table = [{"input": n, "real": bool(r), **{k: float(v[i]) for k, v in rels.items()}}
             for i, (n, r) in enumerate(zip(names, is_real))]
    write_csv_atomic(out / "relevance.csv", table, ["input", "real", *rels])
    _plot(out, names, is_real, rels)
    atomic_write_text(out / "summary.json", json.dumps(jsonable(s), indent=1))


def run(args: RelevanceOptions, *, command: str = "") -> int:
    """Read off the relevances of ``args`` and write ``OUT``; ``command`` is the run's command
    line (the report shows it). Returns 0."""
    from ..data import resolve_data

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    law = args.law()
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    t0 = time.perf_counter()
    try:
        data = resolve_data(args.data)[0]
        d = prepare(data, args.split, args.noise_features, args.seed)
        s = {"data": d["name"], "split": args.split, "n_real": d["n_real"],
             "noise_features": args.noise_features, "n_train": int(d["X"].shape[0]),
             "n_test": int(d["Xte"].shape[0]), "layers": f"{d['X'].shape[1]}-{args.hidden}-1",
             "noise": repr(law), "seed": args.seed}
        rels = _methods(args, d, law, s)
        svi, ard = s["svi"], s["ard"]
        mc_ll = s.get("mc_dropout", {}).get("bernoulli-mc", {}).get("test_ll")
        s["targets"] = {
            "AUC >= 0.95": svi["auc"] >= 0.95,
            "AUC >= ARDRegression's": svi["auc"] >= max(ard["auc"], ard["auc_prior_variance"]),
            "test LL >= MC dropout's": None if mc_ll is None else svi["test_ll"] >= mc_ll,
        }
        s["seconds"] = time.perf_counter() - t0
        _write(out, d, s, rels)
        _section(args, out, s, command)
        gibbs = f", Gibbs {s['gibbs']['auc']:.3f}" if "gibbs" in s else ""
        if "linear_ss" in s:
            gibbs += f", linear spike-and-slab {s['linear_ss']['auc']:.3f}"
        print(f"relevance {d['name']}: VI auc={svi['auc']:.3f} (ARDRegression "
              f"{ard['auc']:.3f}{gibbs}); "
              f"test LL VI {svi['test_ll']:.3f}"
              + (f", MC dropout {mc_ll:.3f}" if mc_ll is not None else "")
              + f" ({s['seconds']:.0f} s) -> {out / 'summary.json'}", file=sys.stderr)
    finally:
        torch.set_default_dtype(prev)
    return 0
