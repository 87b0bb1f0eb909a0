"""Linear spike-and-slab: closed forms vs numerical integration, Gibbs vs enumeration, the
Student-t predictive vs scipy, and the argument errors."""

from __future__ import annotations

import math
from itertools import product

import numpy as np
import pytest
from scipy import integrate, stats
from scipy.special import logsumexp

from shrinkdrop.inference import linear_spike_slab, log_marginal


def _data(n, p, beta, seed, rho=0.5):
    rng = np.random.default_rng(seed)
    cov = rho ** np.abs(np.subtract.outer(np.arange(p), np.arange(p)))
    X = rng.multivariate_normal(np.zeros(p), cov, size=n)
    y = X @ np.asarray(beta, dtype=float) + rng.standard_normal(n)
    return X, y


def _standardize(X, y):
    return (X - X.mean(0)) / X.std(0), y - y.mean()


def _quad_log_marginal(Z, yc, S, g):
    """log of int N(y; 0, s2 (I + g X_S X_S')) / s2 ds2, integrated over t = log s2."""
    n = len(yc)
    M = np.eye(n) + g * Z[:, S] @ Z[:, S].T

    def f(t):
        return stats.multivariate_normal(np.zeros(n), math.exp(t) * M).logpdf(yc)

    ts = np.linspace(-15, 15, 601)
    fmax = max(f(t) for t in ts)
    val, err = integrate.quad(lambda t: math.exp(f(t) - fmax), -40, 40, points=[0.0],
                              limit=200, epsabs=0, epsrel=1e-11)
    assert err < 1e-8 * val
    return fmax + math.log(val)


@pytest.mark.parametrize("g", [1.0, 3.0])
def test_log_marginal_matches_numerical_integration_over_s2(g):
    X, y = _data(8, 3, [1.0, 0.0, -0.5], seed=1)
    Z, yc = _standardize(X, y)
    ref = {S: _quad_log_marginal(Z, yc, list(S), g) for S in [(), (0,), (1, 2), (0, 1, 2)]}
    got = {S: log_marginal(Z, yc, list(S), g=g) for S in ref}
    for S in ref:
        assert got[S] == pytest.approx(ref[S], abs=1e-7)       # absolute, constant included
    for S in [(0,), (1, 2), (0, 1, 2)]:                        # differences of two models
        assert got[S] - got[()] == pytest.approx(ref[S] - ref[()], abs=1e-7)
    # a wrong g (or a dropped log-det / log g term) is far outside this tolerance
    assert abs(log_marginal(Z, yc, [0, 1, 2], g=2 * g) - ref[(0, 1, 2)]) > 1e-2


def test_enumeration_matches_integrated_posterior_of_all_models():
    X, y = _data(8, 3, [1.0, 0.3, -0.5], seed=2)
    Z, yc = _standardize(X, y)
    keep = 0.3
    logp, masks = [], []
    for m in product([0, 1], repeat=3):
        S = [r for r in range(3) if m[r]]
        logp.append(_quad_log_marginal(Z, yc, S, 1.0) + len(S) * math.log(keep)
                    + (3 - len(S)) * math.log(1 - keep))
        masks.append(m)
    w = np.exp(np.array(logp) - logsumexp(logp))
    ref = w @ np.array(masks, dtype=float)
    res = linear_spike_slab(X, y, keep=keep)
    assert res.method == "enumeration" and res.n_models == 8
    np.testing.assert_allclose(res.inclusion, ref, atol=1e-8)
    assert np.all(res.se == 0)


