"""Exact Bayesian variable selection in the linear spike-and-slab model (a reference posterior).

On standardized inputs (each column centred and scaled to unit variance on the training rows)
and a centred target (no intercept term beyond the centring)::

    y = X_S b_S + e,   e ~ N(0, s2 I),   b_S ~ N(0, g s2 I),   p(s2) ∝ 1 / s2,
    gamma_r ~ Bernoulli(keep) iid,        S = {r : gamma_r = 1}.

With ``inclusion_prior=(a, b)`` the rate is learnt instead, ``keep ~ Beta(a, b)``: integrated
out, a model of size ``k`` of ``p`` inputs has prior mass ``B(a + k, b + p - k) / B(a, b)`` (the
beta-binomial model prior; ``(1, 1)`` is Scott & Berger's 2010 multiplicity correction: every
model size equally likely a priori, so that adding candidate inputs makes each one less likely).

With ``b`` and ``s2`` integrated out (``A_S = X_S'X_S + I / g``,
``rss_S = y'y - y'X_S A_S^{-1} X_S'y``)::

    log p(y | S) = lgamma(n/2) - n/2 log(pi) - 1/2 log|A_S| - |S|/2 log g - n/2 log(rss_S).

For ``p <= enumerate_max`` inputs the posterior over all ``2^p`` models is summed exactly;
otherwise a collapsed single-site Gibbs sampler moves the indicators with this closed form
(``A_S^{-1}`` kept by block / rank-one updates, refreshed by a Cholesky solve every sweep).
Inclusion probabilities are Rao-Blackwellised (the average of each site's full conditional);
their Monte Carlo standard errors are batch means over all chains' sweeps (10 batches a chain).

Given ``S`` the posterior predictive of a new point is Student-t with ``n`` degrees of freedom,
location ``x_S' A_S^{-1} X_S'y`` and scale^2 ``(rss_S / n)(1 + x_S' A_S^{-1} x_S)``; the
predictive of the selection posterior mixes these densities with the models' posterior
weights (enumeration) or the sampled models' frequencies (Gibbs).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

import numpy as np
from numpy.typing import ArrayLike
from scipy.special import betaln, gammaln, logsumexp

from ..data import standardize

__all__ = ["LinearSSResult", "linear_spike_slab", "log_marginal"]

_BATCHES = 10  # batch means per chain for the Monte Carlo standard error
_PRUNE = 50.0  # models with log weight below max - _PRUNE are left out of the predictive


def _array(name: str, x: ArrayLike, ndim: int) -> np.ndarray:
    try:
        a = np.asarray(x.detach().cpu().numpy() if hasattr(x, "detach") else x, dtype=np.float64)
    except (TypeError, ValueError):
        raise TypeError(f"{name} has to be a numeric array, but got {type(x).__name__}") from None
    if a.ndim != ndim:
        raise ValueError(f"{name} has to be {ndim}-D, but got shape {a.shape}")
    if not np.isfinite(a).all():
        raise ValueError(f"{name} has to be finite, but contains NaN or inf")
    return a


def _int(name: str, v: object, low: int) -> int:
    if isinstance(v, bool) or not isinstance(v, (int, np.integer)):
        raise TypeError(f"{name} has to be an integer, but got {v!r}")
    if v < low:
        raise ValueError(f"{name} has to be >= {low}, but got {v}")
    return int(v)


def _check_g(g: object) -> float:
    if isinstance(g, bool) or not isinstance(g, (int, float, np.floating, np.integer)) \
            or not (math.isfinite(g) and g > 0):
        raise ValueError(f"g has to be a finite number > 0, but got {g!r}")
    return float(g)


def _check_beta(prior: object) -> tuple[float, float] | None:
    if prior is None:
        return None
    try:
        a, b = (float(v) for v in prior)  # type: ignore[union-attr]
    except (TypeError, ValueError):
        raise ValueError(f"inclusion_prior has to be None or a pair (a, b) of numbers > 0, but "
                         f"got {prior!r}") from None
    if not (math.isfinite(a) and math.isfinite(b) and a > 0 and b > 0):
        raise ValueError(f"inclusion_prior has to be a pair (a, b) of finite numbers > 0, but "
                         f"got {prior!r}")
    return a, b


def _const(n: int) -> float:
    return float(gammaln(n / 2) - n / 2 * math.log(math.pi))


def log_marginal(X: ArrayLike, y: ArrayLike, include: ArrayLike, *, g: float = 1.0) -> float:
    """``log p(y | S)`` of the model with the inputs ``include`` (b and s2 integrated out).

    Args:
        X: (n, p) array, used as given (:func:`linear_spike_slab` standardizes first).
        y: (n,) array, used as given (centre it first).
        include: indices or a boolean mask of length ``p``: the set ``S``.
        g: slab variance relative to the noise variance.
    """
    X, y, g = _array("X", X, 2), _array("y", y, 1), _check_g(g)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X and y have to have the same rows, but got {X.shape[0]} and "
                         f"{y.shape[0]}")
    inc = np.asarray(include)
    if inc.dtype == bool and inc.shape != (X.shape[1],):
        raise ValueError(f"include has to be a boolean mask of length p = {X.shape[1]} or "
                         f"indices, but got a mask of shape {inc.shape}")
    if inc.dtype != bool and inc.size and (inc.min() < -X.shape[1] or inc.max() >= X.shape[1]):
        raise ValueError(f"include has to hold indices in [0, {X.shape[1]}), but got "
                         f"{inc.tolist()}")
    idx = np.arange(X.shape[1])[inc] if inc.dtype == bool else inc.astype(int).reshape(-1)
    n, k = X.shape[0], idx.size
    Xs = X[:, idx]
    A = Xs.T @ Xs + np.eye(k) / g
    c = Xs.T @ y
    L = np.linalg.cholesky(A) if k else np.zeros((0, 0))
    z = np.linalg.solve(L, c) if k else np.zeros(0)
    rss = float(y @ y - z @ z)
    if not rss > 0:
        raise ValueError("y has to vary (its residual sum of squares is 0)")
    return (_const(n) - float(np.log(np.diag(L)).sum()) - k / 2 * math.log(g)
            - n / 2 * math.log(rss))


def _group_fit(G: np.ndarray, c: np.ndarray, yy: float, n: int, g: float, idx: np.ndarray
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Closed forms for a batch of models of one size: idx (m, k) -> logml, A^{-1}, bhat, rss."""
    m, k = idx.shape
    if k == 0:
        return (np.full(m, -n / 2 * math.log(yy)), np.zeros((m, 0, 0)), np.zeros((m, 0)),
                np.full(m, yy))
    A = G[idx[:, :, None], idx[:, None, :]] + np.eye(k) / g
    cs = c[idx]
    L = np.linalg.cholesky(A)
    Ainv = np.linalg.inv(A)
    bhat = np.einsum("mij,mj->mi", Ainv, cs)
    rss = yy - np.einsum("mi,mi->m", cs, bhat)
    logml = (-np.log(np.diagonal(L, axis1=1, axis2=2)).sum(1) - k / 2 * math.log(g)
             - n / 2 * np.log(rss))
    return logml, Ainv, bhat, rss


