"""Samples against the law: Kolmogorov-Smirnov tests of 20,000 draws with the law's own cdf.

Calibration: each KS test is at alpha = 1e-3 with a fixed ``torch.Generator`` seed, so with the
seed fixed the outcome is deterministic; under a fresh seed a correct sampler would fail each
test 0.1% of the time. Every law also has a test that a sample drawn at 1.1x the scale IS
rejected (power check: with n = 20,000 the KS statistic of a 10% scale error is ~0.02-0.04, far
above the alpha = 1e-3 critical value ~0.014), so these tests can fail.
"""

import math

import pytest
import torch
from scipy import stats

from shrinkdrop.priors import GaussianScaleMixture, Horseshoe, SpikeAndSlab, VarianceGamma

D = torch.float64
N = 20_000
ALPHA = 1e-3


def t(x):
    return torch.as_tensor(x, dtype=D)


def gauss_mixture(scale=1.0):
    m, s = 1.0, 0.5

    def lp(x):
        a = -0.5 * ((x - m) / s) ** 2
        b = -0.5 * ((x + m) / s) ** 2
        return torch.logaddexp(a, b) - math.log(s) - 0.5 * math.log(2 * math.pi)

    def sampler(shape, generator=None):
        return m + s * torch.randn(shape, generator=generator, dtype=D)

    return GaussianScaleMixture(lp, t(scale), 0.0, m + 40 * s, sampler=sampler)


def uniform_mixture(scale=1.0):
    def lp(x):
        inside = ((x >= -1) & (x <= 3)).to(x.dtype) + ((-x >= -1) & (-x <= 3)).to(x.dtype)
        return torch.log(inside) - math.log(4.0)

    def sampler(shape, generator=None):
        return torch.rand(shape, generator=generator, dtype=D) * 4 - 1

    return GaussianScaleMixture(lp, t(scale), 0.0, 3.0, (1.0,), sampler=sampler)


LAWS = {
    "spike_and_slab": lambda c: SpikeAndSlab(t(0.3), t(2.0 * c)),
    "variance_gamma": lambda c: VarianceGamma(t(1.5 * c)),
    "horseshoe": lambda c: Horseshoe(t(0.7 * c)),
    "gsm_gauss": gauss_mixture,
    "gsm_uniform": uniform_mixture,
}


def ks_pvalue(law, sample):
    """KS p-value; for the spike-and-slab (an atom at 0, where KS does not apply) the smaller of
    a KS test of the nonzero draws against the slab N(0, sigma0^2) and a binomial test of the
    number of zeros (Bonferroni: both at alpha / 2)."""
    x = sample.numpy()
    if isinstance(law, SpikeAndSlab):
        keep, s0 = law.keep.item(), law.sigma0.item()
        nonzero = x[x != 0]
        p_slab = stats.kstest(nonzero, stats.norm(0, s0).cdf).pvalue
        p_atom = stats.binomtest(int((x == 0).sum()), len(x), 1 - keep).pvalue
        return 2 * min(p_slab, p_atom)

    def cdf(v):
        return law.cdf(t(v)).numpy()

    return stats.kstest(x, cdf).pvalue


@pytest.mark.parametrize("name", list(LAWS))
def test_samples_follow_the_law(name):
    law = LAWS[name](1.0)
    g = torch.Generator().manual_seed(20240611)
    x = law.sample((N,), generator=g)
    assert x.shape == (N,) and x.dtype == D
    assert ks_pvalue(law, x) > ALPHA
    # same generator seed -> same draws
    assert torch.equal(x, law.sample((N,), generator=torch.Generator().manual_seed(20240611)))


@pytest.mark.parametrize("name", list(LAWS))
def test_wrong_scale_is_rejected(name):
    g = torch.Generator().manual_seed(7)
    x = LAWS[name](1.1).sample((N,), generator=g)
    assert ks_pvalue(LAWS[name](1.0), x) < ALPHA