def test_gibbs_matches_enumeration_within_monte_carlo_error():
    """p = 8, correlated inputs, effects from strong to none. Tolerance: 4 batch-means standard
    errors per input (batch means with 19 degrees of freedom: P(|t_19| > 4) = 8e-4 per input,
    under 1% for the 8 together; the seed is fixed, so the test is deterministic)."""
    X, y = _data(60, 8, [0.8, 0.0, 0.2, 0.0, -0.15, 0.0, 0.1, 0.0], seed=3, rho=0.6)
    exact = linear_spike_slab(X, y)
    gibbs = linear_spike_slab(X, y, enumerate_max=0, sweeps=2000, warmup=300, chains=2, seed=0)
    assert exact.method == "enumeration" and gibbs.method == "collapsed Gibbs"
    assert np.sum((exact.inclusion > 0.1) & (exact.inclusion < 0.95)) >= 6   # not trivial
    assert gibbs.se.max() < 0.02
    tol = 4 * gibbs.se + 1e-6
    assert np.all(np.abs(gibbs.inclusion - exact.inclusion) <= tol), (
        gibbs.inclusion, exact.inclusion, gibbs.se)
    # the tolerance is tight enough to catch a wrong slab variance
    wrong = linear_spike_slab(X, y, g=3.0)
    assert np.any(np.abs(wrong.inclusion - exact.inclusion) > tol)
    Xte, yte = _data(20, 8, [0.8, 0.0, 0.2, 0.0, -0.15, 0.0, 0.1, 0.0], seed=4, rho=0.6)
    np.testing.assert_allclose(gibbs.predictive_logpdf(Xte, yte),
                               exact.predictive_logpdf(Xte, yte), rtol=0.01, atol=0.02)


def test_beta_hyperprior_enumeration_integrates_keep_out_and_gibbs_agrees():
    """keep ~ Beta(a, b): the enumerated inclusions equal the fixed-keep posteriors averaged
    over keep's posterior (integrating keep numerically: p(S | y) = int p(S | y, keep)
    p(keep | y) dkeep), and the Gibbs chain, whose prior odds depend on how many others are
    in, agrees within 4 batch-means SEs per input (as in the fixed-keep test)."""
    X, y = _data(60, 8, [0.8, 0.0, 0.2, 0.0, -0.15, 0.0, 0.1, 0.0], seed=3, rho=0.6)
    a, b = 1.0, 1.0
    Z, yc = _standardize(X, y)
    masks = np.array(list(product([0, 1], repeat=8)), dtype=bool)
    logml = np.array([log_marginal(Z, yc, list(np.flatnonzero(m))) for m in masks])
    k = masks.sum(1)

    def joint(t):   # p(y, keep) and p(y, keep) * E[gamma | y, keep] at keep = t
        lw = logml + k * math.log(t) + (8 - k) * math.log1p(-t)
        w = np.exp(lw - logml.max()) * stats.beta(a, b).pdf(t)
        return w.sum(), w @ masks

    Zy = integrate.quad(lambda t: joint(t)[0], 0, 1, limit=200, epsrel=1e-10)[0]
    ref = np.array([integrate.quad(lambda t, r=r: joint(t)[1][r], 0, 1, limit=200,
                                   epsrel=1e-10)[0] for r in range(8)]) / Zy
    exact = linear_spike_slab(X, y, inclusion_prior=(a, b))
    assert exact.method == "enumeration" and exact.inclusion_prior == (1.0, 1.0)
    np.testing.assert_allclose(exact.inclusion, ref, atol=1e-7)
    # not the fixed-keep answer at keep = E[keep] = 0.5
    assert np.abs(linear_spike_slab(X, y).inclusion - ref).max() > 0.02
    gibbs = linear_spike_slab(X, y, enumerate_max=0, sweeps=2000, warmup=300, chains=2, seed=0,
                              inclusion_prior=(a, b))
    tol = 4 * gibbs.se + 1e-6
    assert np.all(np.abs(gibbs.inclusion - exact.inclusion) <= tol), (
        gibbs.inclusion, exact.inclusion, gibbs.se)
    fixed = linear_spike_slab(X, y, enumerate_max=0, sweeps=2000, warmup=300, chains=2, seed=0)
    assert np.any(np.abs(fixed.inclusion - exact.inclusion) > tol)


