"""``shrinkdrop.ensemble``: K stacked noisy MLPs behave as K separately trained ones.

* noise switched off (keep = 1), a stacked fit equals separate ``shrinkdrop.fit`` runs to float
  rounding (same initialisation, shuffling, loss, weight decay and Adam);
* the loss equals the library's objectives applied model by model;
* each model's noise has its own law (binomial / KS tests, fixed seeds, alpha = 1e-3 each);
* the predictive metrics equal ``predictive_log_likelihood`` of the model taken out alone.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

from shrinkdrop import fit
from shrinkdrop.ensemble import (
    StackedNoisyMLP,
    fit_stacked,
    stacked_fit_tau,
    stacked_loss,
    stacked_predictive,
)
from shrinkdrop.nn import UnitNoise
from shrinkdrop.noise import Bernoulli, Beta, Gaussian, HalfCauchy, Rayleigh, Uniform
from shrinkdrop.train import (
    fit_predictive_precision,
    fit_predictive_tau,
    gaussian_log_likelihood,
    marginal_map,
    mc_objective,
    predictive_log_likelihood,
    tail_adaptive,
)

ALPHA = 1e-3


def _seq(noise, d, H, seed, normalize=True):
    torch.manual_seed(seed)
    return torch.nn.Sequential(UnitNoise(noise, normalize=normalize), torch.nn.Linear(d, H),
                               torch.nn.ReLU(), UnitNoise(noise, normalize=normalize),
                               torch.nn.Linear(H, 1))


@pytest.mark.parametrize("objective,samples", [("mc", 1), ("marginal_map", 3)])
def test_noise_off_equals_separate_fits(objective, samples):
    g = torch.Generator().manual_seed(0)
    G, N, d, H = 2, 150, 5, 16
    X = torch.randn(G, N, d, generator=g)
    y = X[..., 0] - 0.5 * X[..., 1] + 0.1 * torch.randn(G, N, generator=g)
    nz = Bernoulli(1.0)
    data_of, seeds, taus, wds = [0, 1, 1], [11, 12, 13], [1.0, 2.0, 4.0], [1e-3, 0.0, 1e-2]
    net = StackedNoisyMLP([d, H, 1], [nz] * 3, seeds=seeds)
    fit_stacked(net, X, y, data_of=data_of, tau=taus, weight_decay=wds, epochs=4,
                batch_size=32, objective=objective, samples=samples, seeds=seeds,
                progress=False)
    for k in range(3):
        seq = _seq(nz, d, H, seeds[k])
        fit(seq, X[data_of[k]], y[data_of[k]], tau=taus[k], weight_decay=wds[k], epochs=4,
            batch_size=32, objective=objective, samples=samples, seed=seeds[k], progress=False)
        torch.testing.assert_close(net.weights[0][k], seq[1].weight.t(), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(net.weights[1][k], seq[4].weight.t(), atol=1e-5, rtol=1e-4)
        torch.testing.assert_close(net.biases[1][k, 0], seq[4].bias, atol=1e-5, rtol=1e-4)
        # and the model taken out alone predicts what the stack predicts
        x = X[data_of[k]][:7]
        torch.testing.assert_close(net.model(k).eval()(x), net(X[data_of][:, :7])[k])


def test_initialisation_is_nn_linear_after_manual_seed():
    net = StackedNoisyMLP([3, 4, 2], [Bernoulli(0.9)] * 2, seeds=[5, 9])
    for k, s in enumerate([5, 9]):
        torch.manual_seed(s)
        a, b = torch.nn.Linear(3, 4), torch.nn.Linear(4, 2)
        assert torch.equal(net.weights[0][k], a.weight.detach().t())
        assert torch.equal(net.biases[0][k, 0], a.bias.detach())
        assert torch.equal(net.weights[1][k], b.weight.detach().t())


def test_keras_initialisation_is_glorot_uniform_with_zero_biases():
    net = StackedNoisyMLP([3, 40, 2], [Bernoulli(0.9)] * 2, seeds=[5, 9], init="keras")
    for k, s in enumerate([5, 9]):
        torch.manual_seed(s)
        lins = [torch.nn.Linear(3, 40), torch.nn.Linear(40, 2)]
        for lin in lins:  # built first, then re-initialised in order (as the UCI runner does)
            torch.nn.init.xavier_uniform_(lin.weight)
        for i, lin in enumerate(lins):
            assert torch.equal(net.weights[i][k], lin.weight.detach().t())
            assert not net.biases[i].any()
    a = math.sqrt(6 / (3 + 40))  # Keras' glorot_uniform limit
    w = net.weights[0].detach()
    assert float(w.abs().max()) <= a and float(w.abs().max()) > 0.9 * a
    with pytest.raises(ValueError, match="init has to be one of torch, keras"):
        StackedNoisyMLP([3, 4, 1], [Bernoulli(0.9)], init="glorot")


@pytest.mark.parametrize("objective,fn", [("mc", mc_objective), ("marginal_map", marginal_map),
                                          ("tail_adaptive", tail_adaptive)])
def test_loss_is_the_library_objective_per_model(objective, fn):
    g = torch.Generator().manual_seed(1)
    K, S, B = 3, 4, 6
    out = torch.randn(K, S, B, 1, generator=g)
    y = torch.randn(K, B, generator=g)
    tau = torch.tensor([0.5, 1.0, 3.0])
    wd = torch.tensor([0.0, 0.1, 0.2])
    weights = [torch.randn(K, 2, 3, generator=g), torch.randn(K, 3, 1, generator=g)]
    got = stacked_loss(out, y, tau=tau, objective=objective, weight_decay=wd, weights=weights)
    for k in range(K):
        ll = gaussian_log_likelihood(out[k], y[k], float(tau[k]))  # (S, B)
        want = -fn(ll).mean() + 0.5 * wd[k] * sum(w[k].pow(2).sum() for w in weights)
        torch.testing.assert_close(got[k], want)


def test_each_model_draws_its_own_law():
    """One family with several laws, and several families: every model's noise has its law.

    Binomial tests on the zero fraction (Bernoulli) and KS tests against scipy (continuous), at
    alpha = 1e-3 each with fixed seeds: a correct implementation fails one of these 13 tests
    with probability about 1.3%; the seeds are fixed, so the outcome is reproducible."""
    n, d = 4000, 5
    keeps = [Bernoulli(0.95), Bernoulli(0.5)]
    net = StackedNoisyMLP([d, 2, 1], [keeps[0], keeps[0], keeps[1]],
                          generator=torch.Generator().manual_seed(2))
    xi = net.draw((n, d)).double()
    for k, keep in enumerate([0.95, 0.95, 0.5]):
        vals = set(np.unique(xi[k].numpy()).round(6))
        assert vals <= {0.0, round(1 / keep, 6)}
        zeros = int((xi[k] == 0).sum())
        assert stats.binomtest(zeros, n * d, 1 - keep).pvalue > ALPHA
    # the wrong rate is caught (power): 0.95 vs 0.94 at 20,000 draws
    assert stats.binomtest(int((xi[0] == 0).sum()), n * d, 0.06).pvalue < ALPHA

    gs = [Gaussian(1.0, 0.2), Gaussian(2.0, 1.0)]  # normalised: N(1, 0.2), N(1, 0.5)
    us = [Uniform(0.5, 1.5), Uniform(0.0, 1.0)]  # normalised: U(0.5, 1.5), U(0, 2)
    others = [Rayleigh(1.0), Beta(2.0, 3.0)]  # different families: drawn law by law
    checks = [(gs, [stats.norm(1, 0.2).cdf, stats.norm(1, 0.5).cdf]),
              (us, [stats.uniform(0.5, 1.0).cdf, stats.uniform(0.0, 2.0).cdf]),
              (others, [stats.rayleigh(scale=1 / math.sqrt(math.pi / 2)).cdf,
                        stats.beta(2, 3, scale=1 / 0.4).cdf])]
    for laws, cdfs in checks:
        net = StackedNoisyMLP([d, 2, 1], laws, generator=torch.Generator().manual_seed(3))
        xi = net.draw((n, d)).double()
        for k, cdf in enumerate(cdfs):
            assert stats.kstest(xi[k].reshape(-1).numpy(), cdf).pvalue > ALPHA, laws[k]
        # swapping the two laws is caught
        assert stats.kstest(xi[0].reshape(-1).numpy(), cdfs[1]).pvalue < ALPHA


def test_predictive_equals_the_library_on_the_model_alone():
    g = torch.Generator().manual_seed(4)
    G, n, d = 2, 30, 4
    X = torch.randn(G, n, d, generator=g)
    y = torch.randn(G, n, generator=g) * 3 + 1
    # noise off: exact
    net = StackedNoisyMLP([d, 8, 1], [Bernoulli(1.0)] * 2, seeds=[0, 1])
    r = stacked_predictive(net, X, y, 5, tau=[0.5, 2.0], y_mean=[1.0, 2.0], y_std=[3.0, 1.5])
    for k, (tau, ym, ys) in enumerate([(0.5, 1.0, 3.0), (2.0, 2.0, 1.5)]):
        want = predictive_log_likelihood(net.model(k), X[k], y[k], 5, tau=tau, y_mean=ym,
                                         y_std=ys)
        assert float(r["ll"][k]) == pytest.approx(want, rel=1e-5)
        pred = net.model(k).eval()(X[k]).reshape(-1) * ys + ym
        torch.testing.assert_close(r["mc_mean"][k].reshape(-1).float(), pred)
    # blocks of 7 rows (the last one partial) and one sample per block: the same numbers
    rb = stacked_predictive(net, X, y, 5, tau=[0.5, 2.0], y_mean=[1.0, 2.0], y_std=[3.0, 1.5],
                            max_elements=2 * 8 * 7)
    for key in ("ll", "ll_points", "mc_mean", "mean_pred"):
        torch.testing.assert_close(rb[key], r[key], rtol=1e-5, atol=1e-6)  # float rounding
    # with noise: two MC estimates of the same number (20,000 draws each, chunked here)
    net = StackedNoisyMLP([d, 8, 1], [Bernoulli(0.7)] * 2, seeds=[0, 1],
                          generator=torch.Generator().manual_seed(5))
    r = stacked_predictive(net, X, y, 20_000, tau=1.0, max_elements=50_000)
    for k in range(2):
        torch.manual_seed(6)
        want = predictive_log_likelihood(net.model(k), X[k], y[k], 20_000, tau=1.0)
        assert float(r["ll"][k]) == pytest.approx(want, abs=0.02)
    # a small drop rate (drawn by geometric gaps), in row blocks
    net = StackedNoisyMLP([d, 8, 1], [Bernoulli(0.95)] * 2, seeds=[0, 1],
                          generator=torch.Generator().manual_seed(7))
    r = stacked_predictive(net, X, y, 20_000, tau=1.0, max_elements=2 * 8 * 16)
    for k in range(2):
        torch.manual_seed(8)
        want = predictive_log_likelihood(net.model(k), X[k], y[k], 20_000, tau=1.0)
        assert float(r["ll"][k]) == pytest.approx(want, abs=0.02)


def test_several_precisions_are_scored_on_the_same_draws():
    """tau of shape (K, J): each column equals a separate call with the generator in the same
    state (the same draws), and the MC mean does not depend on tau."""
    g = torch.Generator().manual_seed(9)
    X, y = torch.randn(2, 25, 3, generator=g), torch.randn(2, 25, generator=g)
    net = StackedNoisyMLP([3, 6, 1], [Bernoulli(0.8), Gaussian(1.0, 0.3)], seeds=[0, 1])
    taus = torch.tensor([[0.5, 3.0, 1.0], [2.0, 0.2, 9.0]], dtype=torch.float64)
    both = stacked_predictive(net, X, y, 40, tau=taus, y_mean=[1.0, -1.0], y_std=[2.0, 0.5],
                              generator=torch.Generator().manual_seed(1), max_elements=300)
    assert both["ll"].shape == (2, 3) and both["ll_points"].shape == (2, 3, 25)
    for j in range(3):
        one = stacked_predictive(net, X, y, 40, tau=taus[:, j], y_mean=[1.0, -1.0],
                                 y_std=[2.0, 0.5], generator=torch.Generator().manual_seed(1),
                                 max_elements=300)
        torch.testing.assert_close(both["ll_points"][:, j], one["ll_points"])
        torch.testing.assert_close(both["mc_mean"], one["mc_mean"])
    with pytest.raises(ValueError, match="tau has to have one row per model"):
        stacked_predictive(net, X, y, 4, tau=torch.ones(3, 2))


def test_stacked_fitted_precision_is_the_library_fit_of_the_same_draws():
    """stacked_fit_tau == fit_predictive_precision of the squared errors of the same draws (one
    block: the draws are reproducible); in small row x sample blocks every error is filled
    (noise off: exact, 1 / mean e per model); with noise it agrees with fit_predictive_tau of
    the model taken out alone within Monte Carlo error."""
    g = torch.Generator().manual_seed(10)
    G, n, d = 2, 40, 3
    X, y = torch.randn(G, n, d, generator=g), torch.randn(G, n, generator=g) * 2
    net = StackedNoisyMLP([d, 8, 1], [Bernoulli(0.9), Uniform(0.5, 1.5)], seeds=[0, 1])
    ym, ys = [0.5, 1.0], [2.0, 3.0]
    got = stacked_fit_tau(net, X, y, 64, y_mean=ym, y_std=ys,
                          generator=torch.Generator().manual_seed(2), max_elements=1 << 30)
    net.generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        out = net.train()(X.repeat(1, 64, 1), noise=True).view(2, 64, n)
    net.generator = None
    yhat = out * torch.tensor(ys).view(2, 1, 1) + torch.tensor(ym).view(2, 1, 1)
    e = (y.unsqueeze(1) - yhat).pow(2).transpose(1, 2)  # (K, n, S)
    # float32 errors: the optimum is flat, so rounding moves it by ~1e-4 (a misplaced block
    # or draw moves it by far more)
    torch.testing.assert_close(got, fit_predictive_precision(e.float()), rtol=1e-3, atol=0)
    # row subsets (cross-fitting) are fitted from the same draws, each on its own rows
    even = torch.arange(n) % 2 == 0
    sub = stacked_fit_tau(net, X, y, 64, y_mean=ym, y_std=ys, rows=[even, torch.tensor([3, 5])],
                          generator=torch.Generator().manual_seed(2), max_elements=1 << 30)
    assert sub.shape == (2, 2)
    torch.testing.assert_close(sub[:, 0], fit_predictive_precision(e[:, even].float()),
                               rtol=1e-3, atol=0)
    torch.testing.assert_close(sub[:, 1], fit_predictive_precision(e[:, [3, 5]].float()),
                               rtol=1e-3, atol=0)
    with pytest.raises(ValueError, match=r"rows\[0\] has to select at least one of the 40"):
        stacked_fit_tau(net, X, y, 4, rows=[torch.tensor([40])])
    off = StackedNoisyMLP([d, 8, 1], [Bernoulli(1.0)] * 2, seeds=[0, 1])
    blocked = stacked_fit_tau(off, X, y, 7, max_elements=2 * 8 * 3)  # 3 rows x 1 draw blocks
    with torch.no_grad():
        e = (y - off.eval()(X)[..., 0]).pow(2).mean(-1)
    torch.testing.assert_close(blocked, 1 / e.double(), rtol=1e-5, atol=0)
    noisy = StackedNoisyMLP([d, 8, 1], [Bernoulli(0.7)] * 2, seeds=[0, 1],
                            generator=torch.Generator().manual_seed(3))
    Xb, yb = torch.randn(G, 400, d, generator=g), torch.randn(G, 400, generator=g)
    got = stacked_fit_tau(noisy, Xb, yb, 2000)
    for k in range(2):
        torch.manual_seed(4)
        want = fit_predictive_tau(noisy.model(k), Xb[k], yb[k], 2000)
        assert float(got[k]) == pytest.approx(want, rel=0.02)


def test_infinite_mean_noise_has_no_weight_scaling_prediction():
    net = StackedNoisyMLP([2, 3, 1], [HalfCauchy(1.0)] * 2, normalize=False)
    r = stacked_predictive(net, torch.randn(2, 5, 2), torch.randn(2, 5), 10, tau=1.0)
    assert torch.isfinite(r["ll"]).all() and torch.isnan(r["mean_pred"]).all()
    with pytest.raises(ValueError, match="normalised|normalized|mean"):
        StackedNoisyMLP([2, 3, 1], [HalfCauchy(1.0)])


def test_bad_input_is_named():
    nz = Bernoulli(0.9)
    with pytest.raises(ValueError, match="sizes"):
        StackedNoisyMLP([3], [nz])
    with pytest.raises(ValueError, match="seeds"):
        StackedNoisyMLP([3, 2, 1], [nz, nz], seeds=[1])
    with pytest.raises(ValueError, match="noises"):
        StackedNoisyMLP([3, 2, 1], [])
    net = StackedNoisyMLP([3, 2, 1], [nz, nz])
    with pytest.raises(ValueError, match=r"x has to have shape \(K=2"):
        net(torch.randn(3, 4, 3))
    X, y = torch.randn(2, 10, 3), torch.randn(2, 10)
    with pytest.raises(ValueError, match="tau"):
        fit_stacked(net, X, y, tau=[1.0, -1.0], epochs=1, progress=False)
    with pytest.raises(ValueError, match="tau"):
        fit_stacked(net, X, y, epochs=1, progress=False)
    with pytest.raises(ValueError, match="data_of"):
        fit_stacked(net, X, y, tau=1.0, data_of=[0, 2], epochs=1, progress=False)
    with pytest.raises(ValueError, match="weight_decay"):
        fit_stacked(net, X, y, tau=1.0, weight_decay=[1.0, 2.0, 3.0], epochs=1, progress=False)
    with pytest.raises(ValueError, match="epochs"):
        fit_stacked(net, X, y, tau=1.0, epochs=0, progress=False)
    with pytest.raises(ValueError, match="objective"):
        fit_stacked(net, X, y, tau=1.0, objective="elbo", epochs=1, progress=False)
    with pytest.raises(ValueError, match="tau"):  # never a NaN log-likelihood
        stacked_predictive(net, X, y, 3, tau=[1.0, 0.0])
