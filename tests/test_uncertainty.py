"""Uncertainty read-outs (shrinkdrop.train.uncertainty) and metrics (shrinkdrop.metrics):
chunked streaming equals one pass; the decompositions against hand computations; the metrics
against torchmetrics, scikit-learn and hand computations."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import shrinkdrop as sd
from shrinkdrop import metrics as M
from shrinkdrop.train.uncertainty import mixture_quantiles, predictive, reduce_draws


def _draws(S=12, B=9, C=4, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(S, B, C, generator=g, dtype=torch.float64) * 2


@pytest.mark.parametrize("lik", ["categorical", "gaussian", "bernoulli"])
def test_reduction_in_sample_chunks_equals_one_pass(lik):
    F = _draws(C=1 if lik != "categorical" else 4)
    kw = dict(tau=2.0, quantiles=(0.1, 0.9)) if lik == "gaussian" else {}
    whole = reduce_draws([F], lik, **kw)
    chunked = reduce_draws(F.split(5), lik, **kw)  # 5 + 5 + 2 draws
    assert whole.keys() == chunked.keys()
    for k in whole:
        torch.testing.assert_close(chunked[k], whole[k], rtol=1e-12, atol=1e-12)


def test_classification_readouts_by_hand():
    F = _draws()
    r = reduce_draws([F], "categorical")
    p_s = F.softmax(-1)
    p = p_s.mean(0)
    H = -(p * p.log()).sum(-1)
    EH = -(p_s * p_s.log()).sum(-1).mean(0)
    torch.testing.assert_close(r["probs"], p)
    torch.testing.assert_close(r["entropy"], H)
    torch.testing.assert_close(r["expected_entropy"], EH)
    torch.testing.assert_close(r["mutual_information"], H - EH)
    assert bool((r["mutual_information"] >= 0).all())


def test_regression_readouts_by_hand_and_mixture_quantiles():
    F = _draws(S=40, C=1)
    r = reduce_draws([F], "gaussian", tau=4.0, quantiles=(0.05, 0.5, 0.95))
    torch.testing.assert_close(r["mean"], F.mean(0))
    torch.testing.assert_close(r["epistemic"], F.var(0, unbiased=False))
    torch.testing.assert_close(r["variance"], F.var(0, unbiased=False) + 0.25)
    # the quantiles solve the mixture CDF (scipy's normal CDF as the reference)
    from scipy.stats import norm
    q = r["quantiles"].numpy()
    f = F.numpy()
    for i, lev in enumerate((0.05, 0.5, 0.95)):
        cdf = norm.cdf((q[i][None] - f) / 0.5).mean(0)
        np.testing.assert_allclose(cdf, lev, atol=1e-9)
    with pytest.raises(ValueError, match="levels have to be in"):
        mixture_quantiles(F, 1.0, [1.5])


def _clf(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(6, 16), nn.ReLU(), sd.nn.UnitNoise(sd.noise.Bernoulli(0.7)),
                         nn.Linear(16, 3))


def test_predictive_streams_rows_and_samples_and_takes_a_loader():
    x = torch.randn(50, 6)
    model = _clf()
    # noise off (keep = 1): every chunking gives the same numbers as one pass
    det = nn.Sequential(nn.Linear(6, 3), sd.nn.UnitNoise(sd.noise.Bernoulli(1.0)))
    one = predictive(det, x, likelihood="categorical", samples=8)
    for kw in (dict(sample_chunk=3), dict(row_chunk=7), dict(sample_chunk=5, row_chunk=11)):
        ch = predictive(det, x, likelihood="categorical", samples=8, **kw)
        torch.testing.assert_close(ch.log_probs, one.log_probs, rtol=1e-12, atol=1e-12)
    ld = predictive(det, DataLoader(TensorDataset(x, torch.zeros(50)), batch_size=13),
                    likelihood="categorical", samples=8)
    torch.testing.assert_close(ld.probs, one.probs)
    # with noise: chunked and one pass agree within MC error; MI > 0
    a = predictive(model, x, likelihood="categorical", samples=400)
    b = predictive(model, x, likelihood="categorical", samples=400, sample_chunk=64,
                   row_chunk=16)
    assert float((a.probs - b.probs).abs().max()) < 0.08
    assert float(a.mutual_information.mean()) > 1e-3 and a.variance is None
    # the mean read-out is sd.train.predict's
    torch.manual_seed(1)
    p = sd.train.predict(model, x, 400, likelihood="categorical")
    assert float((p - a.probs.float()).abs().max()) < 0.08
    only = predictive(model, x, likelihood="categorical", samples=4, what=["entropy"])
    assert only.probs is None and only.entropy.shape == (50,)
    with pytest.raises(ValueError, match="what has to be some of"):
        predictive(model, x, likelihood="categorical", what=["variance"])
    with pytest.raises(ValueError, match="x has to hold finite values"):
        predictive(model, x.index_fill(0, torch.tensor([4]), math.nan),
                   likelihood="categorical")


def test_regression_predictive_interval_coverage():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(1, 1), sd.nn.UnitNoise(sd.noise.Gaussian(1.0, 0.5)))
    x = torch.randn(400, 1)
    r = predictive(model, x, tau=4.0, samples=64, quantiles=(0.05, 0.95), sample_chunk=16,
                   row_chunk=100)
    assert r.quantiles.shape == (2, 400, 1) and r.mean.shape == (400, 1)
    # targets drawn from the model's own predictive: the 90% interval covers about 90%
    torch.manual_seed(1)
    with sd.mc_mode(model), torch.no_grad():
        yy = model(x) + 0.5 * torch.randn(400, 1)
    cov = M.interval_coverage(r.quantiles[0], r.quantiles[1], yy)
    assert 0.84 < cov < 0.96  # binomial sd 0.015 around 0.9: fails with prob ~1e-4


def test_metrics_against_torchmetrics_and_hand_computations():
    tm = pytest.importorskip("torchmetrics.functional.classification")
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(500, 5, generator=g, dtype=torch.float64) * 2
    probs = logits.softmax(-1)
    y = torch.randint(0, 5, (500,), generator=g)
    ref = tm.multiclass_calibration_error(probs.float(), y, num_classes=5, n_bins=15,
                                          norm="l1")
    assert M.ece(probs, y) == pytest.approx(float(ref), abs=1e-6)
    assert M.nll(probs.log(), y) == pytest.approx(
        float(nn.functional.cross_entropy(logits, y)), rel=1e-10)
    onehot = nn.functional.one_hot(y, 5).double()
    assert M.brier(probs, y) == pytest.approx(
        float(((probs - onehot) ** 2).sum(1).mean()), rel=1e-12)
    from sklearn.metrics import brier_score_loss, roc_auc_score
    pb = probs[:, :2] / probs[:, :2].sum(1, keepdim=True)
    yb = (y % 2)
    assert M.brier(pb, yb) == pytest.approx(2 * brier_score_loss(yb.numpy(), pb[:, 1].numpy()))
    assert M.accuracy(probs, y) == pytest.approx(float((probs.argmax(1) == y).double().mean()))
    # AUROC with ties against torchmetrics and scikit-learn
    s_in = torch.randint(0, 6, (300,), generator=g).double()
    s_out = torch.randint(2, 8, (200,), generator=g).double()
    labels = torch.cat([torch.zeros(300), torch.ones(200)]).long()
    scores = torch.cat([s_in, s_out])
    ref = float(tm.binary_auroc(scores.float(), labels))
    assert M.auroc(s_in, s_out) == pytest.approx(ref, abs=1e-6)
    assert M.auroc(s_in, s_out) == pytest.approx(roc_auc_score(labels, scores), abs=1e-12)
    r = M.reliability(probs, y, bins=10)
    assert int(r["count"].sum()) == 500 and r["edges"].shape == (11,)
    with pytest.raises(ValueError, match="probs has to be"):
        M.ece(probs[:, 0], y)


def test_predict_refuses_non_finite_input():
    model = _clf()
    x = torch.randn(5, 6)
    x[2, 1] = math.inf
    with pytest.raises(ValueError, match=r"^x has to hold finite values.*row 2"):
        sd.train.predict(model, x, likelihood="categorical")
