"""``shrinkdrop architectures``: the structured priors of section 5 on real data.

Three experiments, each a grid of (model, seed) trained with :func:`shrinkdrop.fit` (MC objective,
S = 1, Gaussian weight prior ``sigma0 = 1``) and scored on a fixed held-out split, so that the
seeds (initialisation, noise, minibatch order) give the error bars and every model sees the same
data:

* ``resnet``: a residual MLP with more blocks than the data need (6 of width 32) on scikit-learn's
  diabetes data, plain / ARD / ADD / ARD+ADD (section 5.1). Read-out of which blocks the data
  switch off: the exact posterior over the Bernoulli layer scales given the trained weights
  (:func:`shrinkdrop.experiments.models.layer_scale_posterior`) and each block's relative
  contribution ``||f_l(h)|| / ||h||``.
* ``cnn``: a 2-conv CNN on scikit-learn's 8x8 digits; the second conv carries the tied-channel,
  tied-filter or joint prior (Bernoulli and Gaussian noise of equal variance) against
  ``nn.Dropout2d`` and no noise (section 5.3).
* ``lstm``: next-quarter US inflation from 8-quarter windows of 10 macro series (statsmodels'
  bundled ``macrodata``, optional extra ``timeseries``); ``NoisyLSTM`` with tied and untied gate
  noise against input-only variational dropout (``nn.LSTM`` after a per-sequence mask) and no
  noise (section 5.2).

Gaussian log-likelihoods use the noise precision tau that maximises the validation predictive
log-likelihood (a grid), in the target's original units.
"""

from __future__ import annotations

import argparse
import enum
import importlib.util
import math
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import noise as N
from .. import train as O
from ..errors import ShrinkdropError
from .report import Section, write_section
from .runner import write_csv_atomic

HELP = ("Section 5 on real data: ADD in a residual MLP, CNN priors on digits, LSTM gate noise "
        "on macro data.")

__all__ = ["HELP", "add_arguments", "run", "Experiment", "Settings", "load_macrodata",
           "EXTRA", "MissingExtraError"]

#: the optional extra (pyproject) that brings the LSTM experiment's data
EXTRA = "timeseries"


class Experiment(str, enum.Enum):
    RESNET = "resnet"
    CNN = "cnn"
    LSTM = "lstm"


class MissingExtraError(ShrinkdropError, ImportError):
    """An optional dependency is not installed; the message names the extra."""


@dataclass(frozen=True)
class Settings:
    """Everything that changes the numbers (``--quick`` picks the small one)."""

    seeds: int = 5
    resnet_epochs: int = 200
    cnn_epochs: int = 40
    lstm_epochs: int = 300
    eval_samples: int = 64
    lr: float = 2e-3

    @classmethod
    def quick(cls, seeds: int = 2) -> Settings:
        return cls(seeds=seeds, resnet_epochs=25, cnn_epochs=4, lstm_epochs=30,
                   eval_samples=8, lr=4e-3)


# ================================================================================== arguments
def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder (created if missing)")
    p.add_argument("--quick", action="store_true",
                   help="few epochs and Monte Carlo samples, 2 seeds (under 90 s on 2 cores)")
    p.add_argument("--seeds", type=int, default=None,
                   help="seeds per model (default 5; 2 with --quick)")
    p.add_argument("--only", default=None,
                   help="comma-separated subset of " + ", ".join(e.value for e in Experiment)
                   + " (default: all)")


def _parse_only(only: str | None) -> list[Experiment]:
    if only is None:
        return list(Experiment)
    names = [s.strip() for s in only.split(",") if s.strip()]
    valid = ", ".join(repr(e.value) for e in Experiment)
    if not names:
        raise ValueError(f"--only has to name at least one of {valid}, but got {only!r}")
    out = []
    for n in names:
        try:
            e = Experiment(n)
        except ValueError:
            raise ValueError(f"--only has to be a comma-separated subset of {valid}, but got "
                             f"{n!r}") from None
        if e not in out:
            out.append(e)
    return out


# ======================================================================================= data
def _split(n: int, seed: int, test: float = 0.2, val: float = 0.1):
    rng = np.random.default_rng(seed)
    perm = rng.permutation(n)
    n_test, n_val = round(test * n), round(val * n)
    return np.sort(perm[n_test + n_val:]), np.sort(perm[n_test:n_test + n_val]), \
        np.sort(perm[:n_test])


