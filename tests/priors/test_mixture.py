"""GaussianScaleMixture against scipy quadrature of the same integral, and self-checks against
the closed forms (Rayleigh -> Laplace, half-Cauchy -> Horseshoe, |N(0, s)| -> VarianceGamma)."""

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats
from torch.autograd import gradcheck

from shrinkdrop.priors import GaussianScaleMixture, Horseshoe, Laplace, VarianceGamma

D = torch.float64
LOG_SQRT_2PI = 0.5 * math.log(2 * math.pi)


def t(x):
    return torch.as_tensor(x, dtype=D)


def folded_gauss(m, s):
    def lp(x):
        a = -0.5 * ((x - m) / s) ** 2
        b = -0.5 * ((x + m) / s) ** 2
        return torch.logaddexp(a, b) - math.log(s) - LOG_SQRT_2PI

    return lp, lambda x: stats.norm.pdf(x, m, s) + stats.norm.pdf(-x, m, s), 0.0, m + 40 * s, ()


def beta(a, b):
    def lp(x):
        return torch.distributions.Beta(t(a), t(b), validate_args=False).log_prob(x)

    return lp, lambda x: stats.beta.pdf(x, a, b), 0.0, 1.0, ()


def uniform(lo, hi):
    """|xi| for xi ~ U(lo, hi), lo < hi, possibly straddling 0."""
    alo, ahi = (0.0, max(-lo, hi)) if lo < 0 else (lo, hi)
    brk = (min(-lo, hi),) if lo < 0 else ()

    def pdf(x):
        return ((lo <= x <= hi) + (lo <= -x <= hi)) / (hi - lo)

    def lp(x):
        inside = ((x >= lo) & (x <= hi)).to(x.dtype) + ((-x >= lo) & (-x <= hi)).to(x.dtype)
        return torch.log(inside) - math.log(hi - lo)

    return lp, pdf, alo, ahi, brk


CASES = {
    "gauss(1,.5)": folded_gauss(1.0, 0.5),
    "beta(.5,2)": beta(0.5, 2.0),
    "beta(3,3)": beta(3.0, 3.0),
    "unif(0,2)": uniform(0.0, 2.0),
    "unif(-1,3)": uniform(-1.0, 3.0),
}


def ref_pdf(w, pdf, lower, upper, brk, s0):
    """scipy quad of the same integral, in t = log x, split at the cut-off and breakpoints."""

    def f(tt):
        x = math.exp(tt)
        return stats.norm.pdf(w, 0, s0 * x) * pdf(x) * x

    loc = math.log(w / s0)
    lo = max(math.log(lower) if lower > 0 else -800.0, loc - 4)
    hi = math.log(upper)
    pts = sorted({p for p in [math.log(b) for b in brk] + [loc - 1, loc, loc + 1, loc + 3, 0.0]
                  if lo < p < hi})
    edges = [lo, *pts, hi]
    return sum(integrate.quad(f, a, b, limit=200, epsabs=0, epsrel=1e-11)[0]
               for a, b in zip(edges[:-1], edges[1:]))


@pytest.mark.parametrize("case", list(CASES))
def test_log_prob_vs_scipy_quad(case):
    lp, pdf, lower, upper, brk = CASES[case]
    s0 = 0.8
    d = GaussianScaleMixture(lp, s0, lower, upper, brk)
    ws = np.concatenate([np.logspace(-8, 1.7, 40)])
    got = d.log_prob(t(ws)).exp().numpy()
    ref = np.array([ref_pdf(w, pdf, lower, upper, brk, s0) for w in ws])
    keep = ref > 1e-12
    assert keep.sum() > 20
    rel = np.abs(got[keep] - ref[keep]) / ref[keep]
    assert rel.max() < 1e-4, (case, rel.max(), ws[keep][rel.argmax()])
    assert torch.equal(d.log_prob(t(-ws)), d.log_prob(t(ws)))


@pytest.mark.parametrize("case", list(CASES))
def test_integrates_to_one_and_cdf(case):
    lp, pdf, lower, upper, brk = CASES[case]
    d = GaussianScaleMixture(lp, 1.0, lower, upper, brk)
    # int_0^inf p(w) dw = int p(e^u) e^u du: Simpson on a fine grid in u = log w (one call)
    u = np.linspace(-40.0, math.log(60.0), 6001)
    f = np.exp(d.log_prob(t(np.exp(u))).numpy() + u)
    total = 2 * integrate.simpson(f, x=u)
    assert abs(total - 1) < 1e-6
    assert d.cdf(t(0.0)).item() == 0.5
    u2 = np.linspace(-40.0, math.log(1.5), 6001)
    part = integrate.simpson(np.exp(d.log_prob(t(np.exp(u2))).numpy() + u2), x=u2)
    c = d.cdf(t([1.5, -1.5])).numpy()
    assert abs(c[0] - 0.5 - part) < 1e-5
    assert abs(c[1] - 0.5 + part) < 1e-5


