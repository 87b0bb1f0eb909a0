"""Jensen gaps of the expanded (EP) and hierarchical (HP) parametrizations (Sec. 4).

* ``J_EP = log E_xi p(y | W, xi) - E_xi log p(y | W, xi)``: noise in the likelihood.
* ``J_HP = log E_xi p(W | xi) - E_xi log p(W | xi)``: noise in the prior.

Estimators (pure functions over arrays shaped ``(S, ...)``, sample dimension first):

* Monte Carlo (:func:`jensen_gap_mc`): ``logmeanexp_s l_s - mean_s l_s`` summed over groups (the
  trailing dimensions: examples with per-example noise, weights with per-weight scales). Its
  standard error is by the delta method: the influence of draw ``s`` is
  ``psi_s = sum_g (exp(l_sg - m_g) / mean_s exp(l_sg - m_g) - l_sg)`` and
  ``se = sd_s(psi) / sqrt(S)``. The ``logmeanexp`` term is biased low by ``O(1/S)`` (so is the
  gap); where the truth is ``+inf`` the MC estimate is finite and grows with ``S``, which is why
  exact values are reported beside it.
* Exact: by enumeration for discrete noise (:func:`jensen_gap_enumerated`); per weight for the HP
  (:func:`hp_gap_exact`): ``J(w) = log p(w) + 0.5 log(2 pi sigma0^2) + E log|xi| +
  w^2 E[xi^-2] / (2 sigma0^2)`` with the marginal prior ``p(w)``; ``+inf`` when ``E[xi^-2]`` is.
* Series: the leading terms of Propositions 4.1 and 4.2 with gradients by autograd
  (:func:`ep_series`, :func:`hp_series`). ``order=1`` is ``0.5 Var[xi] ||grad_xi log p||^2`` (EP)
  and ``0.5 Var[xi^-2] (d/d lambda log p(w | lambda))^2`` per weight (HP); ``order=2`` adds the
  ``k = 2`` term ``-(0.5 Var Omega)^2 / 2`` (Omega, Psi as in the paper, variance-weighted per
  unit).

HP convention: the HP gap is the *sum over weights of the per-weight gap*, each weight with its
own scale (the factorised prior of Prop. 4.2, whose ``L D^2`` factor is this sum for equal
weights). With ARD-tied scales the row's gap is ``log E prod_j p(w_j | xi) - sum_j E log p(w_j |
xi)``, a different number; the per-weight convention is the one the proposition and the exact
formula share.

EP convention: the scales' sharing is set by the shapes of the scale tensors: ``(S, 1, D)``
(global scales, the paper's Eq. 6-9: one ``xi`` per unit for the whole data set, so the gap is
of the whole training set's log-likelihood) or ``(S, N, D)`` (per-example noise, as dropout
samples it: the gap is the sum of per-example gaps).
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.distributions import Distribution

from ._validation import check_choice, check_int, positive_float
from .noise import NoiseDistribution
from .train.likelihoods import LOG_2PI, gaussian_log_prob

__all__ = [
    "GapEstimate",
    "jensen_gap_mc",
    "jensen_gap_enumerated",
    "ep_gap",
    "ep_series",
    "hp_gap_exact",
    "hp_gap_mc",
    "hp_series",
    "input_scales",
    "scaled_log_likelihood",
    "noise_with_second_moment",
]


@dataclass(frozen=True)
class GapEstimate:
    """A Monte Carlo Jensen-gap estimate with its delta-method standard error."""

    value: float
    se: float
    samples: int

    def __iter__(self):
        return iter((self.value, self.se))


# ================================================================================== estimators
def _values(name: str, t: object) -> torch.Tensor:
    """``t`` as a float64 tensor without NaN (``-inf`` is a legal log value)."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} has to be a tensor, but got {type(t).__name__}")
    t = t.detach().to(torch.float64)
    if bool(torch.isnan(t).any()) or bool(torch.isposinf(t).any()):
        raise ValueError(f"{name} has to hold log values (no NaN, no +inf), but got "
                         f"{int((torch.isnan(t) | torch.isposinf(t)).sum())} such value(s)")
    return t


