"""``shrinkdrop uci``: the UCI regression benchmark of MC dropout, over every noise family.

Protocol (Gal & Ghahramani 2016, their ``DropoutUncertaintyExps`` code; see ``docs/uci.md``):
per split, the training rows are cut in index order into an inner 80/20 train/validation split;
every configuration (noise parameter x tau) is trained on the inner 80% with inputs and targets
standardised on it and scored on the 20% by MC-averaged log-likelihood; the best configuration is
refitted on the whole training split (standardised on it) and evaluated on the test split: RMSE of
the MC predictive mean and log-likelihood by MC averaging (logsumexp over samples), both in the
target's original units. Network: noise on the inputs -> n_hidden ReLU units -> noise -> linear
output, i.e. MC dropout's network with dropout replaced by ARD noise of each family. Weight decay
is Gal's ``l^2 (1 - p) / (2 N tau)`` with length scale ``l = 1e-2``; batch size 128; Adam.

A *method* is ``<family>-<objective>`` (``bernoulli-mc`` is MC dropout), or
``<family>-mcmc``: the same network as a Bayesian model in the EP (non-centred) parametrization,
its posterior sampled by Pyro's NUTS (Bernoulli scales: Gibbs alternating with NUTS,
:mod:`shrinkdrop.inference`), with the Gaussian noise precision learnt as a latent variable; the
grid is then the noise law alone, and the test metrics are those of the posterior predictive. MCMC
methods run only where the training split has at most ``Settings.mcmc_max_rows`` rows; elsewhere
the unit is recorded as skipped (a row with a ``note``, listed in ``summary.md``). Every run unit
(data set x split x method) is written atomically to ``OUT/parts/``; ``results.csv`` and
``summary.md`` are rebuilt from the parts after each unit. Rerunning the same command resumes.
"""

from __future__ import annotations

import argparse
import math
import re
import shlex
import time
import zlib
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path

import numpy as np

from ..data import UCIData, resolve_data
from ..ensemble import INITS, check_init, init_linears_
from ..errors import DataError
from ..noise import FAMILIES
from .runner import (
    EXECUTORS,
    ResultStore,
    cluster_slots,
    dask_client,
    run_units,
    write_csv_atomic,
)

HELP = ("Run the UCI benchmark protocol (MC dropout's grid search and refit) for every noise "
        "family and objective; writes results.csv and summary.md.")

__all__ = [
    "HELP", "add_arguments", "run", "METHODS", "DEFAULT_METHODS", "OBJECTIVES", "MCMC_METHODS",
    "ALL_METHODS",
    "MCMC_FAMILIES", "Settings", "Config", "UnitTask",
    "matched_noise", "method_configs", "make_tasks", "evaluate_unit", "run_uci",
    "select_rows", "write_summary", "COLUMNS", "PROTOCOL_VERSION", "ENGINES",
    "evaluate_stacked", "make_groups", "run_group", "TAU_METHODS", "TAU_SUFFIX",
    "TAU_FIT_SAMPLES", "base_method", "fits_tau",
]

PROTOCOL_VERSION = "uci-1"

#: the training objectives (names of ``shrinkdrop.enums.Objective``)
OBJECTIVES: tuple[str, ...] = ("mc", "marginal_map", "tail_adaptive")

#: every method: ``<family>-<objective>``; ``bernoulli-mc`` is MC dropout
METHODS: tuple[str, ...] = tuple(f"{f}-{o}" for f in FAMILIES for o in OBJECTIVES)

#: families sampled by MCMC: every continuous family NUTS takes through ``pyro_law`` (EP,
#: non-centred) and Bernoulli through the Gibbs sampler
MCMC_FAMILIES: tuple[str, ...] = tuple(FAMILIES)

#: ``<family>-mcmc``: posterior sampling, only on small data sets (``Settings.mcmc_max_rows``);
#: not part of ``all`` (each is one MCMC run per grid point: minutes per unit, not seconds)
MCMC_METHODS: tuple[str, ...] = tuple(f"{f}-mcmc" for f in MCMC_FAMILIES)

#: ``<method>+tau``: the same training, but the Gaussian likelihood's precision is fitted on the
#: validation rows (:func:`shrinkdrop.train.fit_predictive_precision`) instead of taken
#: from the grid, and the refit is scored at the fitted value (regression only)
TAU_SUFFIX = "+tau"
TAU_METHODS: tuple[str, ...] = tuple(m + TAU_SUFFIX for m in METHODS)

#: MC draws per validation row from which ``+tau`` methods fit the precision (the validation
#: and test log-likelihoods themselves are then computed on ``test_samples`` fresh draws)
TAU_FIT_SAMPLES = 1000

#: every method name the runner accepts, in table order (each method beside its ``+tau``)
ALL_METHODS: tuple[str, ...] = tuple(x for m in METHODS for x in (m, m + TAU_SUFFIX)) \
    + MCMC_METHODS

#: the methods run when none are asked for: MC dropout and its ``+tau`` twin (one training
#: shared by the two; the pair of the README's table). Every training method (``all``, 21) is
#: far too slow for a first run: each method is a stacked training of its own, the 14
#: ``marginal_map`` / ``tail_adaptive`` ones on 5 draws per row (docs/uci.md, "Methods")
DEFAULT_METHODS = ("bernoulli-mc", "bernoulli-mc+tau")

QUICK_METHODS = ("bernoulli-mc", "bernoulli-mc+tau", "gaussian-marginal_map")
QUICK_SPLITS = 2

#: half-Cauchy noise cannot be normalised to mean 1; it gets its own scale grid
HALF_CAUCHY_SCALES = (0.5, 1.0, 2.0)

COLUMNS = ("dataset", "split", "method", "test_rmse", "test_ll", "selected", "config", "val_ll",
           "test_rmse_mean", "test_error", "epochs", "seconds", "note")

#: the ``note`` of a unit that was not run (it starts with this word)
SKIPPED = "skipped"


@dataclass(frozen=True)
class Settings:
    """Everything besides the data that affects a result (recorded in ``OUT/run.json``)."""

    epochs_multiplier: float = 100.0
    test_samples: int = 10_000
    train_samples: int = 5
    quick: bool = False
    seed: int = 0
    length_scale: float = 1e-2
    batch_size: int = 128
    lr: float = 1e-3
    train_eval: str = ""  # filled in by run_uci: the function that trains and evaluates
    engine: str = "stacked"  # training methods: "stacked" (all splits at once) or "sequential"
    init: str = "torch"  # weights: nn.Linear's default, or "keras" (Glorot uniform, zero biases)
    device: str = "cpu"  # where training methods run ("cuda", "cuda:1", ...); MCMC runs on CPU
    # ---- MCMC methods (``<family>-mcmc``); None = the default for ``quick`` (mcmc_sizes)
    mcmc_max_rows: int = 1000  # MCMC only where the training split has at most this many rows
    mcmc_warmup: int | None = None  # NUTS warm-up iterations per chain (300; quick 20)
    mcmc_samples: int | None = None  # kept draws per chain (300; quick 20)
    mcmc_chains: int | None = None  # chains, run one after the other (2; quick 1)
    mcmc_tree_depth: int | None = None  # NUTS' maximum tree depth (7; quick 4)
    mcmc_sigma0: float = 1.0  # std of v in w = xi v (standardised units), / E[xi] if normalised

    def epochs(self, data: UCIData) -> int:
        return max(1, int(math.ceil(data.n_epochs * self.epochs_multiplier - 1e-9)))

    def mcmc_sizes(self) -> dict[str, int]:
        """The sampler's sizes: the fields where set, else the defaults (smaller if ``quick``)."""
        default = MCMC_QUICK if self.quick else MCMC_DEFAULTS
        return {k: int(getattr(self, f"mcmc_{k}") if getattr(self, f"mcmc_{k}") is not None
                       else v) for k, v in default.items()}

    def record(self) -> dict:
        """The settings recorded in ``run.json``. The MCMC fields are left out while they have
        their default values, so a run started before they existed still resumes."""
        rec = asdict(self)
        for f in fields(self):
            if f.name.startswith("mcmc_") and rec[f.name] == f.default:
                del rec[f.name]
        if rec["engine"] == "sequential":  # runs from before the stacked engine resume
            del rec["engine"]
        if rec["init"] == "torch":  # runs from before the init option resume
            del rec["init"]
        if rec["device"] == "cpu":  # runs from before the device option resume
            del rec["device"]
        return {"protocol": PROTOCOL_VERSION, **rec}


#: the MCMC sampler's sizes (``Settings.mcmc_*`` left at None); the ``shrinkdrop mcmc`` defaults
MCMC_DEFAULTS = {"warmup": 300, "samples": 300, "chains": 2, "tree_depth": 7}
#: ... and under ``--quick``: about a second per grid point on a toy data set
MCMC_QUICK = {"warmup": 20, "samples": 20, "chains": 1, "tree_depth": 4}


