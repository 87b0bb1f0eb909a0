"""``resnet``: ADD in a residual MLP with more blocks than the data need (section 5.1)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from ... import noise as N
from ... import train as O
from ..report import Section
from .common import (
    Log,
    Settings,
    fit,
    fit_row,
    grid,
    log_fit,
    model_table,
    pm,
    pyplot,
    regression_scores,
    seed_mean_se,
)
from .data import load_diabetes

__all__ = ["RESNET_MODELS", "RESNET_DEPTH", "RESNET_WIDTH", "RESNET_TRAIN_TAU", "KEEP_LAYER",
           "KEEP_UNIT", "run_resnet", "plot_resnet_layers", "resnet_section"]

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


def run_resnet(s: Settings, log: Log) -> tuple[list[dict], list[dict]]:
    """Per (model, seed) the scores, and per block the ADD read-out."""
    from ..models import ResidualMLP, layer_scale_posterior

    data = load_diabetes()
    rows, layer_rows = [], []
    for name, kw, seed in grid(RESNET_MODELS, s.seeds):
        model = ResidualMLP(
            data.x[0].shape[1], RESNET_WIDTH, RESNET_DEPTH,
            layer_noise=N.Bernoulli(kw["layer"]) if "layer" in kw else None,
            unit_noise=N.Bernoulli(kw["unit"]) if "unit" in kw else None)
        hist = fit(model, data.x[0], data.y[0], likelihood="gaussian",
                   tau=RESNET_TRAIN_TAU, epochs=s.resnet_epochs, lr=s.lr, seed=seed,
                   batch_size=32)
        sc = regression_scores(model, data, s.eval_samples, 1000 + seed)
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
        rows.append(fit_row(name, seed, hist, sc))
        for layer in range(RESNET_DEPTH):
            layer_rows.append({"model": name, "seed": seed, "layer": layer + 1,
                               "inclusion": incl[layer], "log_bf_drop": bf[layer],
                               "contribution": float(contrib[layer])})
        log_fit(log, "resnet", name, seed, hist, f"test ll {sc['test_ll']:.3f}, rmse "
                f"{sc['test_rmse']:.2f}, layers on {sc['layers_on']:.2f}")
    return rows, layer_rows


def plot_resnet_layers(path: Path, layer_rows: list[dict]) -> None:
    """The per-block read-out: inclusion (ADD models) and relative contribution."""
    plt = pyplot()
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
            ms = [seed_mean_se(r[key] for r in layer_rows if r["model"] == m and r["layer"] == k)
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



def resnet_section(sec: Section, rows: list[dict], layer_rows: list[dict], s: Settings) -> None:
    """The resnet part of the report section."""
    sec.p(f"Residual MLP on scikit-learn's diabetes data (442 patients, 10 features; fixed "
          f"70/10/20 split): input layer, {RESNET_DEPTH} residual blocks h + ReLU(Linear_"
          f"{RESNET_WIDTH}(tau_l (h * xi_l))), linear output; more depth than a 10-feature "
          f"regression needs. Trained {s.resnet_epochs} epochs with the MC objective (Gaussian "
          f"likelihood, training tau = {RESNET_TRAIN_TAU} in standardised units, sigma0 = 1); "
          f"scored with {s.eval_samples} MC samples and the noise precision tau picked on the "
          f"validation split; test log-likelihood and RMSE in the target's units.")
    table = model_table(RESNET_MODELS, rows, [("test_ll", 3), ("test_rmse", 2),
                                              ("layers_on", 2)])
    sec.table(["model", "noise", "seeds", "test log-lik", "test RMSE",
               f"E[# blocks on | data] (of {RESNET_DEPTH})"], table)
    per = []
    for name, _, kw in RESNET_MODELS:
        for key in (("inclusion", "log_bf_drop") if "layer" in kw else ()) + ("contribution",):
            per.append([name, key] + [
                pm((r[key] for r in layer_rows if r["model"] == name and r["layer"] == k), 2)
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

