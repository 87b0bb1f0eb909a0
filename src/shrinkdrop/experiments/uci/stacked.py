"""The stacked engine: every grid point of several splits of one data set and method trained
at once as one :class:`~shrinkdrop.ensemble.StackedNoisyMLP` (then every refit as another)."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

import numpy as np

from .methods import TAU_FIT_SAMPLES, Config, base_method
from .scoring import best_config, gal_decay, label, prepare, scores, tau_folds
from .settings import UnitTask

__all__ = ["evaluate_stacked"]

#: one model of a round: (group, index in chosen[g], config, seed, alternative tau)
_Model = tuple[int, int, Config, int, "float | str | None"]


def _stack(tasks: list[UnitTask], x_tr: Sequence[np.ndarray], y_tr: Sequence[np.ndarray],
           x_ev: Sequence[np.ndarray], y_ev: Sequence[np.ndarray], dev) -> tuple:
    """The groups' rows standardised on their training rows and stacked: ``(prep, Xt, Yt, Xe,
    Ye)`` (``prep[g]`` as :func:`~shrinkdrop.experiments.uci.scoring.prepare` returns it)."""
    import torch

    regression = tasks[0].task == "regression"
    prep = [prepare(x_tr[g], y_tr[g], x_ev[g], y_ev[g], regression) for g in range(len(tasks))]
    ydt = torch.float32 if regression else torch.long
    Xt = torch.as_tensor(np.stack([p[0] for p in prep]), dtype=torch.float32, device=dev)
    Yt = torch.as_tensor(np.stack([p[1] for p in prep]), dtype=ydt, device=dev)
    Xe = torch.as_tensor(np.stack([p[2] for p in prep]), dtype=torch.float32, device=dev)
    Ye = torch.as_tensor(np.stack([p[3] for p in prep]), dtype=ydt, device=dev)
    return prep, Xt, Yt, Xe, Ye


def _models(chosen: list[list[Config]], seeds: list[list[int]],
            alt_tau: list[list[float | str | None]] | None) -> tuple[list[_Model], list, bool]:
    """The round's models ordered by noise law (one shared law object per law: one draw call
    per law), their noise laws, and their common normalisation."""
    laws: dict[tuple, object] = {}
    models = []
    for g in range(len(chosen)):
        for i, cfg in enumerate(chosen[g]):
            models.append((g, i, cfg, seeds[g][i], alt_tau[g][i] if alt_tau else None))
    models.sort(key=lambda m: (m[2].family, m[2].params, m[2].normalize))
    noises = []
    for _, _, cfg, _, _ in models:
        key = (cfg.family, cfg.params)
        if key not in laws:
            laws[key] = cfg.noise()
        noises.append(laws[key])
    normalize = {m[2].normalize for m in models}
    if len(normalize) != 1:  # pragma: no cover - a method's configs share normalisation
        raise ValueError("a stacked round needs one normalisation for all its configurations")
    return models, noises, normalize.pop()


def _tau_columns(net, models: list[_Model], taus: np.ndarray, Xe, Ye, ym: np.ndarray,
                 ys: np.ndarray, test_samples: int, dev) -> tuple[np.ndarray, np.ndarray | None]:
    """The precisions each model is scored at: the grid's tau, the alternative (given, or
    fitted on all evaluation rows), and for cross-fitting the taus fitted on the even and on
    the odd rows; and the even rows (None when nothing is fitted)."""
    import torch

    from ...ensemble import stacked_fit_tau

    alt = [m[4] for m in models]
    fit = np.array([a == "fit" for a in alt])
    cols = np.repeat(taus.astype(np.float64)[:, None], 4 if fit.any() else 2, 1)
    for k, a in enumerate(alt):
        if a not in (None, "fit"):
            cols[k, 1] = float(a)
    even = None
    if fit.any():  # on draws of its own: the scoring draws stay as they are
        even, odd = tau_folds(Xe.shape[1])
        fitted = stacked_fit_tau(
            net, Xe, Ye, min(TAU_FIT_SAMPLES, test_samples), data_of=[m[0] for m in models],
            y_mean=ym, y_std=ys, rows=[torch.ones(len(even), dtype=torch.bool),
                                       torch.as_tensor(even), torch.as_tensor(odd)],
            generator=torch.Generator(device=dev).manual_seed(models[0][3] + 11)).numpy()
        cols[fit, 1:] = fitted[fit]
    return cols, even


def _stacked_round(tasks: list[UnitTask], chosen: list[list[Config]],
                   x_tr: Sequence[np.ndarray], y_tr: Sequence[np.ndarray],
                   x_ev: Sequence[np.ndarray], y_ev: Sequence[np.ndarray],
                   seeds: list[list[int]], progress: bool, desc: str,
                   alt_tau: list[list[float | str | None]] | None = None) -> list[list[dict]]:
    """Train ``chosen[g]`` configurations on data set ``g`` (all at once) and score them.

    ``x_tr[g]`` etc. are the raw (unstandardised) rows of group ``g``; returns per group and
    configuration the scores of the per-unit engine (``ll``, ``rmse``, ``rmse_mean``,
    ``error``) at the configuration's tau. Where ``alt_tau[g][i]`` is ``'fit'`` (the precision
    fitted on the evaluation rows, on draws of their own) or a number, the same MC draws are
    also scored at that precision: ``ll_alt`` and ``tau_alt``.
    """
    import torch

    from ...ensemble import StackedNoisyMLP, fit_stacked, stacked_predictive

    task = tasks[0]
    s = task.settings
    regression = task.task == "regression"
    likelihood = "gaussian" if regression else "categorical"
    dev = torch.device(s.device)
    prep, Xt, Yt, Xe, Ye = _stack(tasks, x_tr, y_tr, x_ev, y_ev, dev)
    models, noises, normalize = _models(chosen, seeds, alt_tau)
    mseeds = [m[3] for m in models]
    gen = torch.Generator(device=dev).manual_seed(mseeds[0] + 7)
    d_out = 1 if regression else task.n_classes
    net = StackedNoisyMLP([Xt.shape[2], task.n_hidden, d_out], noises, seeds=mseeds,
                          normalize=normalize, generator=gen, init=s.init).to(dev)
    data_of = [m[0] for m in models]
    ys = np.array([prep[m[0]][5] for m in models])
    ym = np.array([prep[m[0]][4] for m in models])
    rates = np.array([m[2].rate for m in models])
    taus = np.array([m[2].tau for m in models])
    tau_s, wd = gal_decay(rates, taus, x_tr[0].shape[0], ys, s.length_scale, regression)
    fit_stacked(net, Xt, Yt, data_of=data_of, likelihood=likelihood, objective=task.objective,
                samples=1 if task.objective == "mc" else s.train_samples, tau=tau_s,
                weight_decay=wd, epochs=task.epochs, batch_size=s.batch_size, lr=s.lr,
                seeds=mseeds, progress=progress, desc=desc)
    has_alt = any(m[4] is not None for m in models)
    if has_alt and not regression:
        raise ValueError("a fitted tau needs the Gaussian likelihood (regression)")
    tau_arg, even = taus if regression else None, None
    if has_alt:  # every column scored on the same draws
        tau_arg, even = _tau_columns(net, models, taus, Xe, Ye, ym, ys, s.test_samples, dev)
    pred = stacked_predictive(net, Xe, Ye, s.test_samples, data_of=data_of,
                              likelihood=likelihood, tau=tau_arg, y_mean=ym, y_std=ys)
    return _collect(pred, models, chosen, y_ev, tau_arg, even, regression)


def _collect(pred: dict, models: list[_Model], chosen: list[list[Config]],
             y_ev: Sequence[np.ndarray], tau_arg, even, regression: bool) -> list[list[dict]]:
    """Per group and configuration, the scores of a round's predictions."""
    multi = tau_arg is not None and np.ndim(tau_arg) == 2
    ll = pred["ll"].cpu()
    pts = pred["ll_points"].cpu().numpy() if multi else None
    out: list[list[dict]] = [[{} for _ in c] for c in chosen]
    for k, (g, i, cfg, _, a) in enumerate(models):
        mean_pred = pred["mean_pred"][k].cpu().numpy() if regression and cfg.normalize else None
        out[g][i] = scores(ll[k, 0].item() if multi else ll[k].item(), y_ev[g],
                           pred["mc_mean"][k].cpu().numpy(), mean_pred, regression)
        if a == "fit":  # each half of the rows at the tau fitted on the other half
            cross = np.where(even, pts[k, 3], pts[k, 2]).mean()
            out[g][i].update(ll_alt=float(cross), tau_alt=float(tau_arg[k, 1]))
        elif a is not None:
            out[g][i].update(ll_alt=ll[k, 1].item(), tau_alt=float(tau_arg[k, 1]))
    return out