@dataclass(frozen=True)
class Config:
    """One grid point: a noise law (with its matched dropout rate) and tau."""

    family: str
    params: tuple[tuple[str, float], ...]
    rate: float  # the dropout rate this noise is matched to (enters the weight decay)
    tau: float  # NaN for MCMC methods: the noise precision is a latent variable there
    normalize: bool = True

    def label(self) -> str:
        ps = ",".join(f"{k}={v:.6g}" for k, v in self.params)
        tau = "precision learnt" if math.isnan(self.tau) else f"tau={self.tau:g}"
        return f"{self.family}({ps}) rate={self.rate:g} {tau}"

    def noise(self):
        cls = FAMILIES[self.family]
        return cls(**dict(self.params))


@dataclass(frozen=True)
class UnitTask:
    """One unit of work: fit one method on one split (grid search, refit, test)."""

    dataset: str
    split: int
    method: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    configs: tuple[Config, ...]
    n_hidden: int
    epochs: int
    settings: Settings
    task: str = "regression"
    n_classes: int = 0
    seed: int = 0
    extra: dict = field(default_factory=dict)
    skip: str = ""  # why the unit is not run (MCMC on a training split above mcmc_max_rows)

    @property
    def key(self) -> str:
        return f"{self.dataset}|split={self.split}|method={self.method}"

    @property
    def family(self) -> str:
        return _split_method(self.method)[0]

    @property
    def objective(self) -> str:
        return _split_method(self.method)[1]

    @property
    def fit_tau(self) -> bool:
        """``+tau``: the likelihood's precision is fitted on the validation rows."""
        return fits_tau(self.method)

    def __str__(self) -> str:
        return f"{self.dataset} split {self.split} {self.method}"


# --------------------------------------------------------------------------------------------
# grids
# --------------------------------------------------------------------------------------------

def _cv2(noise) -> float:
    """Squared coefficient of variation Var[xi] / E[xi]^2 from the family's own moments."""
    return float(noise.variance) / float(noise.mean) ** 2


#: one-parameter paths through each continuous family, mean-free (normalisation divides by E xi)
_PATHS = {
    "gaussian": (lambda t: {"mean": 1.0, "std": t}, (1e-6, 1e3)),
    "inverse_nakagami": (lambda t: {"df": t, "scale": 1.0}, (2.0 + 1e-6, 1e5)),
    "beta": (lambda t: {"a": t, "b": t}, (1e-3, 1e6)),
    "uniform": (lambda t: {"low": 1.0 - t, "high": 1.0 + t}, (1e-6, 1.0)),
}


def matched_noise(family: str, rate: float) -> dict[str, float] | None:
    """Noise parameters whose mean-normalised noise has the variance of dropout at ``rate``.

    Inverted dropout of rate ``p`` has ``Var[xi] / E[xi]^2 = p / (1 - p)``. Bernoulli uses
    ``keep = 1 - p``; Gaussian is Gaussian dropout ``N(1, p / (1 - p))``; inverse-Nakagami
    (scale 1, solve for df), symmetric Beta(a, a) and Uniform(1 - h, 1 + h) are solved
    numerically against the family's own ``mean`` and ``variance``. Rayleigh's normalised
    variance is the constant (4 - pi) / pi whatever its scale, so it has one point (scale 1).
    Returns None where the family cannot reach that variance (e.g. Uniform needs
    ``p / (1 - p) <= 1/3``) or ``p = 0`` for a continuous family.
    """
    import torch
    from scipy.optimize import brentq

    if family == "bernoulli":
        return {"keep": 1.0 - rate}
    if family == "rayleigh":
        return {"scale": 1.0}
    if family == "half_cauchy":
        raise ValueError("half_cauchy noise cannot be normalised; it uses a scale grid")
    if family not in _PATHS:
        raise ValueError(f"family has to be one of {', '.join(FAMILIES)}, but got {family!r}")
    if rate <= 0:
        return None
    target = rate / (1.0 - rate)
    if family == "gaussian":
        g = FAMILIES["gaussian"].dropout(rate)
        return {"mean": 1.0, "std": float(g.std)}
    path, (lo, hi) = _PATHS[family]
    cls = FAMILIES[family]

    def f(t):  # float64 parameters: the moments are solved to high relative accuracy
        params = {k: torch.tensor(v, dtype=torch.float64) for k, v in path(t).items()}
        return math.log(_cv2(cls(**params))) - math.log(target)

    try:
        flo, fhi = f(lo), f(hi)
    except ValueError:  # pragma: no cover - a family rejecting an end of its path
        return None
    if not (np.isfinite(flo) and np.isfinite(fhi)) or flo * fhi > 0:
        return None
    t = brentq(f, lo, hi, xtol=1e-12, rtol=1e-10)
    return {k: float(v) for k, v in path(t).items()}


