"""Closed-form priors against independent references (mpmath, scipy), gradients, validation."""

import math

import mpmath as mp
import numpy as np
import pytest
import scipy.special as sp
import torch
from scipy import integrate, stats
from torch.autograd import gradcheck

from shrinkdrop.priors import Horseshoe, Laplace, SpikeAndSlab, StudentT, VarianceGamma

mp.mp.dps = 50
D = torch.float64
W = np.concatenate([-np.logspace(-8, 8, 33), np.logspace(-8, 8, 33)])


def t(x):
    return torch.as_tensor(x, dtype=D)


# ------------------------------------------------------------------------- reference densities
def vg_logpdf_mp(w, b):
    return float(mp.log(mp.besselk(0, abs(mp.mpf(w)) / b) / (mp.pi * b)))


def hs_logpdf_mp(w, tau):
    u = mp.mpf(w) ** 2 / (2 * mp.mpf(tau) ** 2)
    return float(mp.log(mp.exp(u) * mp.e1(u) / (tau * mp.sqrt(2 * mp.pi**3))))


@pytest.mark.parametrize("b", [0.3, 1.0, 7.0])
def test_variance_gamma_log_prob_vs_mpmath(b):
    got = VarianceGamma(t(b)).log_prob(t(W)).numpy()
    ref = np.array([vg_logpdf_mp(w, b) for w in W])
    assert np.max(np.abs(got - ref)) < 1e-6  # 1e-6 relative in the density
    assert VarianceGamma(t(b)).log_prob(t(0.0)).item() == math.inf


@pytest.mark.parametrize("tau", [0.3, 1.0, 7.0])
def test_horseshoe_log_prob_vs_mpmath(tau):
    got = Horseshoe(t(tau)).log_prob(t(W)).numpy()
    ref = np.array([hs_logpdf_mp(w, tau) for w in W])
    assert np.max(np.abs(got - ref)) < 1e-6
    assert Horseshoe(t(tau)).log_prob(t(0.0)).item() == math.inf  # pole at 0
    # tails ~ 1/w^2 (p(w) w^2 -> tau / sqrt(2 pi^3) * 2 tau^2 ...): checked against mpmath above


def test_densities_integrate_to_one():
    for d in (VarianceGamma(t(1.3)), Horseshoe(t(0.7)), SpikeAndSlab(t(0.3), t(2.0))):
        def f(w, d=d):
            return math.exp(d.log_prob(t(w)).item())

        total = 2 * sum(integrate.quad(f, a, b, limit=200)[0]
                        for a, b in ((0, 1e-8), (1e-8, 1), (1, np.inf)))
        expected = 1.0 if not isinstance(d, SpikeAndSlab) else 0.3
        assert abs(total - expected) < 1e-7


def test_spike_and_slab_convention_and_cdf():
    keep, s0 = t(0.3), t(2.0)
    d = SpikeAndSlab(keep, s0)
    w = t([-3.0, -1e-3, 1e-3, 2.5])
    ref = math.log(0.3) + stats.norm(0, 2).logpdf(w)
    np.testing.assert_allclose(d.log_prob(w), ref, rtol=1e-13)
    at0 = math.log(0.7 + 0.3 * stats.norm(0, 2).pdf(0))
    assert abs(d.log_prob(t(0.0)).item() - at0) < 1e-13
    # keep = 1: exactly the Normal, also at 0
    one = SpikeAndSlab(t(1.0), s0)
    ww = t([-1.0, 0.0, 3.0])
    assert torch.equal(one.log_prob(ww), torch.distributions.Normal(t(0.0), s0).log_prob(ww))
    # jump of 1 - keep at 0
    c = d.cdf(t([-1e-12, 0.0, 1.0]))
    assert abs(c[1] - c[0] - 0.7) < 1e-12
    assert abs(c[2].item() - (0.7 + 0.3 * stats.norm(0, 2).cdf(1.0))) < 1e-13
    assert abs(d.variance.item() - 0.3 * 4.0) < 1e-15 and d.mean.item() == 0.0


def _vg_pdf(x, b):
    return sp.k0e(abs(x) / b) * math.exp(-abs(x) / b) / (math.pi * b)


