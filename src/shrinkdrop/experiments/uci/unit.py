"""The per-unit engine: one unit (data set x split x method) at a time, one network at a time.

Grid search on the inner 80/20 split, refit on the whole training split, test. Training methods
train each configuration with :func:`shrinkdrop.train.fit`; MCMC methods sample its
posterior (:mod:`shrinkdrop.inference`).
"""

from __future__ import annotations

import time

import numpy as np

from .methods import TAU_FIT_SAMPLES, Config
from .scoring import best_config, gal_decay, label, prepare, scores, tau_folds
from .settings import SKIPPED, UnitTask

__all__ = ["evaluate_unit", "skipped_row", "SKIPPED"]


def _network(cfg: Config, task: UnitTask, d_in: int, d_out: int, gen, seed: int):
    """MC dropout's network with the configuration's noise: noise on the inputs -> n_hidden
    ReLU units -> noise -> linear output, initialised from ``seed`` (on the CPU)."""
    import torch

    from ...ensemble import init_linears_
    from ...nn import UnitNoise

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)  # the initial weights (built on the CPU, then moved)
        model = torch.nn.Sequential(
            UnitNoise(cfg.noise(), normalize=cfg.normalize, generator=gen),
            torch.nn.Linear(d_in, task.n_hidden),
            torch.nn.ReLU(),
            UnitNoise(cfg.noise(), normalize=cfg.normalize, generator=gen),
            torch.nn.Linear(task.n_hidden, d_out),
        )
        init_linears_([model[1], model[4]], task.settings.init)
    return model


def _regression_ll(model, xe, y_ev: np.ndarray, cfg: Config, task: UnitTask, ym: float,
                   ys: float, tau: float | str | None) -> tuple[float, float]:
    """The validation/test log-likelihood of a regression network and the tau it is at: the
    configuration's, ``tau`` when that is a number, or fitted on the rows (``'fit'``; the
    score is then cross-fitted, :func:`~shrinkdrop.experiments.uci.scoring.tau_folds`)."""
    import torch

    from ...train import fit_predictive_tau, predictive_log_likelihoods

    s = task.settings
    ye = torch.as_tensor(y_ev, dtype=torch.float32, device=xe.device)

    def ll_points(t):
        return predictive_log_likelihoods(model, xe, ye, s.test_samples,
                                          likelihood="gaussian", tau=t, y_mean=ym,
                                          y_std=ys).double().cpu().numpy()

    if tau == "fit":
        even, odd = tau_folds(len(y_ev))
        t_all, t_even, t_odd = fit_predictive_tau(
            model, xe, ye, min(TAU_FIT_SAMPLES, s.test_samples), y_mean=ym, y_std=ys,
            rows=[torch.ones(len(y_ev), dtype=torch.bool), torch.as_tensor(even),
                  torch.as_tensor(odd)]).tolist()
        return float(np.where(even, ll_points(t_odd), ll_points(t_even)).mean()), t_all
    ll_tau = cfg.tau if tau is None else float(tau)
    return float(ll_points(ll_tau).mean()), ll_tau