def evaluate_stacked(tasks: Iterable[UnitTask]) -> list[dict]:
    """:func:`~shrinkdrop.experiments.uci.unit.evaluate_unit` for several units of one data set
    and method at once.

    The same protocol and the same per-model computation (initialisation seeds, shuffling
    order, loss, weight decay, Adam, scoring; see :mod:`shrinkdrop.ensemble`), with all grid
    points of all the given splits trained as one :class:`~shrinkdrop.ensemble.StackedNoisyMLP`
    and then all refits as another. Only the noise's random stream differs from
    :func:`~shrinkdrop.experiments.uci.unit.evaluate_unit`. A method and its ``+tau`` twin on the
    same split share their networks (the same seeds): one training, scored at the grid's tau
    and at the fitted one on the same draws, so the two rows differ by the precision alone (and
    by the refit, where they choose different grid points). Returns one row per task, in order.
    """
    tasks = list(tasks)
    t0 = time.perf_counter()
    if len({(t.dataset, base_method(t.method), t.x_train.shape[0]) for t in tasks}) != 1:
        raise ValueError("evaluate_stacked needs units of one data set, method and training size")
    by_split: dict[int, list[UnitTask]] = {}
    for t in tasks:
        by_split.setdefault(t.split, []).append(t)
    if any(len({t.method for t in ts}) != len(ts) for ts in by_split.values()):
        raise ValueError("evaluate_stacked got the same unit twice")
    heads = [ts[0] for ts in by_split.values()]  # one training per split
    fit = [any(t.fit_tau for t in ts) for ts in by_split.values()]
    progress = bool(tasks[0].extra.get("progress", False))
    desc = (f"{tasks[0].dataset} {'/'.join(sorted({t.method for t in tasks}))} splits "
            + ",".join(str(k) for k in by_split))
    n_inner = int(0.8 * tasks[0].x_train.shape[0])
    grid = [list(t.configs) for t in heads]
    scores = _stacked_round(
        heads, grid, [t.x_train[:n_inner] for t in heads], [t.y_train[:n_inner] for t in heads],
        [t.x_train[n_inner:] for t in heads], [t.y_train[n_inner:] for t in heads],
        [[t.seed + i for i in range(len(t.configs))] for t in heads], progress,
        f"{desc}: grid", alt_tau=[["fit" if f else None] * len(g) for f, g in zip(fit, grid)])
    # per task: the chosen grid point and, for +tau, its fitted precision
    best: dict[str, tuple[Config, float, float | None]] = {}
    for h, sc, ts in zip(heads, scores, by_split.values()):
        for t in ts:
            view = [{"ll": r["ll_alt"]} for r in sc] if t.fit_tau else sc
            cfg, ll = best_config(h.configs, view)
            tau = sc[h.configs.index(cfg)]["tau_alt"] if t.fit_tau else None
            best[t.key] = (cfg, ll, tau)
    # refits: one network per distinct chosen grid point of a split, scored at each task's tau
    chosen, alts = [], []
    for ts in by_split.values():
        cfgs = list(dict.fromkeys(best[t.key][0] for t in ts))
        chosen.append(cfgs)
        alts.append([next((best[t.key][2] for t in ts if t.fit_tau and best[t.key][0] == c),
                          None) for c in cfgs])
    test = _stacked_round(
        heads, chosen, [t.x_train for t in heads], [t.y_train for t in heads],
        [t.x_test for t in heads], [t.y_test for t in heads],
        [[t.seed + 10_000] * len(c) for t, c in zip(heads, chosen)], progress,
        f"{desc}: refit", alt_tau=alts)
    per = (time.perf_counter() - t0) / len(tasks)
    out = {}
    for ts, cfgs, res in zip(by_split.values(), chosen, test):
        for t in ts:
            cfg, ll, tau = best[t.key]
            r = res[cfgs.index(cfg)]
            out[t.key] = {
                "config": label(cfg, tau), "val_ll": ll, "test_rmse": r["rmse"],
                "test_ll": r["ll_alt"] if t.fit_tau else r["ll"],
                "test_rmse_mean": r["rmse_mean"], "test_error": r["error"], "seconds": per,
                "note": f"stacked engine: {len(by_split)} split(s) trained together"
                        + ("; networks shared with " + base_method(t.method)
                           if t.fit_tau and len(ts) > 1 else "")}
    return [out[t.key] for t in tasks]