def _hs_pdf(x, tau):
    u = x * x / (2 * tau * tau)
    g = sp.exp1(u) * math.exp(u) if u < 500 else (1 - 1 / u + 2 / u**2 - 6 / u**3) / u
    return g / (tau * math.sqrt(2 * math.pi**3))


@pytest.mark.parametrize("law,pdf", [(VarianceGamma, _vg_pdf), (Horseshoe, _hs_pdf)])
def test_cdf_vs_quad(law, pdf):
    b = 1.7
    d = law(t(b))
    ws = (-30.0, -2.0, -1e-3, 0.0, 0.5, 4.0, 50.0)
    got = d.cdf(t(ws)).numpy()
    for w, g in zip(ws, got):
        a = abs(w)
        tail = sum(integrate.quad(pdf, lo, hi, args=(b,), epsabs=1e-14, epsrel=1e-12,
                                  limit=200)[0]
                   for lo, hi in ((a, a + 1), (a + 1, a + 100), (a + 100, np.inf)))
        if w == 0:
            tail = 0.5
        expect = 1 - tail if w >= 0 else tail
        assert abs(g - expect) < 1e-6, w


def test_moments():
    assert VarianceGamma(t(2.0)).variance.item() == 4.0
    assert VarianceGamma(t(2.0)).mean.item() == 0.0
    hs = Horseshoe(t([1.0, 2.0]))
    assert torch.isinf(hs.variance).all()
    with pytest.raises(ValueError, match="no mean"):  # E|w| = inf: does not exist
        _ = hs.mean


def test_reexports_are_torch():
    assert Laplace is torch.distributions.Laplace
    assert StudentT is torch.distributions.StudentT


def test_gradients():
    w = t([-3.0, -0.2, 0.4, 5.0]).requires_grad_()
    for cls, p in ((VarianceGamma, 1.3), (Horseshoe, 0.8)):
        par = t(p).requires_grad_()
        assert gradcheck(lambda w, par, cls=cls: cls(par).log_prob(w), (w, par))
    keep, s0 = t(0.4).requires_grad_(), t(1.5).requires_grad_()
    assert gradcheck(lambda w, k, s: SpikeAndSlab(k, s).log_prob(w), (w, keep, s0))


def test_batching_and_expand():
    d = Horseshoe(t([[1.0], [2.0]]))
    assert d.batch_shape == (2, 1)
    e = d.expand((2, 3))
    assert e.batch_shape == (2, 3)
    assert e.log_prob(t(1.0)).shape == (2, 3)
    assert e.sample((5,)).shape == (5, 2, 3)
    assert SpikeAndSlab(t([0.2, 0.9]), t(1.0)).expand((4, 2)).sample().shape == (4, 2)
    vg = VarianceGamma(t(1.0), validate_args=True)
    with pytest.raises(ValueError):
        vg.log_prob(t(float("nan")))


@pytest.mark.parametrize("make,name", [
    (lambda: SpikeAndSlab(0.0, 1.0), "keep"),
    (lambda: SpikeAndSlab(1.5, 1.0), "keep"),
    (lambda: SpikeAndSlab(float("nan"), 1.0), "keep"),
    (lambda: SpikeAndSlab(0.5, -1.0), "sigma0"),
    (lambda: VarianceGamma(0.0), "scale"),
    (lambda: VarianceGamma(float("nan")), "scale"),
    (lambda: Horseshoe(-2.0), "tau"),
    (lambda: Horseshoe(float("inf")), "tau"),
])
def test_invalid_arguments(make, name):
    with pytest.raises(ValueError, match=name):
        make()


def test_speed(timed):
    w = torch.randn(10_000, dtype=D)
    for d in (VarianceGamma(t(1.0)), Horseshoe(t(1.0)), SpikeAndSlab(t(0.5), t(1.0))):
        assert timed(lambda d=d: d.log_prob(w)) < 1.0


def test_horseshoe_has_no_mean_and_never_nan():
    from shrinkdrop.priors import Horseshoe

    d = Horseshoe(torch.tensor(0.5, dtype=torch.float64))
    with pytest.raises(ValueError, match="no mean"):
        _ = d.mean
    assert d.variance.item() == float("inf")