def jensen_gap_mc(log_values: torch.Tensor) -> GapEstimate:
    """``sum_g [logmeanexp_s l_sg - mean_s l_sg]`` with a delta-method standard error.

    Args:
        log_values: ``(S, *groups)``: ``S`` draws of ``log p`` for each group (an example, a
            weight, or nothing: shape ``(S,)``). Draws may be independent across groups or shared.

    Returns ``+inf`` (with ``se = inf``) when some draw is ``-inf`` (the ``E log p`` estimate is
    ``-inf``), also when every draw of a group is.
    """
    l = _values("log_values", log_values)
    if l.ndim == 0 or l.shape[0] < 2:
        raise ValueError(f"log_values has to have shape (S, ...) with S >= 2, but got shape "
                         f"{tuple(l.shape)}")
    S = l.shape[0]
    l = l.reshape(S, -1)
    m = l.max(0).values
    if torch.isneginf(l).any():  # the E log p term is -inf: the estimate is +inf
        return GapEstimate(math.inf, math.inf, S)
    a = torch.exp(l - m)
    abar = a.mean(0)
    log_mean = torch.log(abar) + m
    gap = float((log_mean - l.mean(0)).sum())
    psi = (a / abar - l).sum(1)
    se = float(psi.std(unbiased=True) / math.sqrt(S))
    return GapEstimate(gap, se, S)


def jensen_gap_enumerated(log_values: torch.Tensor, log_probs: torch.Tensor) -> float:
    """Exact gap over a finite support: ``logsumexp_k(l_k + log pi_k) - sum_k pi_k l_k``, summed
    over groups.

    Args:
        log_values: ``(K, *groups)``, ``log p`` at each of ``K`` configurations.
        log_probs: ``(K,)`` (or broadcastable) log-probabilities of the configurations.
    """
    l = _values("log_values", log_values)
    lp = _values("log_probs", log_probs)
    if l.ndim == 0 or lp.ndim == 0 or lp.ndim > l.ndim or lp.shape[0] != l.shape[0]:
        raise ValueError(f"log_probs has to have shape ({l.shape[0] if l.ndim else 'K'},) "
                         f"(one per configuration of log_values {tuple(l.shape)}), but got "
                         f"{tuple(lp.shape)}")
    lp = lp.reshape(lp.shape + (1,) * (l.ndim - lp.ndim))
    p = lp.exp()
    if torch.isneginf(l[(p > 0).expand_as(l)]).any():
        return math.inf
    first = torch.logsumexp(l + lp, 0)
    second = torch.where(p > 0, p * l, torch.zeros_like(l)).sum(0)
    return float((first - second).sum())


# ======================================================================================== EP
Scales = Sequence[torch.Tensor]


def _check_scales(scales: str) -> str:
    return check_choice("scales", scales, ("global", "per_example"))


def _check_layers(noises: Sequence, dims: Sequence[int]) -> None:
    if len(noises) != len(dims):
        raise ValueError(f"dims has to give one width per noise law ({len(noises)}), but got "
                         f"{len(dims)}")
    for nz in noises:
        _check_noise(nz)
    for d in dims:
        check_int("dims", d, 1)


def _check_noise(noise: object) -> None:
    if not isinstance(noise, NoiseDistribution):
        raise TypeError(f"noise has to be a shrinkdrop noise law (an instance such as "
                        f"shrinkdrop.noise.Bernoulli(0.8)), but got {noise!r}")


def _draw_scales(noises, dims, n, samples, scales, generator):
    rows = 1 if scales == "global" else n
    return [nz.sample((samples, rows, d), generator) for nz, d in zip(noises, dims)]


