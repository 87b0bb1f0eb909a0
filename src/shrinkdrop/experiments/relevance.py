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

import argparse
import json
import math
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from .runner import atomic_write_text, jsonable, write_csv_atomic

HELP = ("Which inputs the data switched off: structured-VI relevance vs scikit-learn's "
        "ARDRegression and Gibbs, AUC against added noise features, test LL vs MC dropout")

__all__ = ["HELP", "add_arguments", "run", "prepare", "FAMILIES"]

FAMILIES = ("bernoulli", "half_cauchy", "inverse_nakagami", "rayleigh")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True,
                   help="built-in data set name (e.g. diabetes) or a UCI-layout directory")
    p.add_argument("--noise-features", type=int, default=20,
                   help="pure-noise N(0, 1) columns appended to the inputs (default 20)")
    p.add_argument("--split", type=int, default=0, help="train/test split index (default 0)")
    p.add_argument("--noise", default="bernoulli", choices=FAMILIES,
                   help="prior law of the ARD scales (default bernoulli: spike-and-slab)")
    p.add_argument("--keep", type=float, default=0.5, help="Bernoulli prior inclusion (0.5)")
    p.add_argument("--scale", type=float, default=1.0,
                   help="scale of half-Cauchy / inverse Nakagami / Rayleigh (1.0)")
    p.add_argument("--df", type=float, default=3.0, help="inverse Nakagami degrees of freedom")
    p.add_argument("--hidden", type=int, default=10, help="hidden units (default 10)")
    p.add_argument("--epochs", type=int, default=3000, help="VI epochs, full batch (3000)")
    p.add_argument("--lr", type=float, default=1e-2, help="VI learning rate (Adam, 0.01)")
    p.add_argument("--restarts", type=int, default=3,
                   help="independent VI fits (seeds seed..seed+R-1); relevances averaged, "
                   "predictive = their equal mixture (default 3)")
    p.add_argument("--no-gibbs", action="store_true", help="skip the Gibbs reference")
    p.add_argument("--gibbs-warmup", type=int, default=200)
    p.add_argument("--gibbs-samples", type=int, default=200)
    p.add_argument("--gibbs-chains", type=int, default=2)
    p.add_argument("--no-linear-ss", action="store_true",
                   help="skip the exact linear spike-and-slab reference")
    p.add_argument("--ss-g", type=float, default=1.0,
                   help="linear spike-and-slab slab variance / noise variance (default 1)")
    p.add_argument("--ss-sweeps", type=int, default=2000,
                   help="linear spike-and-slab collapsed Gibbs sweeps per chain, 2 chains, "
                   "after 500 warm-up sweeps (default 2000; exact enumeration up to 14 inputs)")
    p.add_argument("--no-mc-dropout", action="store_true",
                   help="skip the MC dropout baseline (Gal's grid + refit on the same rows)")
    p.add_argument("--epochs-multiplier", type=float, default=100.0,
                   help="MC dropout epochs = the data set's base epochs x this (default 100: "
                   "the protocol of the UCI table)")
    p.add_argument("--test-samples", type=int, default=10_000,
                   help="MC samples for test log-likelihoods (default 10000)")
    p.add_argument("--quick", action="store_true",
                   help="a short run for the demo: 1000 VI epochs, 1 restart, Gibbs 60 + 60 x 1 "
                   "chain, linear spike-and-slab 300 + 100 sweeps, MC dropout at 10x epochs, "
                   "1000 test samples")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true")
    p.add_argument("--out", required=True, help="output directory")


def _law(args):
    """The prior law of the scales from the CLI flags: ``shrinkdrop mcmc``'s own parser."""
    from .mcmc import _noise

    return _noise(args)


def prepare(data, split: int, noise_features: int, seed: int) -> dict:
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
    mu, sd = X[tr].mean(0), X[tr].std(0)
    sd[sd == 0] = 1.0
    Xs = (X - mu) / sd
    y = np.asarray(data.target, dtype=np.float64)
    y_mu, y_sd = y[tr].mean(), y[tr].std()
    ys = (y - y_mu) / y_sd
    t = torch.tensor
    return dict(name=data.name, data=replace(data, features=X), X_raw=X, train=tr, test=te,
                X=t(Xs[tr]), y=t(ys[tr]), Xte=t(Xs[te]), yte=t(ys[te]), y_scale=float(y_sd),
                y_mean=float(y_mu), n_real=n_real, is_real=np.arange(X.shape[1]) < n_real)