def test_pole_at_zero():
    lp, _, lo, up, brk = CASES["gauss(1,.5)"]
    assert GaussianScaleMixture(lp, 1.0, lo, up, brk).log_prob(t(0.0)).item() == math.inf
    lp, _, lo, up, brk = CASES["beta(3,3)"]
    assert math.isfinite(GaussianScaleMixture(lp, 1.0, lo, up, brk).log_prob(t(0.0)).item())


W = t(np.concatenate([-np.logspace(-8, 3, 23), np.logspace(-8, 3, 23)]))


def test_rayleigh_reproduces_laplace():
    s = 0.7
    d = GaussianScaleMixture(lambda x: torch.log(x / s**2) - 0.5 * (x / s) ** 2, 1.3, 0, math.inf)
    lap = Laplace(t(0.0), t(1.3 * s))
    ref = lap.log_prob(W)
    keep = ref > math.log(1e-12)
    rel = (d.log_prob(W) - ref)[keep].abs().max().item()
    assert rel < 1e-4
    np.testing.assert_allclose(d.cdf(W[keep]), lap.cdf(W[keep]), rtol=0, atol=1e-6)


def test_half_cauchy_reproduces_horseshoe():
    d = GaussianScaleMixture(lambda x: math.log(2 / math.pi) - torch.log1p(x * x), 0.6, 0, math.inf)
    ref = Horseshoe(t(0.6)).log_prob(W)
    assert (d.log_prob(W) - ref).abs().max().item() < 1e-4


def test_half_normal_reproduces_variance_gamma():
    s = 2.0
    d = GaussianScaleMixture(
        lambda x: math.log(2) - LOG_SQRT_2PI - math.log(s) - 0.5 * (x / s) ** 2, 0.5, 0, math.inf,
        second_moment=s**2,
    )
    vg = VarianceGamma(t(1.0))
    ref = vg.log_prob(W)
    keep = ref > math.log(1e-12)
    assert (d.log_prob(W) - ref)[keep].abs().max().item() < 1e-4
    assert abs(d.variance.item() - 1.0) < 1e-15


def test_gradients_wrt_w_and_captured_parameters():
    m = t(1.0).requires_grad_()
    s = t(0.5).requires_grad_()
    s0 = t(0.9).requires_grad_()
    w = t([-2.0, -0.3, 0.05, 1.0, 4.0]).requires_grad_()

    def f(w, m, s, s0):
        def lp(x):
            a = -0.5 * ((x - m) / s) ** 2
            b = -0.5 * ((x + m) / s) ** 2
            return torch.logaddexp(a, b) - torch.log(s) - LOG_SQRT_2PI

        return GaussianScaleMixture(lp, s0, 0.0, 21.0).log_prob(w)

    assert gradcheck(f, (w, m, s, s0), atol=1e-6, rtol=1e-4)


def test_moments_and_sampling_interface():
    lp, _, lo, up, brk = CASES["unif(-1,3)"]
    d = GaussianScaleMixture(lp, 2.0, lo, up, brk,
                             sampler=lambda shape, g=None: torch.rand(shape, generator=g,
                                                                      dtype=D) * 4 - 1)
    # E[xi^2] = (3^3 + 1) / (3 * 4) = 7/3 by quadrature (no second_moment given)
    assert abs(d.variance.item() / (4.0 * 7 / 3) - 1) < 1e-6
    assert d.mean.item() == 0.0
    g = torch.Generator().manual_seed(0)
    assert d.sample((7,), generator=g).shape == (7,)
    with pytest.raises(NotImplementedError):
        GaussianScaleMixture(lp, 1.0, lo, up, brk).sample()


@pytest.mark.parametrize("kwargs,name", [
    (dict(sigma0=0.0), "sigma0"),
    (dict(sigma0=float("nan")), "sigma0"),
    (dict(lower=-1.0), "lower"),
    (dict(upper=-1.0), "upper"),
    (dict(lower=2.0, upper=1.0), "upper"),
    (dict(breakpoints=(5.0,)), "breakpoints"),
    (dict(second_moment=-1.0), "second_moment"),
])
def test_invalid_arguments(kwargs, name):
    args = dict(sigma0=1.0, lower=0.0, upper=3.0)
    args.update(kwargs)
    with pytest.raises(ValueError, match=name):
        GaussianScaleMixture(CASES["unif(-1,3)"][0], **args)


@pytest.mark.parametrize("case", ["gauss(1,.5)", "unif(-1,3)"])
def test_speed(timed, case):
    lp, _, lo, up, brk = CASES[case]
    d = GaussianScaleMixture(lp, 1.0, lo, up, brk)
    w = torch.randn(10_000, dtype=D)
    # a guard against a pathological slowdown (e.g. the quadrature falling back to a per-point
    # loop, 100x), not a benchmark: 0.5-1.0 s of one core's CPU time on the machines of
    # 2026-11, 1.2-1.5 s on the shared 2-core machine of 2026-12-06 for the same code
    assert timed(lambda: d.log_prob(w)) < 5.0
