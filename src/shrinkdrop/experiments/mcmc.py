"""``shrinkdrop mcmc``: posterior sampling of a small network under a structured shrinkage prior.

Continuous families: NUTS on the EP or HP model. Bernoulli: Gibbs on the scales alternating
with NUTS on the weights (EP only). Two backends: ``jax`` (NumPyro's NUTS on the twin models of
:mod:`shrinkdrop.inference.jax_models`, chains vectorised, compiled; extra ``mcmc-jax``) and
``pyro`` (the reference models, :func:`shrinkdrop.inference.run_nuts`); ``auto`` takes ``jax``
when NumPyro is installed. Writes ``summary.json`` (diagnostics, test metrics, the read-out
table), ``posterior.nc`` (the draws as ArviZ ``InferenceData``, when ArviZ is installed),
``readout.csv``, ``trace.png``, ``posterior.png`` and the report's ``section.json`` to
``--out``; ``--iw-samples`` adds the importance-weighted read-outs of a
MAP-with-noise network (joint and per-unit conditional, :mod:`shrinkdrop.inference.readout`).
All the mathematics is in :mod:`shrinkdrop.inference`.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from ..data import standardize
from .laws import LawOptions
from .runner import atomic_write_text, jsonable, write_csv_atomic

HELP = "NUTS / Gibbs on a small network under an EP or HP structured prior; writes summary.json"

#: exit code of a run whose chains did not mix, with ``--strict`` (without it: 0 and a warning)
EXIT_NOT_MIXED = 3

#: the samplers ``--backend`` names (``auto``: ``jax`` when NumPyro is installed, else ``pyro``)
BACKENDS = ("auto", "jax", "pyro")

__all__ = ["HELP", "EXIT_NOT_MIXED", "BACKENDS", "McmcOptions", "resolve_backend", "run"]


@dataclass(frozen=True, kw_only=True)
class McmcOptions(LawOptions):
    """One ``shrinkdrop mcmc`` run (the command line's options, ``--quick`` already applied)."""

    data: str
    noise: str  # a ScaleFamily value
    out: str
    param: str = "ep"
    structure: str = "ard"
    residual: bool = False
    hidden: int = 10
    depth: int = 1
    sigma0: float = 1.0
    precision: float | None = None
    warmup: int = 300
    samples: int = 300
    chains: int = 2
    max_tree_depth: int = 8
    target_accept: float = 0.8
    dense_mass: bool = False
    backend: str = "auto"
    split: int = 0
    train_size: int | None = None
    noise_features: int = 0
    iw_samples: int = 0
    iw_only: bool = False
    iw_rounds: int = 4
    iw_grid: int = 16
    quick: bool = False
    rhat_max: float | None = None
    ess_min: float | None = None
    strict: bool = False
    seed: int = 0
    no_progress: bool = False


def resolve_backend(backend: str) -> str:
    """``"jax"`` or ``"pyro"``: ``auto`` is ``jax`` when NumPyro and JAX import, else ``pyro``.

    Raises:
        ValueError: ``backend`` is not one of :data:`BACKENDS`.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend has to be one of {', '.join(BACKENDS)}, but got {backend!r}")
    if backend != "auto":
        return backend
    import importlib.util

    ok = all(importlib.util.find_spec(m) is not None for m in ("jax", "numpyro"))
    return "jax" if ok else "pyro"


def _prepare(args: McmcOptions) -> dict:
    from ..data import resolve_data

    data = resolve_data(args.data)[0]
    if not 0 <= args.split < data.n_splits:
        raise ValueError(f"--split has to be in [0, {data.n_splits}), but got {args.split}")
    split = data.splits[args.split]
    X = np.asarray(data.features, dtype=np.float64)
    rng = np.random.default_rng(args.seed)
    n_real = X.shape[1]
    if args.noise_features:
        X = np.concatenate([X, rng.standard_normal((X.shape[0], args.noise_features))], 1)
    train = np.asarray(split.train)
    if args.train_size and args.train_size < len(train):
        train = np.sort(rng.choice(train, args.train_size, replace=False))
    test = np.asarray(split.test)
    mu, sd = standardize(X[train])
    X = (X - mu) / sd
    y = np.asarray(data.target, dtype=np.float64)
    if data.task == "regression":
        y_mu, y_sd = y[train].mean(), y[train].std()
        y = (y - y_mu) / y_sd
        yt = torch.tensor(y)
        likelihood, out_dim = "gaussian", 1
    else:
        y_sd = 1.0
        yt = torch.tensor(y).long()
        likelihood, out_dim = "categorical", data.n_classes
    Xt = torch.tensor(X)
    return dict(name=data.name, X=Xt[train], y=yt[train], Xte=Xt[test], yte=yt[test],
                y_scale=float(y_sd), likelihood=likelihood, out_dim=out_dim, n_real=n_real)


def _plots(out: Path, samples, spec, table, what):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sites = [s for s in spec.sites][:4]
    fig, axes = plt.subplots(len(sites), 1, figsize=(7, 1.8 * len(sites)), squeeze=False)
    for ax, s in zip(axes[:, 0], sites):
        x = samples[s.name].reshape(*samples[s.name].shape[:2], -1)[..., 0].double()
        if (x > 0).all():
            x = x.log()
            ax.set_ylabel(f"log {s.name}[0]")
        else:
            ax.set_ylabel(f"{s.name}[0]")
        for c in range(x.shape[0]):
            ax.plot(x[c].numpy(), lw=0.6, label=f"chain {c}")
    axes[0, 0].legend(fontsize=7)
    axes[-1, 0].set_xlabel("draw")
    fig.tight_layout()
    fig.savefig(out / "trace.png", dpi=110)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(max(6, 0.22 * len(table)), 3))
    labels = [f"{r['site']}" + ("" if r["unit"] is None else f"[{r['unit']}]") for r in table]
    ax.bar(range(len(table)), [r[what] for r in table], color="tab:blue")
    ax.set_xticks(range(len(table)))
    ax.set_xticklabels(labels, rotation=90, fontsize=6)
    ax.set_ylim(0, 1)
    ax.set_ylabel(what)
    fig.tight_layout()
    fig.savefig(out / "posterior.png", dpi=110)
    plt.close(fig)


def _iw_readouts(args, d, spec, noise, what) -> dict:
    """The IW read-outs of a MAP-with-noise network: per-unit conditional (the one reported as
    ``auc`` / ``table``) and joint (``joint``: its ESS shows the collapse)."""
    from .. import inference as inf
    from ..inference.readout import conditional_readout

    if d["likelihood"] == "gaussian" and args.precision is None:
        raise ValueError("--iw-samples needs a fixed --precision (the MAP fit does not learn it)")
    pmodel = inf.make_model(spec, noise, "ep", likelihood=d["likelihood"], sigma0=args.sigma0,
                            precision=args.precision)
    t1 = time.perf_counter()
    point = inf.fit_map_noise(pmodel, d["X"], d["y"], seed=args.seed)
    fit_seconds = time.perf_counter() - t1

    def ll(scales):
        p = {**point, **scales}  # scales carry a leading sample dimension
        return inf.log_likelihood(spec, p, d["X"], d["y"], likelihood=d["likelihood"],
                                  precision=args.precision)

    n = d["X"].shape[0]
    kw = dict(samples=args.iw_samples, n=n, sigma0=args.sigma0, precision=args.precision or 1.0)
    joint = inf.importance_readout(ll, noise, spec.sites,
                                   generator=torch.Generator().manual_seed(args.seed), **kw)
    rounds = max(1, args.iw_rounds)
    cond = conditional_readout(ll, noise, spec.sites, grid=args.iw_grid, rounds=rounds,
                               generator=torch.Generator().manual_seed(args.seed),
                               **{**kw, "samples": max(1, args.iw_samples // rounds)})
    joint_table = inf.readout_table(spec, dict(joint), what=what)
    table = inf.readout_table(spec, dict(cond), what=what)
    ess_rows = inf.readout_table(spec, cond.ess, what="ess")
    for row, e in zip(table, ess_rows):
        row["ess"] = e["ess"]
    res = {"method": "conditional", "samples": args.iw_samples, "table": table,
           "ess_min": cond.ess_min, "ess_median": cond.ess_median,
           "grid": cond.grid.numel(), "rounds": rounds, "fit_seconds": fit_seconds,
           "joint": {"ess": joint.ess, "table": joint_table}}
    if args.noise_features:
        res["auc"] = _input_auc(table, what, d["n_real"])
        res["joint"]["auc"] = _input_auc(joint_table, what, d["n_real"])
    res["seconds"] = time.perf_counter() - t1
    return res


def _section(args: McmcOptions, out: Path, summary: dict, spec, what: str,
             command: str) -> None:
    """``section.json`` for the report: diagnostics table, read-out table, the two plots."""
    from .report import Section, write_section

    s = summary
    sec = Section(
        title=f"MCMC: {s['data']}, {s['noise']}, {s['param'].upper()}, {s['structure']}",
        command=command, seconds=float(s["seconds"]))
    sampler = "NumPyro NUTS (jax)" if s["backend"] == "jax" else "Pyro NUTS"
    sec.p(f"{sampler}{' + Gibbs' if args.noise == 'bernoulli' else ''} on a "
          f"{'-'.join(map(str, s['layers']))} network under the structured prior "
          f"({s['chains']} chains x {s['samples']} draws after {s['warmup']} warm-up, tree "
          f"depth {s['max_tree_depth']}, {s['n_train']} training rows). 'Shared' diagnostics are "
          "over the quantities hidden-unit permutations leave alone (input scales, ADD scales, "
          "noise precision, training log-likelihood); the all-site ones are dominated by "
          "permutation modes; the verdict is on the shared ones.")
    if s["mixed"]:
        sec.p(f"Verdict: the chains {s['verdict']}.")
    else:
        sec.note(f"Verdict: the chains did not mix ({s['verdict']}); the numbers below are not "
              f"posterior estimates. Run instead: `{s['advice'][0]}`"
              + (f", or the linear model: `{s['advice'][1]}`" if len(s["advice"]) > 1 else "")
              + ".")
    sec.table(["quantity", "value"], [
        ["mixed (shared R-hat, ESS)", "yes" if s["mixed"] else "NO"],
        ["divergences", s["divergences"]],
        ["min ESS (shared)", s["min_ess_shared"]], ["max R-hat (shared)", s["max_rhat_shared"]],
        ["ESS/s (shared)", s["ess_per_second_shared"]],
        ["min ESS (all sites)", s["min_ess"]], ["max R-hat (all sites)", s["max_rhat"]],
        ["test log-lik per point", s["test_ll"]],
        ["test RMSE", s["test_rmse"] if s["test_rmse"] is not None else "-"],
        ["seconds", s["seconds"]]] + ([["relevance AUC", s["auc"]]] if "auc" in s else []))
    first = [r for r in s["table"] if r["site"] == "xi_0"]
    sec.table(["input unit", what], [[r["unit"], r[what]] for r in first])
    sec.figure("trace.png", "Trace of the first scale of each site (log scale when positive).")
    sec.figure("posterior.png", f"Posterior {what} of every scale.")
    write_section(out, sec)


#: the command line of a set of options (dest -> value): how advice names a run
CommandOf = Callable[[dict], str]


def _advice(args: McmcOptions, out: Path, command_of: CommandOf) -> list[str]:
    """What to run instead when the chains did not mix: longer / more chains (the same
    posterior), then, for a network, the linear model (no hidden-unit modes)."""
    vals = asdict(args)

    def command(out_: str, **override) -> str:
        return command_of({**vals, **override, "out": out_})

    warm = max(1000, 2 * args.warmup)
    longer = command(str(out) + "_long", quick=False, strict=None,
                     chains=max(4, args.chains), warmup=warm, samples=max(1000, 2 * args.samples),
                     max_tree_depth=max(8, args.max_tree_depth))
    out_ = [longer]
    if args.depth > 0 and args.structure == "ard":
        out_.append(command(str(out) + "_linear", quick=False, strict=None, depth=0,
                            hidden=None, chains=max(4, args.chains), warmup=max(300, args.warmup),
                            samples=max(300, args.samples),
                            max_tree_depth=max(7, args.max_tree_depth)))
    return out_


def _input_auc(table: list[dict], what: str, n_real: int) -> float:
    """Relevance AUC of the input scales (site ``xi_0``): real inputs are units < ``n_real``."""
    from .. import inference as inf

    first = [r for r in table if r["site"] == "xi_0"]
    return inf.relevance_auc([r[what] for r in first], [r["unit"] < n_real for r in first])


def _write_summary(out: Path, summary: dict) -> None:
    """``summary.json``, written atomically (never half a file)."""
    atomic_write_text(out / "summary.json", json.dumps(jsonable(summary), indent=1))


def _sample(args: McmcOptions, model, d: dict) -> object:
    """The posterior draws: Gibbs + NUTS for Bernoulli scales, NUTS otherwise."""
    from .. import inference as inf

    kw = dict(num_warmup=args.warmup, num_samples=args.samples, chains=args.chains,
              seed=args.seed, max_tree_depth=args.max_tree_depth, progress=not args.no_progress)
    if resolve_backend(args.backend) == "jax":
        from ..inference.jax_models import run_nuts_jax

        return run_nuts_jax(model, d["X"], d["y"], target_accept_prob=args.target_accept,
                            dense_mass=args.dense_mass, **kw)
    if args.noise == "bernoulli":
        return inf.gibbs_bernoulli(model, d["X"], d["y"], **kw)
    return inf.run_nuts(model, d["X"], d["y"], target_accept_prob=args.target_accept, **kw)


def _diagnose(args: McmcOptions, res, spec, d: dict) -> tuple[dict, dict, object]:
    """Diagnostics of all sites, of the shared quantities, and the verdict on the latter."""
    from .. import inference as inf

    samples = res.samples
    diag = inf.summarize(samples, seconds=res.sample_seconds)
    # quantities both parametrizations share that hidden-unit permutations leave alone
    # (raw weights of different chains sit in different permutation modes): the input
    # scales, the noise precision and the training log-likelihood
    common = {s.name: samples[s.name] for s in spec.sites if s.layer == 0}
    common.update({s.name: samples[s.name] for s in spec.sites if s.kind == "add"})
    if "precision" in samples:
        common["precision"] = samples["precision"]
    flat = inf.flatten_chains(samples)
    lik_param = "ep" if args.noise == "bernoulli" else args.param
    common["train_log_lik"] = inf.log_likelihood(
        spec, flat, d["X"], d["y"], param=lik_param, likelihood=d["likelihood"],
        precision=args.precision).reshape(args.chains, args.samples)
    diag_common = inf.summarize(common, seconds=res.sample_seconds)
    verdict = inf.mixing_verdict(diag_common, **{
        k: v for k, v in (("rhat_max", args.rhat_max), ("ess_min", args.ess_min))
        if v is not None})
    return diag, diag_common, verdict, common


def _readout(args: McmcOptions, samples, spec, n: int, what: str) -> list[dict]:
    """The read-out table: inclusion probabilities (Bernoulli) or ``1 - E[kappa]``."""
    from .. import inference as inf

    if args.noise == "bernoulli":
        vals = inf.inclusion_probabilities(samples, spec)
    else:
        kap = inf.shrinkage_factors(samples, spec, n, sigma0=args.sigma0,
                                    precision=args.precision or 1.0)
        vals = {k: 1 - v for k, v in kap.items()}
    return inf.readout_table(spec, vals, what=what)


def _summary(args: McmcOptions, d: dict, spec, noise, res, seconds: float, diagnosed: tuple,
             advice: list[str], metrics: dict, table: list[dict], what: str) -> dict:
    diag, diag_common, verdict = diagnosed[:3]
    return {
        "data": d["name"], "noise": repr(noise), "param": args.param,
        "structure": args.structure, "layers": spec.layers, "residual": spec.residual,
        "n_train": d["X"].shape[0], "n_test": int(d["Xte"].shape[0]), "warmup": args.warmup,
        "samples": args.samples, "chains": args.chains,
        "max_tree_depth": args.max_tree_depth, "seed": args.seed,
        "backend": resolve_backend(args.backend), "target_accept": args.target_accept,
        "dense_mass": args.dense_mass,
        "divergences": res.divergences, "gradients": getattr(res, "gradients", None),
        "min_ess": diag["min_ess"], "max_rhat": diag["max_rhat"],
        "ess_per_second": diag["ess_per_second"],
        "min_ess_shared": diag_common["min_ess"], "max_rhat_shared": diag_common["max_rhat"],
        "ess_per_second_shared": diag_common["ess_per_second"],
        # the verdict on the shared quantities (all-site diagnostics carry permutation modes)
        "mixed": verdict.mixed, "verdict": verdict.text(),
        "mixing_thresholds": {"rhat_max": verdict.rhat_max, "ess_min": verdict.ess_min},
        "advice": advice,
        "sample_seconds": res.sample_seconds, "seconds": seconds,
        **metrics, "readout": what, "table": table,
        "per_site": diag["per_site"], "per_site_shared": diag_common["per_site"],
    }


def _iw_only(args: McmcOptions, d: dict, spec, noise, iw: dict, what: str, out: Path) -> int:
    summary = {"data": d["name"], "noise": repr(noise), "layers": spec.layers,
               "n_train": d["X"].shape[0], "seed": args.seed, "readout": what, "iw": iw}
    _write_summary(out, summary)
    print(f"mcmc --iw-only {d['name']} {args.noise}: conditional auc="
          f"{iw.get('auc')} (joint auc={iw['joint'].get('auc')}, joint ess="
          f"{iw['joint']['ess']:.3g}) ({iw['seconds']:.0f} s) -> {out / 'summary.json'}",
          file=sys.stderr)
    return 0


def run(args: McmcOptions, *, command: str, command_of: CommandOf) -> int:
    """Sample the posterior of ``args`` and write ``OUT``; returns the exit code (0, or
    :data:`EXIT_NOT_MIXED` with ``strict`` when the chains did not mix). ``command`` is the
    run's command line (the report shows it); ``command_of`` writes the command lines the
    advice names."""
    import pyro

    from .. import inference as inf

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    prev_dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    try:
        pyro.set_rng_seed(args.seed)
        d = _prepare(args)
        spec = inf.NetSpec([d["X"].shape[1]] + [args.hidden] * args.depth + [d["out_dim"]],
                           structure=args.structure,
                           residual=args.residual or args.structure != "ard")
        noise = args.law()
        model = inf.make_model(spec, noise, args.param, likelihood=d["likelihood"],
                               sigma0=args.sigma0, precision=args.precision)
        what = "inclusion" if args.noise == "bernoulli" else "relevance"
        iw = _iw_readouts(args, d, spec, noise, what) if args.iw_samples else None
        if args.iw_only:
            return _iw_only(args, d, spec, noise, iw, what, out)
        t0 = time.perf_counter()
        res = _sample(args, model, d)
        seconds = time.perf_counter() - t0
        diagnosed = _diagnose(args, res, spec, d)
        diag, diag_common, verdict, common = diagnosed
        advice = [] if verdict.mixed else _advice(args, out, command_of)
        metrics = inf.predictive_metrics(spec, res.samples, d["Xte"], d["yte"],
                                         param=args.param, likelihood=d["likelihood"],
                                         precision=args.precision, y_scale=d["y_scale"])
        table = _readout(args, res.samples, spec, d["X"].shape[0], what)
        summary = _summary(args, d, spec, noise, res, seconds, diagnosed, advice, metrics,
                           table, what)
        if args.noise_features:
            summary["auc"] = _input_auc(table, what, d["n_real"])
        if iw is not None:
            summary["iw"] = iw
        summary["inference_data"] = write_inference_data(out / "posterior.nc", res.samples,
                                                         common)
        write_csv_atomic(out / "readout.csv", table, ["site", "layer", "kind", "unit", what])
        _plots(out, res.samples, spec, table, what)
        _write_summary(out, summary)
        _section(args, out, summary, spec, what, command)
        print(f"mcmc {d['name']} {args.noise} {args.param}: divergences={res.divergences} "
              f"shared: min_ess={diag_common['min_ess']:.1f} "
              f"max_rhat={diag_common['max_rhat']:.3f} "
              f"ess/s={diag_common['ess_per_second']:.3g}; all sites: "
              f"min_ess={diag['min_ess']:.1f} max_rhat={diag['max_rhat']:.3f}; "
              f"test_ll={metrics['test_ll']:.3f} ({seconds:.0f} s) -> {out / 'summary.json'}",
              file=sys.stderr)
        if verdict.mixed:
            print(f"mcmc: the chains {verdict.text()}", file=sys.stderr)
            return 0
        print(_warning(verdict, advice, args.strict), file=sys.stderr)
    finally:
        torch.set_default_dtype(prev_dtype)
    return EXIT_NOT_MIXED if args.strict else 0


def write_inference_data(path: Path, samples: dict, shared: dict) -> str | None:
    """The draws as ArviZ ``InferenceData`` in netCDF (``posterior``: every site;
    ``sample_stats``: none; ``posterior`` also carries the shared quantities' training
    log-likelihood as ``train_log_lik``), written atomically; returns the file name, or None
    when ArviZ (or its netCDF engine h5netcdf) is not installed."""
    import importlib.util
    import os

    if any(importlib.util.find_spec(m) is None for m in ("arviz", "h5netcdf")):
        return None
    import arviz as az

    post = {k: v.detach().double().numpy() for k, v in samples.items()}
    post["train_log_lik"] = shared["train_log_lik"].detach().double().numpy()
    dims = {k: [f"{k}_dim_{i}" for i in range(v.ndim - 2)] for k, v in post.items()}
    idata = az.from_dict(posterior=post, dims=dims)
    tmp = path.with_name(path.name + ".tmp")
    idata.to_netcdf(str(tmp), engine="h5netcdf")
    os.replace(tmp, path)
    return path.name


def _warning(verdict, advice: list[str], strict: bool) -> str:
    lines = ["", "!" * 78,
             f"!! WARNING: the chains DID NOT MIX -- {'; '.join(verdict.reasons)}.",
             "!! The numbers in summary.json (test LL, read-outs, ESS/s) are not posterior "
             "estimates.", "!! Run instead (longer, more chains):", f"!!   {advice[0]}"]
    if len(advice) > 1:
        lines += ["!! or the linear ARD model (no hidden-unit modes):", f"!!   {advice[1]}"]
    lines += [f"!! (exit code {EXIT_NOT_MIXED if strict else 0}"
              f"{'' if strict else '; --strict makes it ' + str(EXIT_NOT_MIXED)})", "!" * 78]
    return "\n".join(lines)