def _standardise(train: np.ndarray, *others: np.ndarray):
    mu, sd = train.mean(0), train.std(0)
    sd = np.where(sd > 0, sd, 1.0)
    return [(a - mu) / sd for a in (train, *others)], mu, sd


def _t(a) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=torch.float32)


@dataclass
class Regression:
    """Standardised inputs and targets of train / val / test, and the target's scale."""

    x: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    y: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # standardised
    y_raw: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # original units
    y_mean: float
    y_std: float
    name: str


def _regression(x: np.ndarray, y: np.ndarray, parts, name: str) -> Regression:
    xs, _, _ = _standardise(*(x[p] for p in parts))
    ym, ys = float(y[parts[0]].mean()), float(y[parts[0]].std())
    return Regression(
        x=tuple(_t(a) for a in xs),
        y=tuple(_t((y[p] - ym) / ys) for p in parts),
        y_raw=tuple(_t(y[p]) for p in parts),
        y_mean=ym, y_std=ys, name=name,
    )


def load_diabetes() -> Regression:
    """scikit-learn's diabetes data (442 x 10), a fixed 70/10/20 split (seed 0)."""
    from sklearn.datasets import load_diabetes as _load

    b = _load()
    x, y = np.asarray(b.data, np.float64), np.asarray(b.target, np.float64)
    return _regression(x, y, _split(len(y), 0), "diabetes")


def load_digits():
    """scikit-learn's 8x8 digits (1797 images), fixed stratified 80/20 split (seed 0)."""
    from sklearn.datasets import load_digits as _load
    from sklearn.model_selection import train_test_split

    b = _load()
    x = np.asarray(b.images, np.float32)[:, None] / 16.0
    y = np.asarray(b.target, np.int64)
    xtr, xte, ytr, yte = train_test_split(x, y, test_size=0.2, stratify=y, random_state=0)
    return (torch.as_tensor(xtr), torch.as_tensor(ytr)), (torch.as_tensor(xte),
                                                         torch.as_tensor(yte))


#: macrodata columns turned into annualised quarterly growth rates (400 * diff log)
_GROWTH = ("realgdp", "realcons", "realinv", "realgovt", "realdpi", "m1")
#: macrodata columns used as they are (rates in percent)
_LEVELS = ("tbilrate", "unemp", "infl", "realint")
MACRO_FEATURES = tuple(f"{c} growth" for c in _GROWTH) + _LEVELS


def _macrodata_path() -> Path:
    spec = importlib.util.find_spec("statsmodels")
    if spec is None or not spec.submodule_search_locations:
        raise MissingExtraError(
            "the LSTM experiment uses the macrodata set shipped inside statsmodels, which is not "
            f"installed: pip install 'shrinkdrop[{EXTRA}]' (or pip install statsmodels)")
    for loc in spec.submodule_search_locations:
        f = Path(loc) / "datasets" / "macrodata" / "macrodata.csv"
        if f.is_file():
            return f
    raise MissingExtraError(f"statsmodels is installed but ships no datasets/macrodata/"
                            f"macrodata.csv; reinstall it: pip install 'shrinkdrop[{EXTRA}]'")


#: role of each block of MACRO_BLOCK consecutive windows: t(rain), v(alidation), x (test)
MACRO_BLOCKS = "ttxtvtxt"
MACRO_BLOCK = 24


def _blocked_split(n: int, gap: int):
    """Train / val / test indices of ``n`` windows by blocks of ``MACRO_BLOCK`` (roles
    ``MACRO_BLOCKS``; windows past the last block are unused). The first ``gap`` windows of a
    block that follows a block of another role are dropped (purged), so no window's inputs
    overlap the targets of a window in another part."""
    parts: dict[str, list[int]] = {"t": [], "v": [], "x": []}
    for k, role in enumerate(MACRO_BLOCKS):
        start, stop = k * MACRO_BLOCK, min((k + 1) * MACRO_BLOCK, n)
        if k > 0 and MACRO_BLOCKS[k - 1] != role:
            start += gap
        parts[role].extend(range(start, stop))
    return tuple(np.asarray(parts[r], dtype=np.int64) for r in "tvx")