def ep_gap(
    log_lik_fn: Callable[[Scales], torch.Tensor],
    noises: Sequence,
    dims: Sequence[int],
    n: int,
    samples: int = 256,
    scales: str = "global",
    generator: torch.Generator | None = None,
    chunk: int = 64,
) -> GapEstimate:
    """Monte Carlo ``J_EP`` of the whole data set's log-likelihood.

    Args:
        log_lik_fn: ``xis -> (S, N)`` per-example log-likelihoods, ``xis`` one tensor per noisy
            layer of shape ``(S, N or 1, D_l)`` (see :func:`scaled_log_likelihood`).
        noises: the noise law of each noisy layer (unnormalised: the scales themselves).
        dims: ``D_l``, the number of scaled units of each layer.
        n: the number of examples.
        scales: ``'global'`` (one draw per unit for all examples; the gap of
            ``log p(y | X, W, xi)`` summed over examples inside the log) or ``'per_example'``.
        chunk: draws evaluated per batched pass.
    """
    scales = _check_scales(scales)
    check_int("samples", samples, 2)
    check_int("n", n, 1)
    check_int("chunk", chunk, 1)
    _check_layers(noises, dims)
    parts = []
    with torch.no_grad():
        for start in range(0, samples, chunk):
            k = min(chunk, samples - start)
            parts.append(log_lik_fn(_draw_scales(noises, dims, n, k, scales, generator)))
    ll = torch.cat(parts, 0)
    if scales == "global":
        return jensen_gap_mc(ll.sum(1))
    return jensen_gap_mc(ll)


def ep_series(
    log_lik_fn: Callable[[Scales], torch.Tensor],
    noises: Sequence,
    dims: Sequence[int],
    n: int,
    scales: str = "global",
    order: int = 1,
) -> float:
    """Proposition 4.1's series at ``xi = E[xi]``, gradients by autograd.

    ``order=1``: ``0.5 sum_u Var[xi_u] (d log p / d xi_u)^2``; ``order=2`` adds ``-x^2 / 2`` with
    ``x = 0.5 sum_u Var[xi_u] (g_u^2 + H_uu)`` (per example for per-example scales). Infinite when
    ``Var[xi]`` is.
    """
    scales = _check_scales(scales)
    if order not in (1, 2):
        raise ValueError(f"order has to be 1 or 2, but got {order!r}")
    var = [float(nz.variance) for nz in noises]
    if any(not math.isfinite(v) for v in var):
        return math.inf
    rows = 1 if scales == "global" else n
    xis = [
        torch.full((1, rows, d), float(nz.mean), dtype=torch.float64).requires_grad_(True)
        for nz, d in zip(noises, dims)
    ]
    ll = log_lik_fn(xis).sum()
    grads = torch.autograd.grad(ll, xis, create_graph=order == 2)
    lead = sum(0.5 * v * float(g.detach().pow(2).sum()) for v, g in zip(var, grads))
    if order == 1:
        return lead
    # per row (example or the single global row): x_r = 0.5 sum_u Var_u (g_ru^2 + H_ru,ru)
    x = torch.zeros(rows, dtype=torch.float64)
    for li, (v, g) in enumerate(zip(var, grads)):
        h_diag = torch.zeros_like(g)
        for d in range(g.shape[-1]):
            hd = torch.autograd.grad(g[..., d].sum(), xis[li], retain_graph=True)[0]
            h_diag[..., d] = hd[..., d]
        x = x + 0.5 * v * (g.detach().pow(2) + h_diag).sum(-1).reshape(-1)
    return lead - float((x**2).sum()) / 2


@contextlib.contextmanager
def input_scales(modules: Sequence[nn.Module], xis: Scales) -> Iterator[None]:
    """Multiply the input of each module by a scale tensor (forward pre-hooks), i.e. put the unit
    noise ``x * xi`` of ``UnitNoise(normalize=False)`` in front of it with given values."""
    if len(modules) != len(xis):
        raise ValueError(f"xis has to hold one scale tensor per module ({len(modules)}), but "
                         f"got {len(xis)}")
    handles = []
    try:
        for mod, xi in zip(modules, xis):
            def hook(_m, args, xi=xi):
                return (args[0] * xi.to(args[0].dtype),) + tuple(args[1:])

            handles.append(mod.register_forward_pre_hook(hook))
        yield
    finally:
        for h in handles:
            h.remove()