def test_predictive_is_the_weighted_student_t_mixture():
    X, y = _data(12, 2, [0.8, 0.3], seed=5)
    Xte, yte = _data(5, 2, [0.8, 0.3], seed=6)
    mu, sd, ym = X.mean(0), X.std(0), y.mean()
    Z, yc = (X - mu) / sd, y - ym
    Zt = (Xte - mu) / sd
    n, g, keep = len(y), 2.0, 0.4
    logw, per_model = [], []
    for m in product([0, 1], repeat=2):
        S = [r for r in range(2) if m[r]]
        logw.append(_quad_log_marginal(Z, yc, S, g) + len(S) * math.log(keep)
                    + (2 - len(S)) * math.log(1 - keep))
        Ainv = np.linalg.inv(Z[:, S].T @ Z[:, S] + np.eye(len(S)) / g)
        bhat = Ainv @ Z[:, S].T @ yc
        rss = yc @ yc - yc @ Z[:, S] @ bhat
        loc = Zt[:, S] @ bhat
        scale = np.sqrt(rss / n * (1 + np.einsum("ti,ij,tj->t", Zt[:, S], Ainv, Zt[:, S])))
        per_model.append(stats.t(df=n, loc=loc + ym, scale=scale).logpdf(yte))
        if m == (1, 1):   # the Student-t itself: N(y*; loc, s2 c) mixed over s2 | y, S
            c = scale[0] ** 2 * n / rss

            def dens(t, loc=loc, rss=rss, c=c):
                s2 = math.exp(t)
                return (stats.norm(loc[0] + ym, math.sqrt(s2 * c)).pdf(yte[0])
                        * stats.invgamma(n / 2, scale=rss / 2).pdf(s2) * s2)

            val, _ = integrate.quad(dens, -20, 10, limit=200)
            assert math.log(val) == pytest.approx(per_model[-1][0], abs=1e-7)
    logw = np.array(logw) - logsumexp(logw)
    ref = logsumexp(np.array(per_model) + logw[:, None], axis=0)
    res = linear_spike_slab(X, y, keep=keep, g=g)
    np.testing.assert_allclose(res.predictive_logpdf(Xte, yte), ref, atol=1e-8)
    wrong = linear_spike_slab(X, y, keep=keep, g=1.0)
    assert np.abs(wrong.predictive_logpdf(Xte, yte) - ref).max() > 1e-3
    assert res.predictive_mean(Xte).shape == (5,)


def test_many_inputs_run_gibbs_and_find_the_signal():
    X, y = _data(200, 20, [1.0, -0.7, 0.5] + [0.0] * 17, seed=7, rho=0.3)
    res = linear_spike_slab(X, y, sweeps=300, warmup=100)
    assert res.method == "collapsed Gibbs" and res.n_models >= 1
    # noise inputs with |OLS t| up to 2.8 here: their mean inclusion, not each one, is small
    assert np.all(res.inclusion[:3] > 0.99) and res.inclusion[3:].mean() < 0.3
    assert np.all(np.isfinite(res.predictive_logpdf(X[:5], y[:5])))


X0, Y0 = _data(10, 3, [1.0, 0.0, 0.0], seed=0)


@pytest.mark.parametrize("kwargs, msg", [
    (dict(keep=1.5), "keep has to be in (0, 1), but got 1.5"),
    (dict(keep=0.0), "keep has to be in (0, 1)"),
    (dict(g=0.0), "g has to be a finite number > 0, but got 0.0"),
    (dict(g=float("inf")), "g has to be a finite number > 0"),
    (dict(sweeps=0), "sweeps has to be >= 1, but got 0"),
    (dict(warmup=-1), "warmup has to be >= 0"),
    (dict(chains=0), "chains has to be >= 1"),
    (dict(enumerate_max=21), "enumerate_max has to be <= 20"),
    (dict(X=X0[:, 0]), "X has to be 2-D"),
    (dict(y=Y0[:5]), "X and y have to have the same rows"),
    (dict(X=np.where(np.eye(10, 3) > 0, np.nan, X0)), "X has to be finite"),
    (dict(y=np.ones(10)), "y has to vary"),
    (dict(inclusion_prior=(1.0, 0.0)), "inclusion_prior has to be a pair (a, b) of finite"),
    (dict(inclusion_prior=0.5), "inclusion_prior has to be None or a pair (a, b)"),
])
def test_errors_name_the_argument(kwargs, msg):
    args = dict(X=X0, y=Y0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        linear_spike_slab(args.pop("X"), args.pop("y"), **args)


def test_predictive_errors():
    res = linear_spike_slab(X0, Y0)
    with pytest.raises(ValueError, match="Xte has to have 3 columns, but got 2"):
        res.predictive_logpdf(X0[:, :2], Y0)
    with pytest.raises(ValueError, match="Xte and yte have to have the same rows"):
        res.predictive_logpdf(X0, Y0[:3])
    with pytest.raises(TypeError, match="sweeps has to be an integer"):
        linear_spike_slab(X0, Y0, sweeps=2.5)