def load_macrodata(window: int = 8) -> Regression:
    """US quarterly macro data 1959-2009 (statsmodels' ``macrodata.csv``, read from the package's
    files without importing statsmodels; nothing is downloaded).

    Inputs: ``window`` quarters of the 10 series ``MACRO_FEATURES``; target: the next quarter's
    inflation ``infl`` (annualised %). Blocked split (:func:`_blocked_split`): blocks of 24
    windows (6 years) in the roles train, train, test, train, val, train, test, train, so the
    test targets are 1975Q2-1979Q1 and 1999Q2-2003Q1 and validation 1987Q2-1991Q1 (a plain
    chronological split puts the calm 1990s in validation and the 2008 crisis in test, and the
    noise precision picked on the one does not fit the other). Inputs are standardised with
    training statistics per series.

    Raises:
        MissingExtraError: statsmodels is not installed (the extra ``timeseries``).
    """
    path = _macrodata_path()
    data = np.genfromtxt(path, delimiter=",", names=True)
    cols = []
    for c in _GROWTH:
        cols.append(400.0 * np.diff(np.log(data[c])))
    for c in _LEVELS:
        cols.append(data[c][1:])
    series = np.stack(cols, axis=1)  # (T - 1, 10)
    target = data["infl"][1:]
    n = len(series) - window
    xs = np.stack([series[i:i + window] for i in range(n)])  # (n, window, 10)
    ys = target[window:window + n]
    parts = _blocked_split(n, window)
    # standardise per series over the training windows' time steps
    flat = xs[parts[0]].reshape(-1, xs.shape[-1])
    mu, sd = flat.mean(0), flat.std(0)
    xs = (xs - mu) / sd
    ym, ysd = float(ys[parts[0]].mean()), float(ys[parts[0]].std())
    return Regression(
        x=tuple(_t(xs[p]) for p in parts),
        y=tuple(_t((ys[p] - ym) / ysd) for p in parts),
        y_raw=tuple(_t(ys[p]) for p in parts),
        y_mean=ym, y_std=ysd, name="macrodata",
    )


# ================================================================================= evaluation
def _mc_outputs(model, x: torch.Tensor, samples: int, seed: int) -> torch.Tensor:
    """(S, N, ...) outputs with every noise source on (shrinkdrop layers and nn.Dropout*).

    The models hold no batch norm, so train mode is exactly "noise on".
    """
    model.train()
    try:
        with torch.no_grad(), torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return O.sample_outputs(model, x, samples)
    finally:
        model.eval()


#: TAU_GRID * (1 / residual variance on validation) is searched for the noise precision
_TAU_GRID = np.geomspace(0.05, 20.0, 121)


def _gaussian_ll(outs: torch.Tensor, y: torch.Tensor, tau: float) -> float:
    """Mean MC predictive log-likelihood ``log mean_s N(y; out_s, 1/tau)`` (original units)."""
    return float(O.marginal_map(O.gaussian_log_likelihood(outs, y, tau)).mean())


def _regression_scores(model, data: Regression, samples: int, seed: int) -> dict:
    def raw(outs):
        return outs * data.y_std + data.y_mean

    out_val = raw(_mc_outputs(model, data.x[1], samples, seed))
    out_test = raw(_mc_outputs(model, data.x[2], samples, seed + 1))
    resid = float(((out_val.mean(0).squeeze(-1) - data.y_raw[1]) ** 2).mean())
    grid = _TAU_GRID / max(resid, 1e-12)
    lls = [_gaussian_ll(out_val, data.y_raw[1], t) for t in grid]
    tau = float(grid[int(np.argmax(lls))])
    with torch.no_grad():
        det = raw(model(data.x[2])).squeeze(-1)
    return {
        "test_ll": _gaussian_ll(out_test, data.y_raw[2], tau),
        "test_rmse": float(((out_test.mean(0).squeeze(-1) - data.y_raw[2]) ** 2).mean().sqrt()),
        "test_rmse_mean": float(((det - data.y_raw[2]) ** 2).mean().sqrt()),
        "val_ll": float(max(lls)),
        "tau": tau,
    }


def _fit(model, x, y, *, likelihood, tau, epochs, lr, seed, batch_size):
    torch.manual_seed(seed)
    return O.fit(model, x, y, likelihood=likelihood, tau=tau, sigma0=1.0, epochs=epochs,
                 batch_size=batch_size, lr=lr, seed=seed, progress=False)