def _svi(args, d, law) -> dict:
    import shrinkdrop as sd

    from .. import inference as inf

    t0 = time.perf_counter()
    rels, outs = [], []
    for r in range(args.restarts):
        torch.manual_seed(args.seed + r)
        model = torch.nn.Sequential(
            sd.nn.UnitNoise(law, normalize=False), torch.nn.Linear(d["X"].shape[1], args.hidden),
            torch.nn.ReLU(), torch.nn.Linear(args.hidden, 1)).double()
        fit = inf.fit_svi(model, d["X"], d["y"], epochs=args.epochs, lr=args.lr,
                          seed=args.seed + r, progress=not args.no_progress)
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
                                seed=args.seed)
    Xte, yte = d["Xte"].numpy(), d["yte"].numpy()
    ll = res.predictive_logpdf(Xte, yte) - math.log(d["y_scale"])
    rmse = float(np.sqrt(np.mean((res.predictive_mean(Xte) - yte) ** 2))) * d["y_scale"]
    return dict(relevance=res.inclusion, se=res.se, method=res.method, g=args.ss_g,
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


def _section(args, out: Path, s: dict) -> None:
    from .report import Section, write_section

    cmd = (["shrinkdrop"] + sys.argv[1:]) if sys.argv[1:2] == ["relevance"] else [
        "shrinkdrop", "relevance", "--data", str(args.data), "--noise-features",
        str(args.noise_features)] + (["--quick"] if args.quick else []) + ["--out", str(out)]
    sec = Section(title=f"Relevance: {s['data']} + {s['noise_features']} noise features",
                  command=" ".join(cmd), seconds=float(s["seconds"]))
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


def run(args) -> int:
    from ..data import resolve_data
    from ..inference import relevance_auc

    if args.noise_features < 1:
        raise ValueError(f"--noise-features has to be >= 1 (the AUC needs noise inputs), but "
                         f"got {args.noise_features}")
    for name in ("hidden", "epochs", "restarts", "gibbs_warmup", "gibbs_samples",
                 "gibbs_chains", "test_samples", "ss_sweeps"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} has to be >= 1, but got "
                             f"{getattr(args, name)}")
    if not 0 < args.keep < 1:
        raise ValueError(f"--keep has to be in (0, 1), but got {args.keep}")
    if not (math.isfinite(args.ss_g) and args.ss_g > 0):
        raise ValueError(f"--ss-g has to be a finite number > 0, but got {args.ss_g}")
    if args.quick:
        args.epochs, args.restarts = min(args.epochs, 1000), 1
        args.gibbs_warmup, args.gibbs_samples = min(args.gibbs_warmup, 60), min(
            args.gibbs_samples, 60)
        args.gibbs_chains = 1
        args.ss_sweeps = min(args.ss_sweeps, 300)
        args.epochs_multiplier = min(args.epochs_multiplier, 10.0)
        args.test_samples = min(args.test_samples, 1000)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    law = _law(args)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    t0 = time.perf_counter()
    try:
        data = resolve_data(args.data)[0]
        d = prepare(data, args.split, args.noise_features, args.seed)
        is_real = d["is_real"]
        s = {"data": d["name"], "split": args.split, "n_real": d["n_real"],
             "noise_features": args.noise_features, "n_train": int(d["X"].shape[0]),
             "n_test": int(d["Xte"].shape[0]), "layers": f"{d['X'].shape[1]}-{args.hidden}-1",
             "noise": repr(law), "seed": args.seed}
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
        mc_ll = s.get("mc_dropout", {}).get("bernoulli-mc", {}).get("test_ll")
        s["targets"] = {
            "AUC >= 0.95": svi["auc"] >= 0.95,
            "AUC >= ARDRegression's": svi["auc"] >= max(ard["auc"], ard["auc_prior_variance"]),
            "test LL >= MC dropout's": None if mc_ll is None else svi["test_ll"] >= mc_ll,
        }
        s["seconds"] = time.perf_counter() - t0
        names = [f"x{i}" if r else f"noise{i - d['n_real']}" for i, r in enumerate(is_real)]
        table = [{"input": n, "real": bool(r), **{k: float(v[i]) for k, v in rels.items()}}
                 for i, (n, r) in enumerate(zip(names, is_real))]
        write_csv_atomic(out / "relevance.csv", table, ["input", "real", *rels])
        _plot(out, names, is_real, rels)
        atomic_write_text(out / "summary.json", json.dumps(jsonable(s), indent=1))
        _section(args, out, s)
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