def method_configs(method: str, data: UCIData, quick: bool = False) -> tuple[Config, ...]:
    """The grid of one method on one data set: noise parameter x tau.

    Rates come from the data set's ``dropout_rates`` and taus from ``tau_values``. ``quick``
    keeps the smallest and largest rate and the middle tau. MCMC methods have the same noise
    laws and no tau (the precision is learnt: ``Config.tau`` is NaN).
    """
    family, objective = _split_method(method)
    rates = list(data.dropout_rates)
    taus = list(data.tau_values) if objective != "mcmc" else [math.nan]
    if quick:
        rates = sorted({min(rates), max(rates)})
        taus = [sorted(taus)[len(taus) // 2]] if objective != "mcmc" else taus
    noises: list[tuple[dict, float, bool]] = []
    if family == "half_cauchy":
        noises = [({"scale": s}, 0.0, False) for s in HALF_CAUCHY_SCALES]
        if quick:
            noises = noises[1:2]
    else:
        seen = set()
        for r in rates:
            params = matched_noise(family, r)
            if params is None:
                continue
            key = tuple(sorted(params.items()))
            if key in seen:  # Rayleigh: every rate gives the same normalised noise
                continue
            seen.add(key)
            noises.append((params, 0.0 if family == "rayleigh" else r, True))
    return tuple(Config(family, tuple(p.items()), rate, tau, norm)
                 for p, rate, norm in noises for tau in taus)


def _split_method(method: str) -> tuple[str, str]:
    """``(family, objective)`` of a method name (``+tau`` dropped)."""
    if method not in ALL_METHODS:
        raise ValueError(f"method has to be one of {', '.join(ALL_METHODS)}, but got "
                         f"{method!r}")
    return base_method(method).split("-", 1)  # type: ignore[return-value]


def fits_tau(method: str) -> bool:
    """Whether ``method`` fits the likelihood's precision on the validation rows (``+tau``)."""
    return method.endswith(TAU_SUFFIX)


def base_method(method: str) -> str:
    """The method without ``+tau``: its training (and its networks: the same seeds)."""
    return method[: -len(TAU_SUFFIX)] if fits_tau(method) else method


# --------------------------------------------------------------------------------------------
# one unit: grid search on the inner split, refit, test (training/scoring from the library)
# --------------------------------------------------------------------------------------------

def _standardize(x: np.ndarray):
    mean = x.mean(0)
    std = x.std(0)
    std = np.where(std == 0, 1.0, std)
    return mean, std


def _prepare(x_tr, y_tr, x_ev, y_ev, regression: bool):
    """Standardise inputs (and targets, for regression) on the training rows.

    Returns ``(x_tr, y_tr, x_ev, y_ev, y_mean, y_std)`` (``y_ev`` unchanged; ``y_mean`` 0 and
    ``y_std`` 1 for classification)."""
    xm, xs = _standardize(x_tr)
    if regression:
        ym, ys = float(y_tr.mean()), float(y_tr.std()) or 1.0
        yt = (y_tr - ym) / ys
    else:
        ym, ys, yt = 0.0, 1.0, y_tr
    return (x_tr - xm) / xs, yt, (x_ev - xm) / xs, y_ev, ym, ys


def _gal_decay(rate, tau, n: int, y_std, length_scale: float, regression: bool):
    """The training precision and weight decay of Gal's loss; ``(tau_s, wd)`` (``tau_s`` None
    for classification). Elementwise in ``rate``, ``tau`` and ``y_std`` (floats or arrays).

    Gal's Keras loss is ``mse + reg ||W||^2`` with ``reg = l^2 (1 - p) / (2 N tau)`` (tau in the
    target's units, on standardised targets, weights only). ``fit`` minimises ``-mean(log-lik)
    + wd / 2 ||W||^2`` (weights only). With the Gaussian log-likelihood at the model's precision
    in standardised units, ``tau_s = tau std(y)^2``, the data term is ``tau_s / 2 mse``, so
    ``wd = tau_s reg`` keeps Gal's ratio of data term to decay (Adam is invariant to the overall
    scale of the loss). For categorical, ``CE + reg ||W||^2``: ``wd = 2 reg``.
    """
    reg = length_scale ** 2 * (1.0 - rate) / (2.0 * n * tau)
    if not regression:
        return None, 2.0 * reg
    tau_s = tau * y_std ** 2
    return tau_s, tau_s * reg


def _scores(ll, y_true, mc, mean_pred, regression: bool) -> dict:
    """A configuration's scores: ``ll``; regression: ``rmse`` of the MC mean ``mc`` and
    ``rmse_mean`` of the weight-scaling prediction ``mean_pred`` (None: no such rule), both in
    the target's units; classification: ``error`` of the MC class probabilities ``mc``."""
    nan = float("nan")
    out = {"ll": float(ll), "rmse": nan, "rmse_mean": nan, "error": nan}
    y_true = np.asarray(y_true)
    if regression:
        out["rmse"] = float(np.sqrt(np.mean((y_true - np.reshape(mc, -1)) ** 2)))
        if mean_pred is not None:
            out["rmse_mean"] = float(np.sqrt(np.mean((y_true - np.reshape(mean_pred, -1)) ** 2)))
    else:
        out["error"] = float(np.mean(np.asarray(mc).argmax(-1) != y_true))
    return out


def _best_config(configs, scores) -> tuple:
    """The configuration with the best finite validation ``ll`` (the first one if none is
    finite), and that ``ll``."""
    best, best_ll = None, -math.inf
    for cfg, r in zip(configs, scores):
        if best is None or (np.isfinite(r["ll"]) and r["ll"] > best_ll):
            best, best_ll = cfg, r["ll"]
    return best, best_ll


def _tau_folds(n: int) -> tuple[np.ndarray, np.ndarray]:
    """The two halves of ``n`` validation rows (even and odd positions) over which a ``+tau``
    method's validation score is cross-fitted: the rows of each half are scored at the
    precision fitted on the other half, so the score is not flattered by the fit."""
    if n < 2:
        raise ValueError(f"a +tau method needs at least 2 validation rows (to cross-fit its "
                         f"precision), but got {n}")
    even = np.arange(n) % 2 == 0
    return even, ~even


def _fit_and_score(cfg: Config, task: UnitTask, x_tr, y_tr, x_ev, y_ev, seed: int,
                   tau: float | str | None = None) -> dict:
    """Train one configuration on (x_tr, y_tr) and score it on (x_ev, y_ev).

    The log-likelihood is at the configuration's tau, or at ``tau`` when that is a number. With
    ``tau='fit'`` the precision is fitted on (x_ev, y_ev) (returned as ``'tau'``) and ``ll`` is
    cross-fitted (:func:`_tau_folds`)."""
    import torch

    from ..train import (
        fit,
        fit_predictive_tau,
        predict,
        predictive_log_likelihood,
        predictive_log_likelihoods,
    )

    try:
        from ..nn import UnitNoise
    except ImportError:  # pragma: no cover - before nn/__init__ exports it
        from ..nn.unit import UnitNoise

    s = task.settings
    regression = task.task == "regression"
    x_tr_s, y_tr_s, x_ev_s, _, ym, ys = _prepare(x_tr, y_tr, x_ev, y_ev, regression)
    tau_s, wd = _gal_decay(cfg.rate, cfg.tau, x_tr.shape[0], ys, s.length_scale, regression)
    if regression:
        yt = torch.as_tensor(y_tr_s, dtype=torch.float32).unsqueeze(-1)
        d_out, likelihood = 1, "gaussian"
    else:
        yt = torch.as_tensor(y_tr_s, dtype=torch.long)
        d_out, likelihood = task.n_classes, "categorical"
    dev = torch.device(s.device)
    xt = torch.as_tensor(x_tr_s, dtype=torch.float32)
    gen = torch.Generator(device=dev).manual_seed(seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the initial weights (built on the CPU, then moved)
        model = torch.nn.Sequential(
            UnitNoise(cfg.noise(), normalize=cfg.normalize, generator=gen),
            torch.nn.Linear(xt.shape[1], task.n_hidden),
            torch.nn.ReLU(),
            UnitNoise(cfg.noise(), normalize=cfg.normalize, generator=gen),
            torch.nn.Linear(task.n_hidden, d_out),
        )
        init_linears_([model[1], model[4]], s.init)
    model.to(dev)
    xt, yt = xt.to(dev), yt.to(dev)
    samples = 1 if task.objective == "mc" else s.train_samples
    fit(model, xt, yt, likelihood=likelihood, objective=task.objective, samples=samples,
        tau=tau_s, weight_decay=wd, epochs=task.epochs, batch_size=s.batch_size, lr=s.lr,
        seed=seed, progress=False)
    xe = torch.as_tensor(x_ev_s, dtype=torch.float32, device=dev)
    ll_tau = cfg.tau
    if regression:
        ye = torch.as_tensor(y_ev, dtype=torch.float32, device=dev)

        def ll_points(t):
            return predictive_log_likelihoods(model, xe, ye, s.test_samples,
                                              likelihood=likelihood, tau=t, y_mean=ym,
                                              y_std=ys).double().cpu().numpy()

        if tau == "fit":
            even, odd = _tau_folds(len(y_ev))
            t_all, t_even, t_odd = fit_predictive_tau(
                model, xe, ye, min(TAU_FIT_SAMPLES, s.test_samples), y_mean=ym, y_std=ys,
                rows=[torch.ones(len(y_ev), dtype=torch.bool), torch.as_tensor(even),
                      torch.as_tensor(odd)]).tolist()
            ll_tau = t_all
            ll = float(np.where(even, ll_points(t_odd), ll_points(t_even)).mean())
        else:
            ll_tau = cfg.tau if tau is None else float(tau)
            ll = float(ll_points(ll_tau).mean())
    else:
        ye = torch.as_tensor(y_ev, dtype=torch.long, device=dev)
        ll = predictive_log_likelihood(model, xe, ye, s.test_samples, likelihood=likelihood)
    mc = predict(model, xe, s.test_samples, mode="mc", likelihood=likelihood).double().cpu()
    mc = mc.numpy()
    mean_pred = None
    if regression:
        mc = mc * ys + ym
        if cfg.normalize:  # weight scaling (Gal's "test_rmse"); unnormalised noise has none
            mean_pred = predict(model, xe, 1, mode="mean").double().cpu().numpy() * ys + ym
    return {**_scores(ll, y_ev, mc, mean_pred, regression), "tau": ll_tau}


def _mcmc_fit_and_score(cfg: Config, task: UnitTask, x_tr, y_tr, x_ev, y_ev,
                        seed: int) -> dict:
    """Sample the posterior of the network given (x_tr, y_tr); score on (x_ev, y_ev).

    The network of :func:`_fit_and_score` (inputs -> n_hidden ReLU -> output, ARD scales on the
    inputs and on the hidden units) as the EP model of :func:`shrinkdrop.inference.make_model`:
    ``w = xi * v``, ``v ~ N(0, sigma0^2)``, ``xi`` from the configuration's noise law, biases
    ``N(0, 1)``, and for regression the noise precision (standardised units) learnt under the
    library's ``Gamma(2, 0.5)`` prior. A noise law normalised to mean 1 for the other methods is
    normalised here too, through ``sigma0 / E[xi]`` (the same prior on ``w``). Continuous scales
    and weights by NUTS; Bernoulli scales by Gibbs sweeps alternating with NUTS on the weights.
    Scored by :func:`shrinkdrop.inference.predictive_metrics`: log-likelihood of the posterior
    predictive (logsumexp over the draws of the Gaussian density, in the target's units) and
    RMSE of the posterior predictive mean.
    """
    import torch

    from .. import inference as inf

    s = task.settings
    sizes = s.mcmc_sizes()
    regression = task.task == "regression"
    x_tr_s, y_tr_s, x_ev_s, _, ym, ys = _prepare(x_tr, y_tr, x_ev, y_ev, regression)
    prev = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # as `shrinkdrop mcmc`: NUTS' adaptation needs it
    try:
        xt = torch.as_tensor(x_tr_s, dtype=torch.float64)
        xe = torch.as_tensor(x_ev_s, dtype=torch.float64)
        if regression:
            yt = torch.as_tensor(y_tr_s, dtype=torch.float64)
            ye = torch.as_tensor((y_ev - ym) / ys, dtype=torch.float64)
            d_out, likelihood = 1, "gaussian"
        else:
            yt = torch.as_tensor(y_tr, dtype=torch.long)
            ye = torch.as_tensor(y_ev, dtype=torch.long)
            d_out, likelihood = task.n_classes, "categorical"
        noise = cfg.noise()
        sigma0 = s.mcmc_sigma0 / float(noise.mean) if cfg.normalize else s.mcmc_sigma0
        spec = inf.NetSpec([xt.shape[1], task.n_hidden, d_out])
        model = inf.make_model(spec, noise, "ep", likelihood=likelihood, sigma0=sigma0)
        kw = dict(num_warmup=sizes["warmup"], num_samples=sizes["samples"],
                  chains=sizes["chains"], seed=seed, max_tree_depth=sizes["tree_depth"])
        if cfg.family == "bernoulli":
            res = inf.gibbs_bernoulli(model, xt, yt, **kw)
        else:
            res = inf.run_nuts(model, xt, yt, **kw)
        with torch.no_grad():
            m = inf.predictive_metrics(spec, res.samples, xe, ye, param="ep",
                                       likelihood=likelihood, y_scale=ys)
    finally:
        torch.set_default_dtype(prev)
    out = {"ll": float(m["test_ll"]), "rmse": float("nan"), "rmse_mean": float("nan"),
           "error": float("nan"), "divergences": int(res.divergences)}
    if regression:
        out["rmse"] = float(m["test_rmse"])
    else:
        out["error"] = 1.0 - float(m["test_accuracy"])
    return out


def _mcmc_note(task: UnitTask, divergences: int) -> str:
    z = task.settings.mcmc_sizes()
    sampler = "Gibbs+NUTS" if task.family == "bernoulli" else "NUTS"
    return (f"{sampler}: {z['chains']} chain(s) x ({z['warmup']} warm-up + {z['samples']} "
            f"draws), tree depth {z['tree_depth']}; {divergences} divergent transition(s) in "
            "the refit")


def skip_reason(task: UnitTask) -> str:
    """Why ``task`` is not run ("" if it is): MCMC on a training split above the threshold."""
    n, limit = task.x_train.shape[0], task.settings.mcmc_max_rows
    if task.objective == "mcmc" and n > limit:
        return (f"{SKIPPED}: the training split has {n} rows > --mcmc-max-rows {limit} "
                "(MCMC runs only on small data sets)")
    return ""


def _label(cfg: Config, fitted_tau: float | None) -> str:
    """The ``config`` column: the grid point, and the precision fitted for ``+tau`` methods."""
    return cfg.label() + ("" if fitted_tau is None else f" fitted_tau={fitted_tau:.6g}")


def _skipped_row(task: UnitTask) -> dict:
    nan = float("nan")
    return {"config": "", "val_ll": nan, "test_rmse": nan, "test_ll": nan,
            "test_rmse_mean": nan, "test_error": nan, "seconds": 0.0, "note": task.skip}


def evaluate_unit(task: UnitTask) -> dict:
    """Grid search on the inner 80/20 split, refit on the whole training split, test.

    Training methods train each configuration (:func:`_fit_and_score`); MCMC methods sample
    its posterior (:func:`_mcmc_fit_and_score`). A task with ``skip`` set is not run: its row
    has NaN metrics and the reason in ``note``. Returns the result row (without ``selected``).
    """
    if task.skip:
        return _skipped_row(task)
    t0 = time.perf_counter()
    score_fn = _mcmc_fit_and_score if task.objective == "mcmc" else _fit_and_score
    fit = {"tau": "fit"} if task.fit_tau else {}
    n_inner = int(0.8 * task.x_train.shape[0])
    xi, yi = task.x_train[:n_inner], task.y_train[:n_inner]
    xv, yv = task.x_train[n_inner:], task.y_train[n_inner:]
    scores = [score_fn(cfg, task, xi, yi, xv, yv, seed=task.seed + i, **fit)
              for i, cfg in enumerate(task.configs)]
    best, best_ll = _best_config(task.configs, scores)
    tau = scores[task.configs.index(best)]["tau"] if task.fit_tau else None
    test = score_fn(best, task, task.x_train, task.y_train, task.x_test, task.y_test,
                    seed=task.seed + 10_000, **({"tau": tau} if task.fit_tau else {}))
    row = {
        "config": _label(best, tau), "val_ll": best_ll, "test_rmse": test["rmse"],
        "test_ll": test["ll"], "test_rmse_mean": test["rmse_mean"], "test_error": test["error"],
        "seconds": time.perf_counter() - t0,
    }
    if task.objective == "mcmc":
        row["note"] = _mcmc_note(task, test["divergences"])
    return row


# --------------------------------------------------------------------------------------------
# many units at once: the stacked engine (shrinkdrop.ensemble)
# --------------------------------------------------------------------------------------------

def _stacked_round(tasks: list[UnitTask], chosen: list[list[Config]], x_tr, y_tr, x_ev, y_ev,
                   seeds: list[list[int]], progress: bool, desc: str,
                   alt_tau: list[list[float | str | None]] | None = None) -> list[list[dict]]:
    """Train ``chosen[g]`` configurations on data set ``g`` (all at once) and score them.

    ``x_tr[g]`` etc. are the raw (unstandardised) rows of group ``g``; returns per group and
    configuration the scores of :func:`_fit_and_score` (``ll``, ``rmse``, ``rmse_mean``,
    ``error``) at the configuration's tau. Where ``alt_tau[g][i]`` is ``'fit'`` (the precision
    fitted on the evaluation rows, on draws of their own) or a number, the same MC draws are
    also scored at that precision: ``ll_alt`` and ``tau_alt``.
    """
    import torch

    from ..ensemble import StackedNoisyMLP, fit_stacked, stacked_fit_tau, stacked_predictive

    task = tasks[0]
    s = task.settings
    regression = task.task == "regression"
    G = len(tasks)
    prep = [_prepare(x_tr[g], y_tr[g], x_ev[g], y_ev[g], regression) for g in range(G)]
    n = x_tr[0].shape[0]
    dev = torch.device(s.device)
    ydt = torch.float32 if regression else torch.long
    Xt = torch.as_tensor(np.stack([p[0] for p in prep]), dtype=torch.float32, device=dev)
    Yt = torch.as_tensor(np.stack([p[1] for p in prep]), dtype=ydt, device=dev)
    Xe = torch.as_tensor(np.stack([p[2] for p in prep]), dtype=torch.float32, device=dev)
    Ye = torch.as_tensor(np.stack([p[3] for p in prep]), dtype=torch.float32 if regression
                         else torch.long, device=dev)
    # models ordered by noise law (one shared law object per law: one draw call per law)
    laws: dict[tuple, object] = {}
    models = []  # (group, index in chosen[g], config, seed, alternative tau)
    for g in range(G):
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
    mseeds = [m[3] for m in models]
    gen = torch.Generator(device=dev).manual_seed(mseeds[0] + 7)
    d_out = 1 if regression else task.n_classes
    net = StackedNoisyMLP([Xt.shape[2], task.n_hidden, d_out], noises, seeds=mseeds,
                          normalize=normalize.pop(), generator=gen, init=s.init).to(dev)
    data_of = [m[0] for m in models]
    ys = np.array([prep[m[0]][5] for m in models])
    ym = np.array([prep[m[0]][4] for m in models])
    rates = np.array([m[2].rate for m in models])
    taus = np.array([m[2].tau for m in models])
    tau_s, wd = _gal_decay(rates, taus, n, ys, s.length_scale, regression)
    samples = 1 if task.objective == "mc" else s.train_samples
    fit_stacked(net, Xt, Yt, data_of=data_of, likelihood="gaussian" if regression else
                "categorical", objective=task.objective, samples=samples, tau=tau_s,
                weight_decay=wd, epochs=task.epochs, batch_size=s.batch_size, lr=s.lr,
                seeds=mseeds, progress=progress, desc=desc)
    alt = [m[4] for m in models]
    fit = np.array([a == "fit" for a in alt])
    tau_arg = taus if regression else None
    if any(a is not None for a in alt) and not regression:
        raise ValueError("a fitted tau needs the Gaussian likelihood (regression)")
    if regression and any(a is not None for a in alt):
        # columns: the grid's tau, the alternative (given, or fitted on all evaluation rows),
        # and for cross-fitting the taus fitted on the even and on the odd rows
        cols = np.repeat(taus.astype(np.float64)[:, None], 4 if fit.any() else 2, 1)
        for k, a in enumerate(alt):
            if a not in (None, "fit"):
                cols[k, 1] = float(a)
        if fit.any():  # on draws of its own: the scoring draws stay as they are
            even, odd = _tau_folds(Xe.shape[1])
            fitted = stacked_fit_tau(
                net, Xe, Ye, min(TAU_FIT_SAMPLES, s.test_samples), data_of=data_of, y_mean=ym,
                y_std=ys, rows=[torch.ones(len(even), dtype=torch.bool),
                                torch.as_tensor(even), torch.as_tensor(odd)],
                generator=torch.Generator(device=dev).manual_seed(mseeds[0] + 11)).numpy()
            cols[fit, 1:] = fitted[fit]
        tau_arg = cols  # every column scored on the same draws
    pred = stacked_predictive(net, Xe, Ye, s.test_samples, data_of=data_of,
                              likelihood="gaussian" if regression else "categorical",
                              tau=tau_arg, y_mean=ym, y_std=ys)
    multi = tau_arg is not None and np.ndim(tau_arg) == 2
    ll = pred["ll"].cpu()
    pts = pred["ll_points"].cpu().numpy() if multi else None
    out: list[list[dict]] = [[{} for _ in chosen[g]] for g in range(G)]
    for k, (g, i, cfg, _, a) in enumerate(models):
        mean_pred = pred["mean_pred"][k].cpu().numpy() if regression and cfg.normalize else None
        out[g][i] = _scores(ll[k, 0].item() if multi else ll[k].item(), y_ev[g],
                            pred["mc_mean"][k].cpu().numpy(), mean_pred, regression)
        if a == "fit":  # each half of the rows at the tau fitted on the other half
            cross = np.where(even, pts[k, 3], pts[k, 2]).mean()
            out[g][i].update(ll_alt=float(cross), tau_alt=float(tau_arg[k, 1]))
        elif a is not None:
            out[g][i].update(ll_alt=ll[k, 1].item(), tau_alt=float(tau_arg[k, 1]))
    return out


def evaluate_stacked(tasks) -> list[dict]:
    """:func:`evaluate_unit` for several units of one data set and method at once.

    The same protocol and the same per-model computation (initialisation seeds, shuffling
    order, loss, weight decay, Adam, scoring; see :mod:`shrinkdrop.ensemble`), with all grid
    points of all the given splits trained as one :class:`~shrinkdrop.ensemble.StackedNoisyMLP`
    and then all refits as another. Only the noise's random stream differs from
    :func:`evaluate_unit`. A method and its ``+tau`` twin on the same split share their
    networks (the same seeds): one training, scored at the grid's tau and at the fitted one on
    the same draws, so the two rows differ by the precision alone (and by the refit, where they
    choose different grid points). Returns one row per task, in order.
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
    label = (f"{tasks[0].dataset} {'/'.join(sorted({t.method for t in tasks}))} splits "
             + ",".join(str(k) for k in by_split))
    n_inner = int(0.8 * tasks[0].x_train.shape[0])
    grid = [list(t.configs) for t in heads]
    scores = _stacked_round(
        heads, grid, [t.x_train[:n_inner] for t in heads], [t.y_train[:n_inner] for t in heads],
        [t.x_train[n_inner:] for t in heads], [t.y_train[n_inner:] for t in heads],
        [[t.seed + i for i in range(len(t.configs))] for t in heads], progress,
        f"{label}: grid", alt_tau=[["fit" if f else None] * len(g) for f, g in zip(fit, grid)])
    # per task: the chosen grid point and, for +tau, its fitted precision
    best: dict[str, tuple[Config, float, float | None]] = {}
    for h, sc, ts in zip(heads, scores, by_split.values()):
        for t in ts:
            view = [{"ll": r["ll_alt"]} for r in sc] if t.fit_tau else sc
            cfg, ll = _best_config(h.configs, view)
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
        f"{label}: refit", alt_tau=alts)
    per = (time.perf_counter() - t0) / len(tasks)
    out = {}
    for ts, cfgs, res in zip(by_split.values(), chosen, test):
        for t in ts:
            cfg, ll, tau = best[t.key]
            r = res[cfgs.index(cfg)]
            out[t.key] = {
                "config": _label(cfg, tau), "val_ll": ll, "test_rmse": r["rmse"],
                "test_ll": r["ll_alt"] if t.fit_tau else r["ll"],
                "test_rmse_mean": r["rmse_mean"], "test_error": r["error"], "seconds": per,
                "note": f"stacked engine: {len(by_split)} split(s) trained together"
                        + ("; networks shared with " + base_method(t.method)
                           if t.fit_tau and len(ts) > 1 else "")}
    return [out[t.key] for t in tasks]


# --------------------------------------------------------------------------------------------
# the run
# --------------------------------------------------------------------------------------------

def check_device(device) -> str:
    """``device`` as given, if torch can run on it here; else a ValueError naming it."""
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as e:
        raise ValueError(f"device has to be a torch device such as 'cpu' or 'cuda', but got "
                         f"{device!r} ({e})") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device!r} was asked for, but torch "
                             f"{torch.__version__} sees no CUDA device here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(f"device {device!r} was asked for, but there are "
                             f"{torch.cuda.device_count()} CUDA device(s)")
    elif dev.type != "cpu":
        raise ValueError(f"device has to be 'cpu' or a CUDA device, but got {device!r}")
    return device


def _unit_seed(settings: Settings, dataset: str, split: int, method: str) -> int:
    # zlib.crc32, not hash(): Python salts str hashes per process. A +tau method has its base
    # method's seed: the same networks, scored with a fitted precision.
    key = f"{dataset}/{split}/{base_method(method)}"
    return (settings.seed * 1_000_003 + zlib.crc32(key.encode())) % (2 ** 31 - 20_000)


def make_tasks(datasets: list[UCIData], splits: list[int] | None, methods: list[str],
               settings: Settings) -> list[UnitTask]:
    """All units, split-major (so ``--jobs`` spreads splits over processes)."""
    tasks = []
    for data in datasets:
        chosen = _check_splits(data, splits, settings.quick)
        for k in chosen:
            sp = data.splits[k]
            for m in methods:
                mcmc = m.endswith("-mcmc")
                t = UnitTask(
                    dataset=data.name, split=k, method=m,
                    x_train=data.features[sp.train], y_train=data.target[sp.train],
                    x_test=data.features[sp.test], y_test=data.target[sp.test],
                    configs=method_configs(m, data, settings.quick), n_hidden=data.n_hidden,
                    epochs=0 if mcmc else settings.epochs(data), settings=settings,
                    task=data.task, n_classes=data.n_classes,
                    seed=_unit_seed(settings, data.name, k, m))
                tasks.append(replace(t, skip=skip_reason(t)))
    return tasks


def _check_splits(data: UCIData, splits: list[int] | None, quick: bool) -> list[int]:
    if splits is None:
        n = min(QUICK_SPLITS, data.n_splits) if quick else data.n_splits
        return list(range(n))
    for k in splits:
        if not 0 <= k < data.n_splits:
            where = f" ({data.source}/n_splits.txt)" if not data.source.startswith("builtin:") \
                else ""
            raise DataError(f"split {k} requested but {data.name} has {data.n_splits} splits "
                            f"(0-{data.n_splits - 1}){where}")
    return list(splits)


def select_rows(rows: list[dict], methods_order: list[str] | None = None) -> list[dict]:
    """Sort rows and mark, per (dataset, split), the one with the best validation LL selected.

    Exactly one row per (dataset, split) gets ``selected = 1`` (ties and NaNs: the first in
    method order).
    """
    order = {m: i for i, m in enumerate(methods_order or ALL_METHODS)}
    rows = sorted((dict(r) for r in rows),
                  key=lambda r: (r["dataset"], int(r["split"]), order.get(r["method"], 1 << 30),
                                 r["method"]))
    best: dict[tuple, int] = {}
    for i, r in enumerate(rows):
        r["selected"] = 0
        k = (r["dataset"], int(r["split"]))
        v = float(r["val_ll"])
        v = v if math.isfinite(v) else -math.inf
        if k not in best or v > float(rows[best[k]]["val_ll"]) or \
                not math.isfinite(float(rows[best[k]]["val_ll"])) and math.isfinite(v):
            best[k] = i
    for i in best.values():
        rows[i]["selected"] = 1
    return rows


def run_uci(datasets: list[UCIData], out, *, splits: list[int] | None = None,
            methods: list[str] | None = None, settings: Settings = Settings(),
            jobs: int | None = None, train_eval=None, progress: bool = True, command: str = "",
            stack_splits: int = 0, executor: str = "local", scheduler: str | None = None,
            ) -> Path:
    """Run the protocol; returns the path of ``results.csv``.

    Everything is validated (data, splits, methods, ``OUT``'s previous settings) before anything
    is written. ``train_eval(task) -> dict`` defaults to :func:`evaluate_unit`; tests inject a
    fast fake. Its qualified name is part of the recorded settings, so results never mix.

    ``executor="local"`` runs the work items here (``jobs`` processes; None: 1).
    ``executor="dask"`` submits them to the Dask scheduler at ``scheduler`` (None: a local
    cluster of ``jobs`` processes on 127.0.0.1); the tasks carry their data arrays, results
    come back here and are written here. ``jobs`` also sets how the stacked engine groups
    splits (see :func:`make_groups`); for ``dask`` it defaults to the cluster's worker
    threads. The same ``jobs`` and ``stack_splits`` give the same numbers on either executor.
    """
    if methods is None:  # the +tau quick method only where every data set is a regression
        methods = [m for m in (QUICK_METHODS if settings.quick else DEFAULT_METHODS)
                   if not fits_tau(m) or all(d.task == "regression" for d in datasets)]
    for m in methods:
        _split_method(m)
    tau_methods = [m for m in methods if fits_tau(m)]
    for d in datasets:
        if tau_methods and d.task != "regression":
            raise ValueError(f"methods {', '.join(tau_methods)} fit the Gaussian likelihood's "
                             f"precision, but data set {d.name} is {d.task}: use "
                             f"{', '.join(base_method(m) for m in tau_methods)}")
    for name in ("mcmc_max_rows", "mcmc_warmup", "mcmc_samples", "mcmc_chains",
                 "mcmc_tree_depth"):
        v = getattr(settings, name)
        low = 0 if name == "mcmc_warmup" else 1
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < low):
            raise ValueError(f"{name} has to be an integer >= {low}, but got {v!r}")
    if not settings.mcmc_sigma0 > 0:
        raise ValueError(f"mcmc_sigma0 has to be positive, but got {settings.mcmc_sigma0}")
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise ValueError(f"jobs has to be an integer >= 1, but got {jobs!r}")
    if executor not in EXECUTORS:
        raise ValueError(f"executor has to be one of {', '.join(EXECUTORS)}, but got "
                         f"{executor!r}")
    if scheduler is not None and executor != "dask":
        raise ValueError(f"a scheduler address ({scheduler!r}) is only used by the dask "
                         f"executor, but executor is {executor!r}")
    if isinstance(stack_splits, bool) or not isinstance(stack_splits, int) or stack_splits < 0:
        raise ValueError(f"stack_splits has to be an integer >= 0, but got {stack_splits!r}")
    if settings.engine not in ENGINES:
        raise ValueError(f"engine has to be one of {', '.join(ENGINES)}, but got "
                         f"{settings.engine!r}")
    check_init(settings.init)
    if executor == "local":
        check_device(settings.device)
    stacked = train_eval is None and settings.engine == "stacked"
    if train_eval is None:
        train_eval = globals()["evaluate_unit"]  # looked up at call time (tests patch it)
    else:  # an injected train_eval is called unit by unit
        settings = replace(settings, engine="sequential")
    named = evaluate_stacked if stacked else train_eval
    settings = replace(settings, train_eval=f"{named.__module__}.{named.__qualname__}")
    names = [d.name for d in datasets]
    if len(set(names)) != len(names):
        raise DataError(f"two data sets are named alike: {names}")
    tasks = make_tasks(datasets, splits, methods, settings)
    out = Path(out)
    store = ResultStore(out, settings.record(), {d.name: d.fingerprint() for d in datasets})
    store.check()
    with ExitStack() as stack:
        client = None
        if executor == "dask":  # connect (and check the device there) before writing anything
            client = stack.enter_context(dask_client(scheduler, n_workers=jobs or 1))
            slots = cluster_slots(client)  # a scheduler without workers: an error, not a hang
            if jobs is None:
                jobs = slots
            if settings.device != "cpu":
                client.run(check_device, settings.device)
        return _run_store(store, out, tasks, datasets, methods, settings, train_eval, stacked,
                          jobs or 1, progress, command, stack_splits, client)


def _run_store(store, out, tasks, datasets, methods, settings, train_eval, stacked, jobs,
               progress, command, stack_splits, client) -> Path:
    store.open()
    commands = _remember_command(out, command)
    todo = [t for t in tasks if not store.done(t.key)]
    by_name = {d.name: d for d in datasets}

    def publish():
        rows = select_rows(store.rows(), methods)
        write_csv_atomic(out / "results.csv", rows, COLUMNS)
        write_summary(out, rows, by_name, settings, command=command, commands=commands)

    def record(task: UnitTask, result: dict):
        store.put(task.key, {"dataset": task.dataset, "split": task.split,
                             "method": task.method, "epochs": task.epochs, **result})

    def on_result(task: UnitTask, result: dict):
        record(task, result)
        publish()

    for t in todo:  # skipped units are recorded, never handed to train_eval
        if t.skip:
            record(t, _skipped_row(t))
    publish()
    runnable = [t for t in todo if not t.skip]
    if not stacked:
        run_units(train_eval, runnable, jobs=jobs, on_result=on_result, progress=progress,
                  desc="uci", client=client)
    else:
        groups = make_groups(runnable, jobs, stack_splits,
                             inner_progress=progress and jobs == 1 and client is None)

        def on_group(group: tuple, result: list[dict]):
            for t, r in zip(group[1], result):
                record(t, r)
            publish()

        run_units(run_group, groups, jobs=jobs, on_result=on_group, progress=progress,
                  describe=_describe_group, desc="uci", client=client)
    publish()
    return out / "results.csv"


#: training engines: ``stacked`` trains all grid points of all splits of a (data set, method) as
#: one :class:`shrinkdrop.ensemble.StackedNoisyMLP`; ``sequential`` one network at a time
ENGINES = ("stacked", "sequential")


def make_groups(tasks: list[UnitTask], jobs: int = 1, stack_splits: int = 0,
                inner_progress: bool = False) -> list[tuple]:
    """Work items for the stacked engine: ``("stacked", units)`` for the training units of one
    data set, method (with its ``+tau`` twin: they share their networks) and split size, at
    most ``stack_splits`` splits each (0: as many as fit ``jobs`` workers), and ``("unit",
    (task,))`` for MCMC units."""
    out: list[tuple] = []
    by: dict[tuple, dict[int, list[UnitTask]]] = {}
    for t in tasks:
        if t.objective == "mcmc":
            out.append(("unit", (t,)))
        else:
            key = (t.dataset, base_method(t.method), t.x_train.shape[0], t.x_test.shape[0])
            by.setdefault(key, {}).setdefault(t.split, []).append(t)
    stacked = []
    for per_split in by.values():
        splits = list(per_split.values())
        size = stack_splits if stack_splits > 0 else math.ceil(len(splits) / max(1, jobs))
        for i in range(0, len(splits), size):
            chunk = tuple(replace(t, extra={**t.extra, "progress": inner_progress})
                          for ts in splits[i: i + size] for t in ts)
            stacked.append(("stacked", chunk))
    return stacked + out


def run_group(group: tuple) -> list[dict]:
    """Run one work item of :func:`make_groups` (module level: picklable for ``--jobs``)."""
    kind, tasks = group
    if kind == "stacked":
        return evaluate_stacked(tasks)
    return [evaluate_unit(t) for t in tasks]


def _describe_group(group: tuple) -> str:
    kind, tasks = group
    t = tasks[0]
    return f"{t.dataset} {t.method} split(s) {','.join(str(u.split) for u in tasks)}"


# --------------------------------------------------------------------------------------------
# summary
# --------------------------------------------------------------------------------------------

def _mean_se(values) -> tuple[float, float]:
    v = np.asarray([x for x in values if np.isfinite(x)], dtype=np.float64)
    if v.size == 0:
        return math.nan, math.nan
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan
    return float(v.mean()), se


def _decimals(mean: float, se: float) -> int:
    """Decimals for "mean ± se": at least 3, and enough to show two significant figures of the
    standard error (of the mean when there is none), so that naval's RMSE of 0.0008 +- 0.00005
    is not printed as 0.001 ± 0.000."""
    scale = se if math.isfinite(se) and se > 0 else abs(mean)
    if not math.isfinite(scale) or scale == 0:
        return 3
    return min(8, max(3, 1 - math.floor(math.log10(scale))))


def _pm(mean: float, se: float, digits: int | None = None) -> str:
    if not math.isfinite(mean):
        return "-"
    digits = _decimals(mean, se) if digits is None else digits
    if not math.isfinite(se):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {se:.{digits}f}"


_REF = re.compile(r"test_ll_(?P<tag>(?P<mult>[0-9.]+)_xepochs_(?P<layers>\d+)_hidden_layers)$")


def _references(data: UCIData | None) -> list[dict]:
    """Reference result files paired as (test LL, test MC RMSE) by their epoch/layer tag."""
    if data is None:
        return []
    out = []
    for stem, ll in sorted(data.reference.items()):
        m = _REF.match(stem)
        if not m:
            continue
        rmse = data.reference.get(f"test_MC_rmse_{m['tag']}")
        out.append({"tag": m["tag"], "multiplier": float(m["mult"]), "layers": int(m["layers"]),
                    "ll": ll, "rmse": rmse})
    return out


PROTOCOL_TEXT = (
    "Protocol (MC dropout's, Gal & Ghahramani 2016): per split an inner 80/20 train/validation "
    "split (training rows in index order) chooses the configuration (noise parameter and tau; "
    "across methods, the selected row) by validation log-likelihood; refit on the whole training "
    "split; inputs and targets standardised on the training data; one hidden layer of n_hidden "
    "ReLU units, ARD noise of the method's family on the network's inputs and on the hidden "
    "units (where MC dropout has dropout); weight decay "
    "l^2 (1 - p) / (2 N tau), l = 1e-2; batch 128; Adam. Test RMSE is of the MC predictive mean "
    "and test LL is logsumexp over MC samples (both in the target's units). Mean ± standard "
    "error over splits.")

MCMC_TEXT = (
    "MCMC methods (<family>-mcmc): the same network as a Bayesian model in the EP "
    "(non-centred) parametrization, w = xi v, v ~ N(0, sigma0^2 / E[xi]^2) (E[xi] = 1 for "
    "half-Cauchy, which is not normalised), biases N(0, 1), the Gaussian noise precision "
    "(standardised units) learnt under a Gamma(2, 0.5) prior instead of a tau grid; the grid is "
    "the noise law alone, each grid point one MCMC run on the inner split (Pyro NUTS; Bernoulli "
    "scales: Gibbs sweeps alternating with NUTS), selected by the validation log-likelihood of "
    "the posterior predictive, then sampled again on the whole training split. Test LL: "
    "logsumexp over posterior draws of the Gaussian density (target's units); test RMSE: of the "
    "posterior predictive mean. Run only where the training split has at most mcmc_max_rows "
    "rows; other units are listed as skipped.")


TAU_TEXT = (
    "Methods with +tau: the same networks as the method without it (the same seeds and "
    "training), but the Gaussian likelihood's precision tau is not taken from the grid: per grid "
    "point it is the value that maximises the MC predictive log-likelihood of the validation "
    f"rows (fitted on {TAU_FIT_SAMPLES} draws). Its validation score (which picks the grid point "
    "and takes part in the selection across methods) is cross-fitted on fresh draws: the even "
    "rows at the tau fitted on the odd ones and vice versa, so the fit does not flatter it. The "
    "refit is scored on the test rows at the tau fitted on all validation rows. The grid's tau "
    "still sets the weight decay.")


def _is_skipped(row: dict) -> bool:
    return str(row.get("note") or "").startswith(SKIPPED)


def _skip_lines(skipped: list[dict]) -> list[str]:
    """One line per (method, reason): which splits were skipped and why."""
    groups: dict[tuple[str, str], list[int]] = {}
    for r in skipped:
        groups.setdefault((r["method"], str(r["note"])), []).append(int(r["split"]))
    return [f"- {m}, split(s) {', '.join(map(str, sorted(ks)))}: {note}"
            for (m, note), ks in groups.items()]


#: every command run into an output folder, one per line, in order (``summary.md`` lists them)
COMMANDS_FILE = "commands.txt"


def _remember_command(out: Path, command: str) -> list[str]:
    """Append ``command`` to ``OUT/commands.txt`` unless it is there (atomically); return all.

    One folder collects the methods of several commands (a later ``--methods`` adds methods;
    rerunning a command resumes it), so the summary names every command, not only the last."""
    from .runner import atomic_write_text

    path = out / COMMANDS_FILE
    seen = path.read_text().splitlines() if path.exists() else []
    seen = [c for c in seen if c.strip()]
    if command and command not in seen:
        seen.append(command)
        atomic_write_text(path, "\n".join(seen) + "\n")
    return seen


def write_summary(out, rows: list[dict], datasets: dict[str, UCIData], settings: Settings,
                  command: str = "", commands: list[str] | tuple[str, ...] = ()) -> Path:
    """``summary.md`` (and ``section.json`` for the report) from the assembled rows."""
    from .report import Section, write_section

    out = Path(out)
    lines = ["# UCI benchmark", "", PROTOCOL_TEXT, ""]
    lines.append(f"Settings: epochs = n_epochs x {settings.epochs_multiplier:g}; "
                 f"{settings.test_samples} MC samples at validation and test; "
                 f"{settings.train_samples} noise samples per step for marginal_map and "
                 f"tail_adaptive (1 for mc); seed {settings.seed}"
                 + ("; Keras initialisation (Glorot-uniform weights, zero biases)"
                    if settings.init == "keras" else "; nn.Linear's initialisation")
                 + (f"; trained on {settings.device}" if settings.device != "cpu" else "")
                 + ("; QUICK run (reduced grid, epochs and samples: not comparable to the "
                    "references)" if settings.quick else "") + ".")
    if any(str(r["method"]).endswith("-mcmc") for r in rows):
        z = settings.mcmc_sizes()
        lines += ["", MCMC_TEXT, "",
                  f"MCMC settings: {z['chains']} chain(s) x ({z['warmup']} warm-up + "
                  f"{z['samples']} draws), NUTS tree depth {z['tree_depth']}, sigma0 "
                  f"{settings.mcmc_sigma0:g}, mcmc_max_rows {settings.mcmc_max_rows}."]
        section_mcmc = True
    else:
        section_mcmc = False
    if any(fits_tau(str(r["method"])) for r in rows):
        lines += ["", TAU_TEXT]
    others = [c for c in commands if c != command]
    if command and not others:
        lines += ["", f"Command: `{command}`"]
    elif command:
        lines += ["", f"Commands run into this folder ({COMMANDS_FILE}; each added its methods, "
                  "rerunning one resumes it; the last one is this summary's):", ""]
        lines += [f"- `{c}`" for c in others + [command]]
    lines.append("")
    # the time it took: the compute time of every finished unit (a resumed run adds up)
    seconds = float(sum(float(r["seconds"]) for r in rows
                        if math.isfinite(float(r.get("seconds") or 0.0))))
    section = Section(title="UCI benchmark", command=command, seconds=seconds)
    section.p(PROTOCOL_TEXT)
    if section_mcmc:
        section.p(MCMC_TEXT)
    if any(fits_tau(str(r["method"])) for r in rows):
        section.p(TAU_TEXT)
    for name in sorted({r["dataset"] for r in rows}):
        drows = [r for r in rows if r["dataset"] == name]
        data = datasets.get(name)
        split_ids = sorted({int(r["split"]) for r in drows})
        epochs = sorted({int(r["epochs"]) for r in drows if int(r["epochs"]) > 0})
        epochs_text = f"{'/'.join(map(str, epochs))} epochs" if epochs else "MCMC only"
        lines += [f"## {name}", "",
                  f"{len(split_ids)} split(s): {', '.join(map(str, split_ids))}; "
                  f"{epochs_text}.", ""]
        skipped = [r for r in drows if _is_skipped(r)]
        table = []
        # classification rows have no RMSE: show the test error rate in that column instead
        metric = "test_rmse" if any(math.isfinite(float(r["test_rmse"])) for r in drows) \
            else "test_error"
        sel = {int(r["split"]): r for r in drows if int(r["selected"]) == 1}
        table.append(["selected on validation", len(sel),
                      _pm(*_mean_se([float(r[metric]) for r in sel.values()])),
                      _pm(*_mean_se([float(r["test_ll"]) for r in sel.values()])), len(sel)])
        methods = [m for m in ALL_METHODS if any(r["method"] == m for r in drows)]
        for m in methods:
            mr = [r for r in drows if r["method"] == m and not _is_skipped(r)]
            n_skip = sum(r["method"] == m for r in skipped)
            label = m + (f" (skipped on {n_skip} split(s))" if n_skip else "")
            table.append([label, len(mr), _pm(*_mean_se([float(r[metric]) for r in mr])),
                          _pm(*_mean_se([float(r["test_ll"]) for r in mr])),
                          sum(int(r["selected"]) for r in mr)])
        refs = _references(data)
        wins = []
        for ref in refs:
            idx = [k for k in split_ids if k < len(ref["ll"])]
            label = (f"reference MC dropout ({ref['multiplier']:g}x epochs, {ref['layers']} "
                     f"hidden layer(s)), same splits")
            rm = ref["rmse"]
            table.append([label, len(idx),
                          _pm(*_mean_se([rm[k] for k in idx if k < len(rm)])) if rm is not None
                          else "-", _pm(*_mean_se([ref["ll"][k] for k in idx])), "-"])
            for who, rr in [("selected", sel)] + [
                    (m, {int(r["split"]): r for r in drows if r["method"] == m})
                    for m in ("bernoulli-mc",) if m in methods]:
                common = [k for k in idx if k in rr]
                if not common:
                    continue
                ll_w = sum(float(rr[k]["test_ll"]) > ref["ll"][k] for k in common)
                rm_w = sum(float(rr[k]["test_rmse"]) < rm[k] for k in common
                           if rm is not None and k < len(rm))
                wins.append(f"- {who} vs reference ({ref['tag']}): better test LL on {ll_w}/"
                            f"{len(common)} splits, lower RMSE on {rm_w}/{len(common)}")
        header = ["method", "splits", "test RMSE" if metric == "test_rmse" else "test error",
                  "test LL", "times selected"]
        lines.append("| " + " | ".join(header) + " |")
        lines.append("|" + "---|" * len(header))
        for row in table:
            lines.append("| " + " | ".join(str(c) for c in row) + " |")
        lines.append("")
        if wins:
            lines += ["Per-split wins:", "", *wins, ""]
        skip_lines = _skip_lines(skipped)
        if skip_lines:
            lines += ["Skipped units (not run; no metrics):", "", *skip_lines, ""]
        section.p(f"**{name}**: {len(split_ids)} split(s), {epochs_text}.")
        section.table(header, table)
        for w in wins + skip_lines:
            section.p(w[2:])
    from .runner import atomic_write_text

    atomic_write_text(out / "summary.md", "\n".join(lines) + "\n")
    write_section(out, section)
    return out / "summary.md"


# --------------------------------------------------------------------------------------------
# CLI
# --------------------------------------------------------------------------------------------

def _int_list(text: str) -> list[int]:
    try:
        out = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated split numbers like 0,1,2, got {text!r}") from None
    if not out:
        raise argparse.ArgumentTypeError("expected at least one split number")
    return out


def _method_list(text: str) -> list[str]:
    out = []
    for t in (t.strip() for t in text.split(",")):
        if not t:
            continue
        if t in FAMILIES:  # a family alone means all its training objectives (not mcmc)
            out += [f"{t}-{o}" for o in OBJECTIVES]
        elif t.endswith(TAU_SUFFIX) and t[: -len(TAU_SUFFIX)] in FAMILIES:
            out += [f"{t[: -len(TAU_SUFFIX)]}-{o}{TAU_SUFFIX}" for o in OBJECTIVES]
        elif t in ALL_METHODS:
            out.append(t)
        elif t == "all":
            out += list(METHODS)
        elif t == "all" + TAU_SUFFIX:
            out += list(TAU_METHODS)
        elif t == "mcmc":
            out += list(MCMC_METHODS)
        else:
            raise argparse.ArgumentTypeError(
                f"unknown method {t!r}; methods are <family>-<objective> with family in "
                f"{', '.join(FAMILIES)} and objective in {', '.join(OBJECTIVES)}, the same "
                f"with {TAU_SUFFIX} (the likelihood's precision fitted on the validation rows), "
                f"or <family>-mcmc for family in {', '.join(MCMC_FAMILIES)} (or a family alone "
                f"or <family>{TAU_SUFFIX}, 'all' or 'all{TAU_SUFFIX}' for the training methods, "
                f"'mcmc' for the MCMC ones); valid names: {', '.join(ALL_METHODS)}")
    return list(dict.fromkeys(out))


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data", required=True,
                   help="a data set directory in the UCI layout, a directory of them, or a "
                        "built-in name (diabetes, iris, wine, breast_cancer, digits)")
    p.add_argument("--out", required=True, help="output folder (created; reruns resume)")
    p.add_argument("--splits", type=_int_list, default=None,
                   help="comma-separated split numbers (default: all; --quick: the first 2)")
    p.add_argument("--methods", type=_method_list, default=None,
                   help="comma-separated <family>-<objective> (e.g. bernoulli-mc = MC dropout), "
                        "<family>-<objective>+tau (the same networks, the likelihood's precision "
                        "fitted on the validation rows instead of the tau grid; regression), "
                        "<family>-mcmc (posterior sampling, small data sets only), families "
                        "alone (their training objectives; <family>+tau likewise), 'all' "
                        "(every training method), 'all+tau' or "
                        "'mcmc' (every MCMC method). Default: " + ",".join(DEFAULT_METHODS)
                        + " (MC dropout and its +tau twin: one shared training; 3 splits of "
                        "energy, 768 rows, take under a minute on one core, of wine-quality-red, "
                        "1599 rows, about two; 'all' takes about 50 minutes on energy's 3 splits: "
                        "each of its 21 methods trains on its own, the marginal_map and "
                        "tail_adaptive ones on 5 draws per row; docs/uci.md); --quick: "
                        + ",".join(QUICK_METHODS))
    p.add_argument("--epochs-multiplier", type=float, default=None,
                   help="epochs = n_epochs.txt x this (default 100, the reference files' "
                        "'100_xepochs'; --quick: 0.25)")
    p.add_argument("--test-samples", type=int, default=None,
                   help="MC samples for validation and test (default 10000; --quick: 100)")
    p.add_argument("--train-samples", type=int, default=None,
                   help="noise samples per step for marginal_map / tail_adaptive "
                        "(default 5; --quick: 2)")
    p.add_argument("--mcmc-max-rows", type=int, default=None,
                   help="run <family>-mcmc methods only where the training split has at most "
                        "this many rows; other units are recorded as skipped (default 1000)")
    p.add_argument("--mcmc-warmup", type=int, default=None,
                   help="MCMC warm-up iterations per chain (default 300; --quick: 20)")
    p.add_argument("--mcmc-samples", type=int, default=None,
                   help="MCMC draws kept per chain (default 300; --quick: 20)")
    p.add_argument("--mcmc-chains", type=int, default=None,
                   help="MCMC chains, one after the other (default 2; --quick: 1)")
    p.add_argument("--mcmc-tree-depth", type=int, default=None,
                   help="NUTS' maximum tree depth (default 7; --quick: 4)")
    p.add_argument("--mcmc-sigma0", type=float, default=None,
                   help="prior std of the Gaussian part v of w = xi v in the MCMC models "
                        "(standardised units; divided by E[xi] for normalised noise; default 1)")
    p.add_argument("--engine", choices=ENGINES, default="stacked",
                   help="how training methods run: 'stacked' trains every grid point of every "
                        "split of a (data set, method) at once as one batched ensemble "
                        "(shrinkdrop.ensemble; default, ~10x faster), 'sequential' one network "
                        "at a time; same protocol and per-model computation")
    p.add_argument("--init", choices=INITS, default="torch",
                   help="weight initialisation: 'torch' (nn.Linear's default) or 'keras' "
                        "(Glorot-uniform weights, zero biases: Keras' Dense default, as in MC "
                        "dropout's published UCI code)")
    p.add_argument("--device", default="cpu",
                   help="torch device for the training methods: 'cpu' (default), 'cuda', "
                        "'cuda:1', ... (MCMC methods always run on the CPU; the noise streams "
                        "differ between devices, so results are recorded with the device)")
    p.add_argument("--stack-splits", type=int, default=0,
                   help="stacked engine: at most this many splits per batched run (the unit "
                        "of resume; default 0: all requested splits, divided over --jobs)")
    p.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    p.add_argument("--jobs", type=int, default=None,
                   help="parallel worker processes (default 1); with --executor dask: the "
                        "local cluster's worker processes, and in any case how many groups "
                        "the stacked engine divides the splits into (default: the cluster's "
                        "worker threads)")
    p.add_argument("--executor", choices=EXECUTORS, default="local",
                   help="where work items run: 'local' (this machine, --jobs processes; "
                        "default) or 'dask' (a Dask distributed cluster: --scheduler, or a "
                        "local cluster on 127.0.0.1; needs the 'cluster' extra: pip install "
                        "'shrinkdrop[cluster]'); results are written here either way")
    p.add_argument("--scheduler", default=None, metavar="ADDRESS",
                   help="with --executor dask: the address of a running Dask scheduler, e.g. "
                        "tcp://host:8786 (default: start a local cluster of --jobs processes)")
    p.add_argument("--quick", action="store_true",
                   help="a smoke run: 2 splits, 2 methods, reduced grid, few epochs and samples")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def settings_from_args(args) -> Settings:
    q = args.quick
    em = args.epochs_multiplier if args.epochs_multiplier is not None else (0.25 if q else 100.0)
    ts = args.test_samples if args.test_samples is not None else (100 if q else 10_000)
    tr = args.train_samples if args.train_samples is not None else (2 if q else 5)
    for name, v in (("--epochs-multiplier", em), ("--test-samples", ts),
                    ("--train-samples", tr)):
        if not v > 0:
            raise ValueError(f"{name} has to be positive, but got {v}")
    mc = {}
    for name in ("mcmc_max_rows", "mcmc_warmup", "mcmc_samples", "mcmc_chains",
                 "mcmc_tree_depth", "mcmc_sigma0"):
        v = getattr(args, name, None)
        if v is None:
            continue
        low = 0 if name == "mcmc_warmup" else 1
        if name == "mcmc_sigma0" and not v > 0 or name != "mcmc_sigma0" and v < low:
            raise ValueError(f"--{name.replace('_', '-')} has to be "
                             + ("positive" if name == "mcmc_sigma0" else f">= {low}")
                             + f", but got {v:g}")
        mc[name] = v
    return Settings(epochs_multiplier=float(em), test_samples=int(ts), train_samples=int(tr),
                    quick=q, seed=args.seed, engine=getattr(args, "engine", "stacked"),
                    init=getattr(args, "init", "torch"),
                    device=getattr(args, "device", "cpu"), **mc)


def _command(args) -> str:
    parts = ["shrinkdrop", "uci", "--data", str(args.data), "--out", str(args.out)]
    if args.splits is not None:
        parts += ["--splits", ",".join(map(str, args.splits))]
    if args.methods is not None:
        parts += ["--methods", ",".join(args.methods)]
    for opt in ("epochs_multiplier", "test_samples", "train_samples", "mcmc_max_rows",
                "mcmc_warmup", "mcmc_samples", "mcmc_chains", "mcmc_tree_depth", "mcmc_sigma0"):
        if getattr(args, opt, None) is not None:
            parts += ["--" + opt.replace("_", "-"), f"{getattr(args, opt):g}"]
    if getattr(args, "engine", "stacked") != "stacked":
        parts += ["--engine", args.engine]
    if getattr(args, "init", "torch") != "torch":
        parts += ["--init", args.init]
    if getattr(args, "device", "cpu") != "cpu":
        parts += ["--device", args.device]
    if getattr(args, "stack_splits", 0):
        parts += ["--stack-splits", str(args.stack_splits)]
    if args.seed:
        parts += ["--seed", str(args.seed)]
    if args.jobs is not None and args.jobs != 1:
        parts += ["--jobs", str(args.jobs)]
    if getattr(args, "executor", "local") != "local":
        parts += ["--executor", args.executor]
    if getattr(args, "scheduler", None) is not None:
        parts += ["--scheduler", args.scheduler]
    if args.quick:
        parts.append("--quick")
    return " ".join(shlex.quote(p) for p in parts)


def run(args) -> int:
    settings = settings_from_args(args)
    if args.jobs is not None and args.jobs < 1:
        raise ValueError(f"--jobs has to be at least 1, but got {args.jobs}")
    executor = getattr(args, "executor", "local")
    scheduler = getattr(args, "scheduler", None)
    if scheduler is not None and executor != "dask":
        raise ValueError(f"--scheduler {scheduler} needs --executor dask")
    datasets = resolve_data(args.data)
    t0 = time.perf_counter()
    path = run_uci(datasets, args.out, splits=args.splits, methods=args.methods,
                   settings=settings, jobs=args.jobs, progress=not args.no_progress,
                   command=_command(args), stack_splits=getattr(args, "stack_splits", 0),
                   executor=executor, scheduler=scheduler)
    print(f"[uci] wrote {path} and {Path(args.out) / 'summary.md'} in "
          f"{time.perf_counter() - t0:.1f} s")
    return 0