def _mean_se(values) -> tuple[float, float]:
    v = np.asarray([x for x in values if x == x], dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan
    return float(v.mean()), se


def _pm(values, digits: int = 3) -> str:
    m, se = _mean_se(values)
    return "n/a" if m != m else f"{m:.{digits}f} ± {se:.{digits}f}"


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _errorbar_plot(path: Path, rows: list[dict], models: list[str], metrics, title: str):
    plt = _plt()
    fig, axes = plt.subplots(1, len(metrics), figsize=(5.2 * len(metrics), 0.45 * len(models)
                                                         + 1.6))
    axes = np.atleast_1d(axes)
    for ax, (key, label) in zip(axes, metrics):
        ms = [_mean_se(r[key] for r in rows if r["model"] == m) for m in models]
        y = np.arange(len(models))
        ax.errorbar([m for m, _ in ms], y, xerr=[0 if s != s else s for _, s in ms], fmt="o",
                    capsize=3)
        for m in models:
            pts = [r[key] for r in rows if r["model"] == m]
            ax.plot(pts, np.full(len(pts), models.index(m)) + 0.18, ".", color="0.6", ms=4)
        ax.set_yticks(y, models)
        ax.invert_yaxis()
        ax.set_xlabel(label)
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle(title + " (mean ± SE over seeds; grey: single seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


# ===================================================================================== resnet
KEEP_LAYER = 0.8
KEEP_UNIT = 0.9
RESNET_MODELS: list[tuple[str, str, dict]] = [
    ("plain", "no noise", {}),
    ("ARD", f"unit Bernoulli({KEEP_UNIT}) on each block's input", dict(unit=KEEP_UNIT)),
    ("ADD", f"layer Bernoulli({KEEP_LAYER}) per block (stochastic depth)",
     dict(layer=KEEP_LAYER)),
    ("ARD+ADD", f"layer Bernoulli({KEEP_LAYER}) x unit Bernoulli({KEEP_UNIT})",
     dict(layer=KEEP_LAYER, unit=KEEP_UNIT)),
]
RESNET_DEPTH, RESNET_WIDTH, RESNET_TRAIN_TAU = 6, 32, 2.0


def run_resnet(s: Settings, log) -> tuple[list[dict], list[dict]]:
    from .models import ResidualMLP, layer_scale_posterior

    data = load_diabetes()
    rows, layer_rows = [], []
    for name, _, kw in RESNET_MODELS:
        for seed in range(s.seeds):
            torch.manual_seed(seed)
            model = ResidualMLP(
                data.x[0].shape[1], RESNET_WIDTH, RESNET_DEPTH,
                layer_noise=N.Bernoulli(kw["layer"]) if "layer" in kw else None,
                unit_noise=N.Bernoulli(kw["unit"]) if "unit" in kw else None)
            hist = _fit(model, data.x[0], data.y[0], likelihood="gaussian",
                        tau=RESNET_TRAIN_TAU, epochs=s.resnet_epochs, lr=s.lr, seed=seed,
                        batch_size=32)
            sc = _regression_scores(model, data, s.eval_samples, 1000 + seed)
            contrib = model.contributions(data.x[0])
            if "layer" in kw:
                def ll_fn(out, y, tau=sc["tau"]):
                    return O.gaussian_log_likelihood(out * data.y_std + data.y_mean, y, tau)

                post = layer_scale_posterior(model, data.x[0], data.y_raw[0], kw["layer"], ll_fn)
                incl, bf = post["inclusion"].tolist(), post["log_bf_drop"].tolist()
                sc["layers_on"] = float(sum(incl))
                sc["map_prob"] = post["map_prob"]
            else:
                incl = bf = [math.nan] * RESNET_DEPTH
                sc["layers_on"] = sc["map_prob"] = math.nan
            rows.append({"model": name, "seed": seed, **sc, "train_seconds": hist.seconds,
                         "final_loss": hist.loss[-1]})
            for layer in range(RESNET_DEPTH):
                layer_rows.append({"model": name, "seed": seed, "layer": layer + 1,
                                   "inclusion": incl[layer], "log_bf_drop": bf[layer],
                                   "contribution": float(contrib[layer])})
            log(f"resnet {name} seed {seed}: test ll {sc['test_ll']:.3f}, rmse "
                f"{sc['test_rmse']:.2f}, layers on {sc['layers_on']:.2f} "
                f"({hist.seconds:.1f} s)")
    return rows, layer_rows


def _plot_resnet_layers(path: Path, layer_rows: list[dict]):
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.8))
    layers = np.arange(1, RESNET_DEPTH + 1)
    names = [m for m, _, _ in RESNET_MODELS]
    width = 0.8 / len(names)
    for panel, (key, label, models) in enumerate((
            ("inclusion", "posterior p(tau_l != 0 | data, W)",
             [m for m, _, kw in RESNET_MODELS if "layer" in kw]),
            ("contribution", "||f_l(h)|| / ||h|| (training inputs)", names))):
        ax = axes[panel]
        for j, m in enumerate(models):
            ms = [_mean_se(r[key] for r in layer_rows if r["model"] == m and r["layer"] == k)
                  for k in layers]
            ax.bar(layers + (j - (len(models) - 1) / 2) * width, [a for a, _ in ms], width,
                   yerr=[0 if b != b else b for _, b in ms], capsize=2, label=m)
        ax.set_xlabel("residual block l")
        ax.set_ylabel(label)
        ax.set_xticks(layers)
        ax.legend(fontsize=8)
    axes[0].set_ylim(0, 1.05)
    axes[0].axhline(KEEP_LAYER, color="k", lw=0.8, ls="--")
    axes[0].text(0.6, KEEP_LAYER + 0.02, "prior", fontsize=8)
    fig.suptitle("ADD read-out per block on diabetes (mean ± SE over seeds)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _resnet_section(sec: Section, rows, layer_rows, s: Settings):
    sec.p(f"Residual MLP on scikit-learn's diabetes data (442 patients, 10 features; fixed "
          f"70/10/20 split): input layer, {RESNET_DEPTH} residual blocks h + ReLU(Linear_"
          f"{RESNET_WIDTH}(tau_l (h * xi_l))), linear output; more depth than a 10-feature "
          f"regression needs. Trained {s.resnet_epochs} epochs with the MC objective (Gaussian "
          f"likelihood, training tau = {RESNET_TRAIN_TAU} in standardised units, sigma0 = 1); "
          f"scored with {s.eval_samples} MC samples and the noise precision tau picked on the "
          f"validation split; test log-likelihood and RMSE in the target's units.")
    table = []
    for name, desc, _ in RESNET_MODELS:
        rs = [r for r in rows if r["model"] == name]
        table.append([name, desc, len(rs), _pm(r["test_ll"] for r in rs),
                      _pm((r["test_rmse"] for r in rs), 2),
                      _pm((r["layers_on"] for r in rs), 2)])
    sec.table(["model", "noise", "seeds", "test log-lik", "test RMSE",
               f"E[# blocks on | data] (of {RESNET_DEPTH})"], table)
    per = []
    for name, _, kw in RESNET_MODELS:
        for key in (("inclusion", "log_bf_drop") if "layer" in kw else ()) + ("contribution",):
            per.append([name, key] + [
                _pm((r[key] for r in layer_rows if r["model"] == name and r["layer"] == k), 2)
                for k in range(1, RESNET_DEPTH + 1)])
    sec.table(["model", "read-out"] + [f"block {k}" for k in range(1, RESNET_DEPTH + 1)], per)
    sec.figure("resnet_layers.png", "Per-block ADD read-out: posterior inclusion of each block "
               "(left, Bernoulli ADD models) and each block's relative contribution (right).")
    sec.note("ADD read-out: with the weights W fixed at their trained values and the ADD prior "
             f"tau_l ~ Bernoulli({KEEP_LAYER}) independently, the posterior p(tau | data, W) over "
             f"all 2^{RESNET_DEPTH} on/off configurations is computed exactly (the importance "
             "weights p(y | W, tau) of every configuration, not a sample of them) on the training "
             "data; a block is switched off by the data when its inclusion p(tau_l != 0 | data, "
             "W) falls below the prior. Because the likelihood is a product over ~300 points, the "
             "posterior is nearly 0/1; log_bf_drop is the graded version: the log Bayes factor "
             "log p(y | W, all on) - log p(y | W, all on but block l) (> 0: the data want the "
             "block). The contribution ||f_l(h)||/||h|| is the size of "
             "what block l adds to the residual stream.")


# ======================================================================================== CNN
CNN_KEEP = 0.8
#: Gaussian noise with the variance of Bernoulli(0.8) after normalisation: (1 - p) / p = 0.25
CNN_GAUSS_STD = 0.5
CNN_MODELS: list[tuple[str, str, dict]] = [
    ("none", "plain conv", {}),
    ("Dropout2d", f"nn.Dropout2d(p={1 - CNN_KEEP:g}) after conv 2", dict(dropout2d=1 - CNN_KEEP)),
    ("Bernoulli channel", f"tied channels, Bernoulli({CNN_KEEP})", dict(tie="channel", fam="b")),
    ("Bernoulli filter", f"tied filters, Bernoulli({CNN_KEEP})", dict(tie="filter", fam="b")),
    ("Bernoulli both", f"joint tau_f xi_cf, Bernoulli({CNN_KEEP}) each", dict(tie="both",
                                                                            fam="b")),
    ("Gaussian channel", f"tied channels, Gaussian(1, {CNN_GAUSS_STD})", dict(tie="channel",
                                                                             fam="g")),
    ("Gaussian filter", f"tied filters, Gaussian(1, {CNN_GAUSS_STD})", dict(tie="filter",
                                                                           fam="g")),
    ("Gaussian both", f"joint, Gaussian(1, {CNN_GAUSS_STD}) each", dict(tie="both", fam="g")),
]


def _cnn_model(kw: dict):
    from .models import SmallCNN

    if "fam" in kw:
        noise = N.Bernoulli(CNN_KEEP) if kw["fam"] == "b" else N.Gaussian(1.0, CNN_GAUSS_STD)
        return SmallCNN(noise=noise, tie=kw["tie"])
    return SmallCNN(dropout2d=kw.get("dropout2d"))


def run_cnn(s: Settings, log) -> list[dict]:
    (xtr, ytr), (xte, yte) = load_digits()
    rows = []
    for name, _, kw in CNN_MODELS:
        for seed in range(s.seeds):
            torch.manual_seed(seed)
            model = _cnn_model(kw)
            hist = _fit(model, xtr, ytr, likelihood="categorical", tau=None,
                        epochs=s.cnn_epochs, lr=s.lr, seed=seed, batch_size=64)
            t = time.perf_counter()
            outs = torch.cat([_mc_outputs(model, xte[i:i + 120], s.eval_samples,
                                          2000 + seed + i) for i in range(0, len(xte), 120)], 1)
            ll = O.marginal_map(O.categorical_log_likelihood(outs, yte))
            probs = outs.softmax(-1).mean(0)
            with torch.no_grad():
                det = model(xte)
            rows.append({
                "model": name, "seed": seed,
                "test_acc": float((probs.argmax(-1) == yte).float().mean()),
                "test_ll": float(ll.mean()),
                "test_acc_mean": float((det.argmax(-1) == yte).float().mean()),
                "test_ll_mean": float(O.categorical_log_likelihood(det, yte).mean()),
                "train_seconds": hist.seconds, "eval_seconds": time.perf_counter() - t,
                "final_loss": hist.loss[-1],
            })
            r = rows[-1]
            log(f"cnn {name} seed {seed}: acc {r['test_acc']:.4f}, ll {r['test_ll']:.4f} "
                f"({hist.seconds:.1f} s)")
    return rows


def _cnn_section(sec: Section, rows, s: Settings):
    sec.p(f"CNN on scikit-learn's 8x8 digits (1797 images; fixed stratified 80/20 split): "
          f"conv 3x3 (1 -> 16) -> ReLU -> maxpool -> conv 3x3 (16 -> 32) carrying the prior -> "
          f"ReLU -> maxpool -> linear. Trained {s.cnn_epochs} epochs (categorical likelihood, "
          f"MC objective, sigma0 = 1); MC prediction averages {s.eval_samples} noisy passes "
          f"(nn.Dropout2d included); 'mean' is one pass with the noise at its mean.")
    table = []
    for name, desc, _ in CNN_MODELS:
        rs = [r for r in rows if r["model"] == name]
        table.append([name, desc, len(rs), _pm((r["test_acc"] for r in rs), 4),
                      _pm((r["test_ll"] for r in rs), 4),
                      _pm((r["test_acc_mean"] for r in rs), 4),
                      _pm((r["test_ll_mean"] for r in rs), 4)])
    sec.table(["model", "prior on conv 2", "seeds", "test acc (MC)", "test log-lik (MC)",
               "test acc (mean)", "test log-lik (mean)"], table)
    sec.figure("cnn.png", "Digits CNN: test accuracy and log-likelihood per prior.")
    sec.note("Tied filters with Bernoulli noise is SpatialDropout (section 5.3): the same law "
             "as nn.Dropout2d on conv 2's output. The one difference here is the bias: "
             "NoisyConv2d multiplies the filter's output before adding the bias (the bias is not "
             "a weight of the prior), nn.Dropout2d after the conv also drops the bias. Gaussian "
             f"noise N(1, {CNN_GAUSS_STD}^2) has the variance of the normalised Bernoulli("
             f"{CNN_KEEP}) noise, (1 - keep) / keep = 0.25; 'both' multiplies two such factors, "
             "so it is the strongest noise of each family.")


# ======================================================================================= LSTM
LSTM_KEEP = 0.8
LSTM_GAUSS_STD = 0.5
LSTM_HIDDEN, LSTM_WINDOW, LSTM_TRAIN_TAU = 16, 8, 2.0
LSTM_MODELS: list[tuple[str, str, dict]] = [
    ("none", "nn.LSTM, no noise", dict(kind="lstm")),
    ("input VD", f"nn.LSTM after a per-sequence Bernoulli({LSTM_KEEP}) input mask",
     dict(kind="masked", fam="b")),
    ("Bernoulli tied", f"NoisyLSTM tie_gates=True, Bernoulli({LSTM_KEEP})",
     dict(kind="tied", fam="b")),
    ("Bernoulli untied", f"NoisyLSTM tie_gates=False, Bernoulli({LSTM_KEEP})",
     dict(kind="untied", fam="b")),
    ("Gaussian tied", f"NoisyLSTM tie_gates=True, Gaussian(1, {LSTM_GAUSS_STD})",
     dict(kind="tied", fam="g")),
    ("Gaussian untied", f"NoisyLSTM tie_gates=False, Gaussian(1, {LSTM_GAUSS_STD})",
     dict(kind="untied", fam="g")),
]


def run_lstm(s: Settings, log) -> list[dict]:
    from .models import Forecaster

    data = load_macrodata(LSTM_WINDOW)
    rows = []
    for name, _, kw in LSTM_MODELS:
        for seed in range(s.seeds):
            torch.manual_seed(seed)
            fam = kw.get("fam")
            noise = None if fam is None else (N.Bernoulli(LSTM_KEEP) if fam == "b"
                                              else N.Gaussian(1.0, LSTM_GAUSS_STD))
            model = Forecaster(data.x[0].shape[-1], LSTM_HIDDEN, noise, kw["kind"])
            hist = _fit(model, data.x[0], data.y[0], likelihood="gaussian", tau=LSTM_TRAIN_TAU,
                        epochs=s.lstm_epochs, lr=s.lr, seed=seed, batch_size=32)
            sc = _regression_scores(model, data, s.eval_samples, 3000 + seed)
            rows.append({"model": name, "seed": seed, **sc, "train_seconds": hist.seconds,
                         "final_loss": hist.loss[-1]})
            log(f"lstm {name} seed {seed}: test ll {sc['test_ll']:.3f}, rmse "
                f"{sc['test_rmse']:.3f} ({hist.seconds:.1f} s)")
    return rows


def _lstm_section(sec: Section, rows, s: Settings):
    sec.p(f"LSTM forecaster on statsmodels' bundled US macro data (1959-2009, quarterly): "
          f"windows of {LSTM_WINDOW} quarters of 10 series ("
          + ", ".join(MACRO_FEATURES) + f") predict next quarter's inflation; blocked split "
          f"of 6-year blocks with an {LSTM_WINDOW}-quarter purge between parts (test targets "
          f"1975-79 and 1999-2003, validation 1987-91, the rest train). nn.LSTM / NoisyLSTM with "
          f"{LSTM_HIDDEN} hidden units and a linear read-out of the last state, "
          f"{s.lstm_epochs} epochs (MC objective, Gaussian likelihood with training "
          f"tau = {LSTM_TRAIN_TAU} in standardised units, sigma0 = 1); {s.eval_samples} MC "
          f"samples, noise precision picked on the validation split; log-likelihood and RMSE "
          f"in % inflation.")
    table = []
    for name, desc, _ in LSTM_MODELS:
        rs = [r for r in rows if r["model"] == name]
        table.append([name, desc, len(rs), _pm(r["test_ll"] for r in rs),
                      _pm(r["test_rmse"] for r in rs), _pm(r["test_rmse_mean"] for r in rs)])
    sec.table(["model", "input noise", "seeds", "test log-lik", "test RMSE (MC)",
               "test RMSE (mean)"], table)
    sec.figure("lstm.png", "LSTM on macrodata: test log-likelihood and RMSE per input-noise "
               "structure.")
    sec.note("Input-only variational dropout (Gal & Ghahramani 2016, without the recurrent "
             "mask) IS NoisyLSTM(Bernoulli, tie_gates=True): one Bernoulli mask per sequence "
             "and input dimension, shared by the four gates and all time steps (section 5.2, "
             "tied gate parameters). The 'input VD' row builds it independently (nn.LSTM after "
             "shrinkdrop.nn.UnitNoise drawn on an (N, 1, D) tensor and broadcast over time); its "
             "numbers equal those of 'Bernoulli tied' exactly: with "
             "the same seed both models get the same initial weights and the same mask draws, "
             "so the two implementations compute the same function. The untied prior "
             "gives each gate its own mask per input dimension.")


# ======================================================================================== run
def _settings(args) -> Settings:
    seeds = args.seeds
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int)
                              or seeds < 1):
        raise ValueError(f"--seeds has to be a positive integer, but got {seeds!r}")
    if args.quick:
        return Settings.quick(seeds if seeds is not None else 2)
    return Settings(seeds=seeds) if seeds is not None else Settings()