@dataclass
class LinearSSResult:
    """Posterior of the linear spike-and-slab model.

    Attributes:
        inclusion: (p,) posterior inclusion probability ``p(gamma_r = 1 | y)`` per input.
        se: (p,) Monte Carlo standard error of ``inclusion`` (zeros for enumeration).
        method: ``"enumeration"`` or ``"collapsed Gibbs"``.
        n_models: models summed (enumeration) or distinct models visited (Gibbs).
        seconds: wall time of the fit.
        keep, g: the prior inclusion probability and slab variance of the fit.
        inclusion_prior: ``(a, b)`` of the Beta hyperprior on ``keep`` (then ``keep`` is
            unused), or ``None``.
    """

    inclusion: np.ndarray
    se: np.ndarray
    method: str
    n_models: int
    seconds: float
    keep: float
    g: float
    _masks: np.ndarray = field(repr=False)      # (m, p) bool: models kept for the predictive
    _logw: np.ndarray = field(repr=False)       # (m,) normalized log weights
    _stats: dict[str, Any] = field(repr=False)            # G, c, yy, n, x mean / sd, y mean
    inclusion_prior: tuple[float, float] | None = None

    def _per_model(self, Xte: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
        s = self._stats
        Xte = _array("Xte", Xte, 2)
        if Xte.shape[1] != s["G"].shape[0]:
            raise ValueError(f"Xte has to have {s['G'].shape[0]} columns, but got "
                             f"{Xte.shape[1]}")
        Z = (Xte - s["x_mean"]) / s["x_sd"]
        sizes = self._masks.sum(1)
        loc = np.empty((len(sizes), Z.shape[0]))
        scale = np.empty_like(loc)
        for k in np.unique(sizes):
            rows = np.flatnonzero(sizes == k)
            idx = np.stack([np.flatnonzero(self._masks[r]) for r in rows]).reshape(len(rows), k)
            _, Ainv, bhat, rss = _group_fit(s["G"], s["c"], s["yy"], s["n"], self.g, idx)
            Zs = Z[:, idx].transpose(1, 0, 2)                       # (m, nte, k)
            loc[rows] = np.einsum("mtk,mk->mt", Zs, bhat)
            quad = np.einsum("mtk,mkl,mtl->mt", Zs, Ainv, Zs)
            scale[rows] = np.sqrt(rss[:, None] / s["n"] * (1 + quad))
        return loc, scale

    def predictive_logpdf(self, Xte: ArrayLike, yte: ArrayLike) -> np.ndarray:
        """Per-point log posterior predictive density of ``yte`` at ``Xte`` (target's units)."""
        from scipy.stats import t as student_t

        yte = _array("yte", yte, 1)
        loc, scale = self._per_model(Xte)
        if yte.shape[0] != loc.shape[1]:
            raise ValueError(f"Xte and yte have to have the same rows, but got {loc.shape[1]} "
                             f"and {yte.shape[0]}")
        lp = student_t.logpdf(yte - self._stats["y_mean"], self._stats["n"], loc, scale)
        return logsumexp(lp + self._logw[:, None], axis=0)

    def predictive_mean(self, Xte: ArrayLike) -> np.ndarray:
        """Posterior predictive mean at ``Xte`` (target's units)."""
        loc, _ = self._per_model(Xte)
        return np.exp(self._logw) @ loc + self._stats["y_mean"]


def _size_log_prior(p: int, keep: float, inclusion_prior: tuple[float, float] | None
                    ) -> np.ndarray:
    """(p + 1,) log prior mass of one model of each size ``k = 0..p`` (up to a constant)."""
    k = np.arange(p + 1, dtype=np.float64)
    if inclusion_prior is None:
        return k * math.log(keep) + (p - k) * math.log1p(-keep)
    a, b = inclusion_prior
    return betaln(a + k, b + p - k) - betaln(a, b)


def _enumerate(G: np.ndarray, c: np.ndarray, yy: float, n: int, g: float,
               size_prior: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    p = G.shape[0]
    masks, logp = [], []
    for k in range(p + 1):
        idx = np.array(list(combinations(range(p), k)), dtype=int).reshape(-1, k) if k \
            else np.zeros((1, 0), dtype=int)
        logml, *_ = _group_fit(G, c, yy, n, g, idx)
        mk = np.zeros((idx.shape[0], p), dtype=bool)
        np.put_along_axis(mk, idx, True, axis=1)
        masks.append(mk)
        logp.append(logml + size_prior[k])
    masks, logp = np.concatenate(masks), np.concatenate(logp)
    logw = logp - logsumexp(logp)
    return np.exp(logw) @ masks, masks, logw


def _chain(G: np.ndarray, c: np.ndarray, yy: float, n: int, g: float, size_prior: np.ndarray,
           sweeps: int, warmup: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One collapsed Gibbs chain: Rao-Blackwellised inclusion per kept sweep, and the models.
    ``size_prior``: :func:`_size_log_prior`; the prior log odds of an input given ``k`` others
    are ``size_prior[k + 1] - size_prior[k]``."""
    p = G.shape[0]
    d = np.diag(G) + 1.0 / g
    log_odds = np.diff(size_prior)                         # (p,), indexed by the others' size
    gamma = rng.random(p) < 1 / (1 + np.exp(-log_odds[p // 2]))
    probs = np.empty((sweeps, p))
    models = np.empty((sweeps, p), dtype=bool)
    half_log_g = 0.5 * math.log(g)
    for it in range(warmup + sweeps):
        S = list(np.flatnonzero(gamma))        # order of rows / columns of B and bhat
        if S:
            A = G[np.ix_(S, S)] + np.eye(len(S)) / g
            B = np.linalg.inv(A)
            bhat = B @ c[S]
        else:
            B, bhat = np.zeros((0, 0)), np.zeros(0)
        rss = yy - c[S] @ bhat
        u_draw = rng.random(p)
        for j in range(p):
            if gamma[j]:
                q = S.index(j)
                s = 1.0 / B[q, q]
                rss_in, rss_out = rss, rss + bhat[q] ** 2 * s
            else:
                a = G[S, j]
                Ba = B @ a
                s = d[j] - a @ Ba
                u = c[j] - a @ bhat
                rss_in, rss_out = rss - u * u / s, rss
            others = len(S) - int(gamma[j])
            logit = (log_odds[others] - 0.5 * math.log(s) - half_log_g
                     - n / 2 * math.log(rss_in / rss_out))
            pj = 1.0 / (1.0 + math.exp(-logit)) if logit > -700 else 0.0
            if it >= warmup:
                probs[it - warmup, j] = pj
            new = u_draw[j] < pj
            if new and not gamma[j]:           # add j: bordered inverse
                k = len(S)
                Bn = np.empty((k + 1, k + 1))
                Bn[:k, :k] = B + np.outer(Ba, Ba) / s
                Bn[:k, k] = Bn[k, :k] = -Ba / s
                Bn[k, k] = 1.0 / s
                bhat = np.append(bhat - Ba * (u / s), u / s)
                B, rss = Bn, rss_in
                S.append(j)
            elif not new and gamma[j]:         # remove j: downdate
                col = B[:, q]
                bq, Bqq = bhat[q], B[q, q]
                keep_ = np.arange(len(S)) != q
                B = (B - np.outer(col, col) / Bqq)[np.ix_(keep_, keep_)]
                bhat = (bhat - col * (bq / Bqq))[keep_]
                rss = rss_out
                S.pop(q)
            gamma[j] = new
        if it >= warmup:
            models[it - warmup] = gamma
    return probs, models


def linear_spike_slab(X: ArrayLike, y: ArrayLike, *, keep: float = 0.5, g: float = 1.0,
                      sweeps: int = 2000, warmup: int = 500, chains: int = 2, seed: int = 0,
                      enumerate_max: int = 14,
                      inclusion_prior: tuple[float, float] | None = None) -> LinearSSResult:
    """Posterior inclusion probabilities of the linear spike-and-slab model (module docstring).

    Args:
        X: (n, p) training inputs; standardized here on these rows (zero-variance columns kept
            at scale 1).
        y: (n,) training targets; centred here (no intercept term beyond the centring).
        keep: prior inclusion probability of each input, in (0, 1).
        g: slab variance relative to the noise variance, > 0.
        sweeps, warmup: kept and discarded Gibbs sweeps per chain (each updates every
            indicator).
        chains: Gibbs chains, chain ``c`` seeded with ``(seed, c)``.
        enumerate_max: sum all ``2^p`` models exactly when ``p <= enumerate_max`` (at most 20).
        inclusion_prior: ``(a, b)``: learn the inclusion rate, ``keep ~ Beta(a, b)``
            integrated out (``keep`` is then unused); ``None``: ``keep`` fixed.

    Returns:
        :class:`LinearSSResult`.
    """
    t0 = time.perf_counter()
    X, y = _array("X", X, 2), _array("y", y, 1)
    if X.shape[0] != y.shape[0]:
        raise ValueError(f"X and y have to have the same rows, but got {X.shape[0]} and "
                         f"{y.shape[0]}")
    if X.shape[0] < 2 or X.shape[1] < 1:
        raise ValueError(f"X has to have >= 2 rows and >= 1 column, but got shape {X.shape}")
    if isinstance(keep, bool) or not isinstance(keep, (int, float, np.floating)) \
            or not 0 < keep < 1:
        raise ValueError(f"keep has to be in (0, 1), but got {keep!r}")
    g = _check_g(g)
    inclusion_prior = _check_beta(inclusion_prior)
    sweeps, warmup, chains = _int("sweeps", sweeps, 1), _int("warmup", warmup, 0), _int(
        "chains", chains, 1)
    _int("seed", seed, 0)
    enumerate_max = _int("enumerate_max", enumerate_max, 0)
    if enumerate_max > 20:
        raise ValueError(f"enumerate_max has to be <= 20 (2^20 models), but got {enumerate_max}")
    n, p = X.shape
    x_mean, x_sd = standardize(X)
    Z = (X - x_mean) / x_sd
    y_mean = float(y.mean())
    yc = y - y_mean
    G, c, yy = Z.T @ Z, Z.T @ yc, float(yc @ yc)
    if not yy > 0:
        raise ValueError("y has to vary, but all its values are equal")
    size_prior = _size_log_prior(p, float(keep), inclusion_prior)
    stats = dict(G=G, c=c, yy=yy, n=n, x_mean=x_mean, x_sd=x_sd, y_mean=y_mean)
    if p <= enumerate_max:
        incl, masks, logw = _enumerate(G, c, yy, n, g, size_prior)
        se, method = np.zeros(p), "enumeration"
        n_models = masks.shape[0]
    else:
        probs, models = [], []
        for ch in range(chains):
            pr, mo = _chain(G, c, yy, n, g, size_prior, sweeps, warmup,
                            np.random.default_rng([seed, ch]))
            probs.append(pr)
            models.append(mo)
        incl = np.concatenate(probs).mean(0)
        nb = min(_BATCHES, sweeps)
        means = np.concatenate([[b.mean(0) for b in np.array_split(pr, nb)] for pr in probs])
        se = means.std(0, ddof=1) / math.sqrt(len(means)) if len(means) > 1 else \
            np.full(p, np.nan)
        masks, counts = np.unique(np.concatenate(models), axis=0, return_counts=True)
        logw = np.log(counts) - math.log(counts.sum())
        method, n_models = "collapsed Gibbs", masks.shape[0]
    kept = logw >= logw.max() - _PRUNE
    masks, logw = masks[kept], logw[kept] - logsumexp(logw[kept])
    return LinearSSResult(inclusion=incl, se=se, method=method, n_models=int(n_models),
                          seconds=time.perf_counter() - t0, keep=float(keep), g=g,
                          _masks=masks, _logw=logw, _stats=stats,
                          inclusion_prior=inclusion_prior)
