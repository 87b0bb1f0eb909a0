"""Log-normal noise and the truncated log-uniform law (SBP's pair) against scipy.stats.

Randomized tests: fixed seeds, n = 20,000 draws, KS at alpha = 1e-3 (under fresh seeds each
would fail 0.1% of the time when the law is right); their power: the same test on a 5% wrong
scale rejects (test_ks_rejects_a_wrong_scale).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

import shrinkdrop.noise as N
from shrinkdrop import functional as F

ALPHA, NDRAWS = 1e-3, 20_000


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _pair(kind):
    if kind == "log_normal":
        return N.LogNormal(0.3, 0.6), stats.lognorm(s=0.6, scale=math.exp(0.3))
    return N.LogUniform(0.01, 3.0), stats.loguniform(0.01, 3.0)


KINDS = ["log_normal", "log_uniform"]


@pytest.mark.parametrize("kind", KINDS)
def test_density_and_cdf_against_scipy(kind):
    d, ref = _pair(kind)
    x = torch.tensor([0.02, 0.1, 0.5, 1.0, 1.7, 2.9])
    torch.testing.assert_close(d.log_prob(x), torch.tensor(ref.logpdf(x.numpy())), rtol=1e-10,
                               atol=1e-12)
    torch.testing.assert_close(d.cdf(x), torch.tensor(ref.cdf(x.numpy())), rtol=1e-10,
                               atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_moments_against_scipy_quadrature(kind):
    d, ref = _pair(kind)
    for got, f in [(d.mean, lambda x: x), (d.second_moment, lambda x: x**2),
                   (d.inverse_square_mean, lambda x: x**-2.0),
                   (d.log_abs_mean, np.log)]:
        want = ref.expect(f, epsrel=1e-11, limit=500)
        assert float(got) == pytest.approx(want, rel=1e-7)
    var_inv2 = ref.expect(lambda x: x**-4.0, epsrel=1e-11, limit=500) - float(
        d.inverse_square_mean) ** 2
    assert float(d.inverse_square_variance) == pytest.approx(var_inv2, rel=1e-6)
    assert float(d.variance) == pytest.approx(ref.var(), rel=1e-9)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("fast", [False, True], ids=["sample", "fast_draw"])
def test_draws_pass_ks(kind, fast):
    d, ref = _pair(kind)
    g = torch.Generator().manual_seed(7)
    if fast:
        x = F.draw_noise(d, (NDRAWS,), normalize=False, generator=g, dtype=torch.float64)
    else:
        x = d.sample((NDRAWS,), generator=g)
    assert stats.kstest(x.numpy(), ref.cdf).pvalue > ALPHA


def test_ks_rejects_a_wrong_scale():
    d = N.LogNormal(0.3, 0.6)
    x = d.sample((NDRAWS,), generator=torch.Generator().manual_seed(7)).numpy()
    assert stats.kstest(x, stats.lognorm(s=0.6 * 1.05, scale=math.exp(0.3)).cdf).pvalue < ALPHA


@pytest.mark.parametrize("kind", KINDS)
def test_normalized_fast_draw_has_mean_one(kind):
    d, _ = _pair(kind)
    x = F.draw_noise(d, (NDRAWS,), generator=torch.Generator().manual_seed(3),
                     dtype=torch.float64)
    sd = math.sqrt(float(d.variance)) / float(d.mean)
    assert abs(float(x.mean()) - 1.0) < 4 * sd / math.sqrt(NDRAWS)


@pytest.mark.parametrize("kind", KINDS)
def test_variance_prior_is_the_law_of_xi_squared(kind):
    d, ref = _pair(kind)
    v = d.variance_prior()
    y = torch.tensor([0.001, 0.05, 0.4, 1.3, 5.0])
    # P(xi^2 <= y) = P(xi <= sqrt y)
    torch.testing.assert_close(v.cdf(y), torch.tensor(ref.cdf(np.sqrt(y.numpy()))),
                               rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("kind", KINDS)
def test_marginal_prior_against_direct_integration(kind):
    d, ref = _pair(kind)
    prior = d.marginal_prior(0.7)
    lo, hi = ref.support()
    for w in (0.05, 0.4, 1.5):
        want, _ = integrate.quad(lambda x, w=w: stats.norm.pdf(w, 0, 0.7 * x) * ref.pdf(x), lo,
                                 min(hi, 200.0), limit=400, epsrel=1e-10,
                                 points=[float(d.mean)] if kind == "log_normal" else None)
        assert math.exp(float(prior.log_prob(torch.tensor(w)))) == pytest.approx(want, rel=1e-5)


def test_matched_to_dropout_closed_form():
    for rate in (0.05, 0.2, 0.5):
        law = N.LogNormal(**N.LogNormal.matched_to_dropout(rate))
        assert float(law.mean) == pytest.approx(1.0, rel=1e-12)
        assert float(law.variance) == pytest.approx(rate / (1 - rate), rel=1e-10)
    assert N.LogNormal.matched_to_dropout(0.0) is None


def test_the_improper_log_uniform_is_refused_with_its_reason():
    with pytest.raises(ValueError, match="improper"):
        N.LogUniform(1e-3, math.inf)
    with pytest.raises(ValueError, match="low"):
        N.LogUniform(0.0, 1.0)
    with pytest.raises(ValueError, match="low has to be < high"):
        N.LogUniform(2.0, 1.0)
    with pytest.raises(ValueError, match="scale"):
        N.LogNormal(0.0, -1.0)


@pytest.mark.parametrize("loc,scale", [(0.0, 0.5), (-3.0, 1.0), (-19.0, 2.0), (1.0, 0.2)])
def test_sbp_kl_against_scipy_truncnorm(loc, scale):
    low, high = math.exp(-20.0), math.exp(2.0)
    a, b = math.log(low), math.log(high)
    tn = stats.truncnorm((a - loc) / scale, (b - loc) / scale, loc=loc, scale=scale)
    want = math.log(b - a) - float(tn.entropy())
    got = N.kl_lognormal_log_uniform(torch.tensor(loc), torch.tensor(scale), low, high)
    assert float(got) == pytest.approx(want, rel=1e-8, abs=1e-10)


@pytest.mark.parametrize("loc,scale", [(12.0, 0.5), (40.0, 1.0), (-60.0, 0.3), (2.0, 1e-4),
                                       (-9.0, 50.0), (-9.0, 1e7), (3.0, 1e12)])
def test_sbp_kl_far_outside_the_interval_is_finite(loc, scale):
    """q far outside [log low, log high] (Z down to ~1e-900), or very narrow / very wide: the
    KL and its gradients are finite (a difference of CDFs near 1 cancelled to 0 before), and
    agree with mpmath's truncated-normal entropy at 50 digits."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    low, high = math.exp(-20.0), math.exp(2.0)
    a, b = math.log(low), math.log(high)
    al, be = (mpmath.mpf(a) - loc) / scale, (mpmath.mpf(b) - loc) / scale
    z = mpmath.ncdf(be) - mpmath.ncdf(al) if al + be < 0 else mpmath.ncdf(-al) - mpmath.ncdf(-be)
    ent = (mpmath.log(mpmath.sqrt(2 * mpmath.pi * mpmath.e) * scale * z)
           + (al * mpmath.npdf(al) - be * mpmath.npdf(be)) / (2 * z))
    want = float(mpmath.log(b - a) - ent)
    for dtype, rel, abs_ in ((torch.float64, 1e-6, 1e-9), (torch.float32, 1e-4, 1e-5)):
        # float32 too: an SBP fit's dtype
        lt = torch.tensor(loc, dtype=dtype, requires_grad=True)
        st = torch.tensor(scale, dtype=dtype, requires_grad=True)
        got = N.kl_lognormal_log_uniform(lt, st, low, high)
        assert got.dtype == dtype
        got.backward()
        assert math.isfinite(float(lt.grad)) and math.isfinite(float(st.grad))
        assert float(got.detach()) == pytest.approx(want, rel=rel, abs=abs_)


def test_pyro_forms_agree():
    pytest.importorskip("pyro")
    x = torch.tensor([0.05, 0.5, 2.0])
    for d in (N.LogNormal(0.3, 0.6), N.LogUniform(0.01, 3.0)):
        torch.testing.assert_close(d.pyro_law().log_prob(x), d.log_prob(x))
