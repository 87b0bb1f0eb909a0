"""``cnn``: tied-channel, tied-filter and joint priors on a digits CNN (section 5.3)."""

from __future__ import annotations

import time

import torch

from ... import train as O
from ..report import Section
from .common import (
    Log,
    Settings,
    bernoulli_or_gaussian,
    fit,
    fit_row,
    grid,
    log_fit,
    mc_outputs,
    model_table,
)
from .data import load_digits

__all__ = ["CNN_KEEP", "CNN_GAUSS_STD", "CNN_MODELS", "run_cnn", "cnn_section"]

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



def _cnn_model(kw: dict) -> torch.nn.Module:
    from ..models import SmallCNN

    if "fam" in kw:
        return SmallCNN(noise=bernoulli_or_gaussian(kw["fam"], CNN_KEEP, CNN_GAUSS_STD),
                        tie=kw["tie"])
    return SmallCNN(dropout2d=kw.get("dropout2d"))



def run_cnn(s: Settings, log: Log) -> list[dict]:
    """Per (model, seed) the test accuracy and log-likelihood, MC and at the noise's mean."""
    (xtr, ytr), (xte, yte) = load_digits()
    rows = []
    for name, kw, seed in grid(CNN_MODELS, s.seeds):
        model = _cnn_model(kw)
        hist = fit(model, xtr, ytr, likelihood="categorical", tau=None,
                   epochs=s.cnn_epochs, lr=s.lr, seed=seed, batch_size=64)
        t = time.perf_counter()
        outs = torch.cat([mc_outputs(model, xte[i:i + 120], s.eval_samples,
                                     2000 + seed + i) for i in range(0, len(xte), 120)], 1)
        ll = O.marginal_map(O.categorical_log_likelihood(outs, yte))
        probs = outs.softmax(-1).mean(0)
        with torch.no_grad():
            det = model(xte)
        r = fit_row(name, seed, hist, {
            "test_acc": float((probs.argmax(-1) == yte).float().mean()),
            "test_ll": float(ll.mean()),
            "test_acc_mean": float((det.argmax(-1) == yte).float().mean()),
            "test_ll_mean": float(O.categorical_log_likelihood(det, yte).mean()),
        }, eval_seconds=time.perf_counter() - t)
        rows.append(r)
        log_fit(log, "cnn", name, seed, hist, f"acc {r['test_acc']:.4f}, ll {r['test_ll']:.4f}")
    return rows


def cnn_section(sec: Section, rows: list[dict], s: Settings) -> None:
    """The cnn part of the report section."""
    sec.p(f"CNN on scikit-learn's 8x8 digits (1797 images; fixed stratified 80/20 split): "
          f"conv 3x3 (1 -> 16) -> ReLU -> maxpool -> conv 3x3 (16 -> 32) carrying the prior -> "
          f"ReLU -> maxpool -> linear. Trained {s.cnn_epochs} epochs (categorical likelihood, "
          f"MC objective, sigma0 = 1); MC prediction averages {s.eval_samples} noisy passes "
          f"(nn.Dropout2d included); 'mean' is one pass with the noise at its mean.")
    table = model_table(CNN_MODELS, rows, [("test_acc", 4), ("test_ll", 4),
                                           ("test_acc_mean", 4), ("test_ll_mean", 4)])
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