def _fit_and_score(cfg: Config, task: UnitTask, x_tr: np.ndarray, y_tr: np.ndarray,
                   x_ev: np.ndarray, y_ev: np.ndarray, seed: int,
                   tau: float | str | None = None) -> dict:
    """Train one configuration on (x_tr, y_tr) and score it on (x_ev, y_ev).

    The log-likelihood is at the configuration's tau, or at ``tau`` when that is a number. With
    ``tau='fit'`` the precision is fitted on (x_ev, y_ev) (returned as ``'tau'``) and ``ll`` is
    cross-fitted (:func:`~shrinkdrop.experiments.uci.scoring.tau_folds`)."""
    import torch

    from ...train import fit, predict, predictive_log_likelihood

    s = task.settings
    regression = task.task == "regression"
    x_tr_s, y_tr_s, x_ev_s, _, ym, ys = prepare(x_tr, y_tr, x_ev, y_ev, regression)
    tau_s, wd = gal_decay(cfg.rate, cfg.tau, x_tr.shape[0], ys, s.length_scale, regression)
    if regression:
        yt = torch.as_tensor(y_tr_s, dtype=torch.float32).unsqueeze(-1)
        d_out, likelihood = 1, "gaussian"
    else:
        yt = torch.as_tensor(y_tr_s, dtype=torch.long)
        d_out, likelihood = task.n_classes, "categorical"
    dev = torch.device(s.device)
    xt = torch.as_tensor(x_tr_s, dtype=torch.float32)
    gen = torch.Generator(device=dev).manual_seed(seed)
    model = _network(cfg, task, xt.shape[1], d_out, gen, seed).to(dev)
    xt, yt = xt.to(dev), yt.to(dev)
    samples = 1 if task.objective == "mc" else s.train_samples
    fit(model, xt, yt, likelihood=likelihood, objective=task.objective, samples=samples,
        tau=tau_s, weight_decay=wd, epochs=task.epochs, batch_size=s.batch_size, lr=s.lr,
        seed=seed, progress=False)
    xe = torch.as_tensor(x_ev_s, dtype=torch.float32, device=dev)
    if regression:
        ll, ll_tau = _regression_ll(model, xe, y_ev, cfg, task, ym, ys, tau)
    else:
        ye = torch.as_tensor(y_ev, dtype=torch.long, device=dev)
        ll = predictive_log_likelihood(model, xe, ye, s.test_samples, likelihood=likelihood)
        ll_tau = cfg.tau
    mc = predict(model, xe, s.test_samples, mode="mc", likelihood=likelihood).double().cpu()
    mc = mc.numpy()
    mean_pred = None
    if regression:
        mc = mc * ys + ym
        if cfg.normalize:  # weight scaling (Gal's "test_rmse"); unnormalised noise has none
            mean_pred = predict(model, xe, 1, mode="mean").double().cpu().numpy() * ys + ym
    return {**scores(ll, y_ev, mc, mean_pred, regression), "tau": ll_tau}


def _mcmc_fit_and_score(cfg: Config, task: UnitTask, x_tr: np.ndarray, y_tr: np.ndarray,
                        x_ev: np.ndarray, y_ev: np.ndarray, seed: int) -> dict:
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

    from ... import inference as inf

    s = task.settings
    sizes = s.mcmc_sizes()
    regression = task.task == "regression"
    x_tr_s, y_tr_s, x_ev_s, _, ym, ys = prepare(x_tr, y_tr, x_ev, y_ev, regression)
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
        if s.mcmc_backend == "jax":
            from ...inference.jax_models import run_nuts_jax

            res = run_nuts_jax(model, xt, yt, target_accept_prob=0.9, **kw)
        elif cfg.family == "bernoulli":
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
    sampler += " (jax)" if task.settings.mcmc_backend == "jax" else ""
    return (f"{sampler}: {z['chains']} chain(s) x ({z['warmup']} warm-up + {z['samples']} "
            f"draws), tree depth {z['tree_depth']}; {divergences} divergent transition(s) in "
            "the refit")


def skipped_row(task: UnitTask) -> dict:
    """The row of a unit that is not run: NaN metrics, the reason in ``note``."""
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
        return skipped_row(task)
    t0 = time.perf_counter()
    score_fn = _mcmc_fit_and_score if task.objective == "mcmc" else _fit_and_score
    fit = {"tau": "fit"} if task.fit_tau else {}
    n_inner = int(0.8 * task.x_train.shape[0])
    xi, yi = task.x_train[:n_inner], task.y_train[:n_inner]
    xv, yv = task.x_train[n_inner:], task.y_train[n_inner:]
    scores = [score_fn(cfg, task, xi, yi, xv, yv, seed=task.seed + i, **fit)
              for i, cfg in enumerate(task.configs)]
    best, best_ll = best_config(task.configs, scores)
    tau = scores[task.configs.index(best)]["tau"] if task.fit_tau else None
    test = score_fn(best, task, task.x_train, task.y_train, task.x_test, task.y_test,
                    seed=task.seed + 10_000, **({"tau": tau} if task.fit_tau else {}))
    row = {
        "config": label(best, tau), "val_ll": best_ll, "test_rmse": test["rmse"],
        "test_ll": test["ll"], "test_rmse_mean": test["rmse_mean"], "test_error": test["error"],
        "seconds": time.perf_counter() - t0,
    }
    if task.objective == "mcmc":
        row["note"] = _mcmc_note(task, test["divergences"])
    return row