def _command(args) -> str:
    parts = ["shrinkdrop architectures", "--out", str(args.out)]
    if args.quick:
        parts.append("--quick")
    if args.seeds is not None:
        parts += ["--seeds", str(args.seeds)]
    if args.only is not None:
        parts += ["--only", args.only]
    return " ".join(parts)


RESNET_COLUMNS = ["model", "seed", "test_ll", "test_rmse", "test_rmse_mean", "val_ll", "tau",
                  "layers_on", "map_prob", "train_seconds", "final_loss"]
LAYER_COLUMNS = ["model", "seed", "layer", "inclusion", "log_bf_drop", "contribution"]
CNN_COLUMNS = ["model", "seed", "test_acc", "test_ll", "test_acc_mean", "test_ll_mean",
               "train_seconds", "eval_seconds", "final_loss"]
LSTM_COLUMNS = ["model", "seed", "test_ll", "test_rmse", "test_rmse_mean", "val_ll", "tau",
                "train_seconds", "final_loss"]


def run(args) -> int:
    experiments = _parse_only(args.only)
    s = _settings(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    threads = torch.get_num_threads()
    # one thread (the machine is shared) and torch's global RNG left as it was for the caller
    torch.set_num_threads(1)
    try:
        with torch.random.fork_rng(devices=[]):
            return _run(args, experiments, s, out)
    finally:
        torch.set_num_threads(threads)


def _run(args, experiments: list[Experiment], s: Settings, out: Path) -> int:
    t0 = time.perf_counter()

    def log(msg):
        print(f"[architectures {time.perf_counter() - t0:6.1f} s] {msg}", flush=True)

    sec = Section("Architectures on real data (section 5: ADD, CNN priors, LSTM gate noise)",
                  _command(args), 0.0)
    sec.p(f"{s.seeds} seeds per model (initialisation, noise and minibatch order); the data "
          "splits are fixed, so every model is scored on the same held-out points. Errors are "
          "mean ± standard error over seeds. Per-seed numbers: resnet.csv, resnet_layers.csv, "
          "cnn.csv, lstm.csv." + (" Quick mode: few epochs, so the numbers show that the "
                                   "pipeline runs, not which prior wins." if args.quick else ""))
    if Experiment.RESNET in experiments:
        rows, layer_rows = run_resnet(s, log)
        write_csv_atomic(out / "resnet.csv", rows, RESNET_COLUMNS)
        write_csv_atomic(out / "resnet_layers.csv", layer_rows, LAYER_COLUMNS)
        _plot_resnet_layers(out / "resnet_layers.png", layer_rows)
        sec.p("**Residual MLP with ADD (section 5.1).**")
        _resnet_section(sec, rows, layer_rows, s)
    if Experiment.CNN in experiments:
        rows = run_cnn(s, log)
        write_csv_atomic(out / "cnn.csv", rows, CNN_COLUMNS)
        _errorbar_plot(out / "cnn.png", rows, [m for m, _, _ in CNN_MODELS],
                       [("test_acc", "test accuracy (MC)"), ("test_ll", "test log-lik (MC)")],
                       "digits CNN")
        sec.p("**CNN priors on digits (section 5.3).**")
        _cnn_section(sec, rows, s)
    if Experiment.LSTM in experiments:
        try:
            rows = run_lstm(s, log)
        except MissingExtraError as exc:
            if args.only is not None:
                raise
            print(f"shrinkdrop architectures: lstm skipped: {exc}", file=sys.stderr)
            sec.note(f"LSTM experiment skipped: {exc}")
        else:
            write_csv_atomic(out / "lstm.csv", rows, LSTM_COLUMNS)
            _errorbar_plot(out / "lstm.png", rows, [m for m, _, _ in LSTM_MODELS],
                           [("test_ll", "test log-lik (per quarter)"),
                            ("test_rmse", "test RMSE (% inflation)")], "macrodata LSTM")
            sec.p("**LSTM gate noise on macro data (section 5.2).**")
            _lstm_section(sec, rows, s)
    sec.seconds = time.perf_counter() - t0
    write_section(out, sec)
    log(f"done: {out / 'section.json'}")
    return 0