def scaled_log_likelihood(
    model: nn.Module,
    modules: Sequence[nn.Module],
    x: torch.Tensor,
    y: torch.Tensor,
    log_lik: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> Callable[[Scales], torch.Tensor]:
    """``xis -> (S, N)`` per-example log-likelihoods of ``model`` with the inputs of ``modules``
    scaled by ``xis`` (shapes ``(S, N or 1, D_l)``): one batched pass of ``S * N`` rows."""
    n = x.shape[0]

    def fn(xis: Scales) -> torch.Tensor:
        S = xis[0].shape[0]
        flat = [xi.expand(S, n, xi.shape[-1]).reshape(S * n, xi.shape[-1]) for xi in xis]
        xs = x.repeat(S, *([1] * (x.ndim - 1)))
        ys = y.repeat(S, *([1] * (y.ndim - 1)))
        with input_scales(modules, flat):
            out = model(xs)
        return log_lik(out, ys).reshape(S, n)

    return fn


# ======================================================================================== HP
def _c(c) -> float:
    if isinstance(c, bool) or not isinstance(c, (int, float, torch.Tensor)) or \
            not math.isfinite(float(c)) or float(c) == 0:
        raise ValueError(f"c has to be a finite non-zero number, but got {c!r}")
    return float(c)


def hp_gap_exact(weight: torch.Tensor, noise: NoiseDistribution, sigma0: float, c: float = 1.0,
                 marginal: Distribution | None = None) -> float:
    """Exact ``J_HP`` summed over weights, each with its own scale ``c * xi``.

    ``+inf`` when ``E[xi^-2]`` is infinite (for any non-zero weight: ``E log p(w | xi) = -inf``).
    ``marginal`` overrides the marginal prior (default ``noise.marginal_prior(sigma0 * c)``).
    """
    _check_noise(noise)
    s0 = positive_float("sigma0", sigma0)
    c = _c(c)
    w = weight.detach().to(torch.float64).reshape(-1)
    inv2 = float(noise.inverse_square_mean) / c**2
    if not math.isfinite(inv2):
        return math.inf
    if marginal is None:
        marginal = noise.marginal_prior(s0 * c)
    log_marg = marginal.log_prob(w.to(torch.get_default_dtype()))
    elog = float(noise.log_abs_mean) + math.log(abs(c))
    per = log_marg.to(torch.float64) + 0.5 * LOG_2PI + math.log(s0) + elog + (
        w**2 * inv2 / (2 * s0**2)
    )
    return float(per.sum())


def hp_gap_mc(
    weight: torch.Tensor,
    noise: NoiseDistribution,
    sigma0: float,
    samples: int = 1000,
    generator: torch.Generator | None = None,
    c: float = 1.0,
) -> GapEstimate:
    """Monte Carlo ``J_HP`` summed over weights, an independent scale per weight and draw."""
    _check_noise(noise)
    s0 = positive_float("sigma0", sigma0)
    check_int("samples", samples, 2)
    w = weight.detach().to(torch.float64).reshape(1, -1)
    xi = noise.sample((samples, w.shape[1]), generator).to(torch.float64)
    scale = (s0 * _c(c) * xi).abs()
    with torch.no_grad():
        lp = gaussian_log_prob(w, scale)
    lp = torch.nan_to_num(lp, nan=-math.inf)  # 0/0 only when w == 0 and xi == 0
    return jensen_gap_mc(lp)


def hp_series(weight: torch.Tensor, noise: NoiseDistribution, sigma0: float, order: int = 1,
              c: float = 1.0) -> float:
    """Proposition 4.2's series, per weight, summed: with precision ``lambda = (c xi)^-2``,
    ``0.5 Var[lambda] (d/d lambda log N(w; 0, sigma0^2 / lambda))^2`` at ``lambda = E[lambda]``
    (``order=2`` adds ``-(0.5 Var[lambda] Psi)^2 / 2``). Infinite when ``Var[xi^-2]`` is."""
    if order not in (1, 2):
        raise ValueError(f"order has to be 1 or 2, but got {order!r}")
    _check_noise(noise)
    c = _c(c)
    s0 = positive_float("sigma0", sigma0)
    mean = float(noise.inverse_square_mean) / c**2
    var = float(noise.inverse_square_variance) / c**4
    if not (math.isfinite(mean) and math.isfinite(var)):
        return math.inf
    w = weight.detach().to(torch.float64).reshape(-1)
    lam = torch.full_like(w, mean).requires_grad_(True)
    # log N(w; 0, s0^2 / lam), in the order of operations of the releases before issue 25
    lp = 0.5 * torch.log(lam) - 0.5 * LOG_2PI - math.log(s0) - 0.5 * lam * w**2 / s0**2
    (g,) = torch.autograd.grad(lp.sum(), lam, create_graph=order == 2)
    lead = 0.5 * var * g.detach().pow(2)
    if order == 1:
        return float(lead.sum())
    (h,) = torch.autograd.grad(g.sum(), lam)
    psi = g.detach().pow(2) + h
    return float((lead - (0.5 * var * psi) ** 2 / 2).sum())


# =================================================================================== the sweep
def noise_with_second_moment(family: str, second_moment: float,
                             **fixed: float) -> NoiseDistribution:
    """A member of ``family`` with ``E[xi^2] = second_moment`` (for sweeps of shrinkage).

    =================  =============================================  =====================
    family             parameter solved for                           fixed (default)
    =================  =============================================  =====================
    bernoulli          keep = m2 (m2 <= 1)                            -
    gaussian           std = sqrt(m2 - mean^2)                        mean (0)
    rayleigh           scale = sqrt(m2 / 2)                           -
    inverse_nakagami   scale = sqrt(m2 (df - 2) / df)                 df (5)
    half_cauchy        scale = sqrt(m2): E[xi^2] is inf, ``m2`` is    -
                       read as scale^2
    beta               b from (a+b)(a+b+1) = a (a+1) / m2 (m2 < 1)    a (5)
    uniform            high = sqrt(3 m2), low = 0                     low (0; only 0)
    =================  =============================================  =====================
    """
    from . import noise as _noise

    m2 = float(second_moment)
    if not (m2 > 0 and math.isfinite(m2)):
        raise ValueError(f"second_moment has to be positive and finite, but got {second_moment}")
    family = check_choice("family", family, tuple(_noise.FAMILIES))
    if family == "bernoulli":
        return _noise.Bernoulli(m2)
    if family == "gaussian":
        mean = float(fixed.get("mean", 0.0))
        if m2 <= mean**2:
            raise ValueError(f"second_moment has to exceed mean^2 = {mean**2}, but got {m2}")
        return _noise.Gaussian(mean, math.sqrt(m2 - mean**2))
    if family == "rayleigh":
        return _noise.Rayleigh(math.sqrt(m2 / 2))
    if family == "inverse_nakagami":
        df = float(fixed.get("df", 5.0))
        return _noise.InverseNakagami(df, math.sqrt(m2 * (df - 2) / df))
    if family == "half_cauchy":
        return _noise.HalfCauchy(math.sqrt(m2))
    if family == "beta":
        a = float(fixed.get("a", 5.0))
        t = (-1 + math.sqrt(1 + 4 * a * (a + 1) / m2)) / 2
        if t <= a:
            raise ValueError(f"Beta(a={a}, b) has E[xi^2] < 1, but got second_moment={m2}")
        return _noise.Beta(a, t - a)
    # uniform
    if float(fixed.get("low", 0.0)) != 0.0:
        raise ValueError("noise_with_second_moment supports Uniform(0, high) only")
    return _noise.Uniform(0.0, math.sqrt(3 * m2))
