"""The table sampler of the Beta / inverse-Nakagami layer noise (shrinkdrop.sampling.rwt)
against scipy.

Each case: one fixed seed, n = 50,000 float64 draws through ``draw_noise`` (the layers' path),
Kolmogorov-Smirnov against scipy's law, reject at 1e-3 (under fresh seeds a correct sampler fails
each case 0.1% of the time). Power: the same test rejects a 3% wrong parameter.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats

import shrinkdrop.functional as F
import shrinkdrop.noise as N
from shrinkdrop.sampling import rwt as _rwt

CASES = [
    (N.Beta(2.0, 2.0), stats.beta(2.0, 2.0)),
    (N.Beta(0.3, 0.5), stats.beta(0.3, 0.5)),
    (N.Beta(0.5, 3.0), stats.beta(0.5, 3.0)),
    (N.Beta(5.5, 2.0), stats.beta(5.5, 2.0)),
    (N.Beta(50.0, 80.0), stats.beta(50.0, 80.0)),
    (N.InverseNakagami(2.1, 1.0), stats.invgamma(1.05, scale=2.1 / 2)),
    (N.InverseNakagami(5.0, 0.8), stats.invgamma(2.5, scale=5 * 0.64 / 2)),
    (N.InverseNakagami(0.5, 1.0), stats.invgamma(0.25, scale=0.25)),
    (N.InverseNakagami(200.0, 1.0), stats.invgamma(100.0, scale=100.0)),
]


def _draw(fam, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    return F.draw_noise(fam, (50_000,), normalize=False, generator=g, dtype=dtype).double()


@pytest.mark.parametrize("i", range(len(CASES)))
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_table_sampler_follows_law(i, dtype):
    fam, ref = CASES[i]
    x = _draw(fam, 100 + i, dtype).numpy()
    y = x**2 if isinstance(fam, N.InverseNakagami) else x
    assert stats.kstest(y, ref.cdf).pvalue > 1e-3


@pytest.mark.parametrize("fam,wrong", [(N.Beta(2.0, 2.0), stats.beta(2.0 * 1.03, 2.0)),
                                        (N.InverseNakagami(5.0, 0.8),
                                         stats.invgamma(2.5, scale=5 * 0.64 / 2 * 1.03))])
def test_table_sampler_test_has_power(fam, wrong):
    y = _draw(fam, 7).numpy()
    y = y**2 if isinstance(fam, N.InverseNakagami) else y
    assert stats.kstest(y, wrong.cdf).pvalue < 1e-3


def test_table_masses_are_exact():
    """Rectangles have probability n_rect / K; the remainder's envelope holds its mass."""
    for tab in (_rwt.table("beta", 0.3, 0.5), _rwt.table("inv_sqrt_gamma", 2.5)):
        assert 0 < tab.n_rect <= _rwt.K
        assert bool(((tab.rect_h * tab.width - 1.0 / _rwt.K).abs() < 1e-15).all())
        assert float(tab.cum[-1]) >= tab.remainder_mass


def test_alias_table_is_the_discrete_law_exactly():
    """Exact enumeration: piece j's probability under the alias table, (threshold_j + the
    thresholds' complements of the rows aliased to j) / P, is mass_j / total (to float
    rounding), for the remainder pieces of two tables and a skewed law with zero masses."""
    laws = [torch.tensor([0.0, 3.0, 1e-9, 0.5, 0.0, 7.25, 1.0])]
    for tab in (_rwt.table("beta", 0.3, 0.5), _rwt.table("inv_sqrt_gamma", 2.5)):
        laws.append(torch.diff(tab.cum, prepend=tab.cum.new_zeros(1)))
    for masses in laws:
        t = _rwt._alias(masses)
        P = masses.numel()
        prob = t[:, 0].clone()
        prob.index_add_(0, t[:, 1].long(), 1.0 - t[:, 0])
        want = masses.double() / masses.double().sum()
        assert torch.allclose(prob / P, want, rtol=0, atol=1e-14)
        assert bool((prob[masses == 0] == 0).all())  # a zero mass is never drawn


def _remainder_py(tab, m, g):
    """The one-at-a-time remainder in the calls a small sample makes: 1-3 draws per call,
    every other call with 12 spare uniforms to start from."""
    out, i = [], 0
    while len(out) < m:
        k = min(1 + i % 3, m - len(out))
        u = torch.rand(12, dtype=torch.float64, generator=g).tolist() if i % 2 else None
        out += _rwt._remainder_py(tab, k, g, u)
        i += 1
    return torch.tensor(out, dtype=torch.float64)


@pytest.mark.parametrize("draw", [_rwt._remainder, _remainder_py], ids=["tensor", "python"])
@pytest.mark.parametrize("kind,args,cdf", [
    ("beta", (0.3, 0.5), stats.beta(0.3, 0.5).cdf),
    ("beta", (2.0, 2.0), stats.beta(2.0, 2.0).cdf),
    # xi = G^(-1/2), G ~ Gamma(a): P(xi <= x) = P(G >= x^-2)
    ("inv_sqrt_gamma", (2.5,), lambda x: stats.gamma(2.5).sf(x ** -2.0)),
    ("inv_sqrt_gamma", (0.25,), lambda x: stats.gamma(0.25).sf(x ** -2.0)),
])
def test_remainder_follows_the_remainder_law(kind, args, cdf, draw):
    """The rejection samplers of the remainder (caps and tails, ~0.1% of the draws, too few
    for the whole-law test to see), tensor rounds and one at a time in Python, against its
    exact CDF: F(x) minus the rectangles' mass below x, over the remainder's mass. KS on 40,000
    (20,000) draws, one seed, reject at 1e-3 (a correct sampler fails 0.1% of the time).
    Checked: accepting every cap candidate (no rejection) or picking the piece uniformly (no
    alias) fails all four cases, and no case of the whole-law test."""
    tab = _rwt.table(kind, *args)
    low, width = tab.low.numpy(), tab.width.numpy()
    mass = tab.remainder_mass

    def rcdf(x):
        # the bins are contiguous: below x lie the j bins left of x's bin and part of x's bin
        j = np.searchsorted(low, x, side="right") - 1
        jc = np.clip(j, 0, None)
        part = np.where(j >= 0, np.clip((x - low[jc]) / width[jc], 0.0, 1.0), 0.0)
        return (cdf(x) - (jc + part) / _rwt.K) / mass

    g = torch.Generator().manual_seed(11)
    x = draw(tab, 20_000 if draw is _remainder_py else 40_000, g).numpy()
    assert stats.kstest(x, rcdf).pvalue > 1e-3


@pytest.mark.parametrize("kind,args", [("beta", (2.0, 2.0)), ("inv_sqrt_gamma", (2.5,))])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_position_in_the_bin_is_uniform(kind, args, dtype):
    """Where a draw lands inside its bin (slot bits and position bits of one random word):
    uniform on [0, 1). The whole-law tests cannot see this (a bin is 1/16384 of the mass), a
    position built from the wrong bits (half the range, the int32 sign bit) fails by far. The
    ~1% of draws from the caps are not uniform in their bin, which moves the CDF by < 0.003,
    against the KS 1e-3 critical distance of 0.009 at n = 50,000."""
    tab = _rwt.table(kind, *args)
    g = torch.Generator().manual_seed(11)
    x = _rwt.sample(tab, 50_000, dtype, 1.0, g).double()
    edges = torch.cat([tab.low, tab.low[-1:] + tab.width[-1:]])
    j = torch.searchsorted(edges, x, right=True) - 1
    ok = (j >= 0) & (j < tab.n_rect)
    assert float(ok.double().mean()) > 0.98
    j = j[ok]
    rel = ((x[ok] - tab.low[j]) / tab.width[j]).numpy()
    assert stats.kstest(rel, "uniform").pvalue > 1e-3


@pytest.mark.parametrize("kind,args", [("beta", (0.5, 3.0)), ("inv_sqrt_gamma", (2.5,))])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
# NumPy form on torch's words (< SMALL_MAX), tensor form on NumPy's (>= NUMPY_MIN)
@pytest.mark.parametrize("n", [1_000, 20_000, 70_001])
def test_fast_path_is_the_documented_map_of_the_words(kind, args, dtype, n):
    """Each rectangle draw is ``low[slot] + width[slot] * (cell + 1/2) / 2^q`` of its random
    word (slot: the low 14 bits; cell: the next q = 17 bits, 49 for float64; the words from
    ``words_source`` at the same generator state), recomputed here in float64: catches a map
    that keeps the law's shape but moves mass between bins (e.g. a cell read with the int32
    sign bit, which shifts a quarter of the draws by one bin width)."""
    tab = _rwt.table(kind, *args)
    g = torch.Generator().manual_seed(5)
    g2 = torch.Generator()
    g2.set_state(g.get_state())
    x = _rwt.sample(tab, n, dtype, 1.0, g).double()
    k = n if dtype == torch.float64 else (n + 1) // 2  # one chunk: n <= _CHUNK
    w = _rwt.words_source(n, g2, k)(k).clone()  # the same generator state's words
    if dtype == torch.float64:
        q = _rwt._Q63
    else:
        w, q = w.view(torch.int32)[:n].long() & 0xFFFFFFFF, _rwt._Q31
    slot = w & (_rwt.K - 1)
    cell = (w >> _rwt.K_BITS) & ((1 << q) - 1)
    rect = slot < tab.n_rect
    assert 0.98 < float(rect.double().mean()) <= 1.0
    assert n < 20_000 or not bool(rect.all())  # some remainder draws among them
    s = slot[rect]
    want = tab.low[s] + tab.width[s] * ((cell[rect].double() + 0.5) * 2.0**-q)
    tol = 4 * torch.finfo(dtype).eps * want.abs() + 1e-300
    assert bool(((x[rect] - want).abs() <= tol).all())


@pytest.mark.parametrize("i", [0, 1, 5, 8])
@pytest.mark.parametrize("size,draws", [(1000, 50), (10_000, 5)])
@pytest.mark.parametrize("py_max", [32, 0])
def test_small_draws_follow_law(i, size, draws, py_max, monkeypatch):
    """Small draws (under ``SMALL_MAX`` elements): the table's NumPy form on torch's words,
    the remainder one at a time (1,000 elements: about one remainder draw per call) or by
    tensor rounds (``PY_REMAINDER_MAX`` lowered to 0); 50,000 elements in all, one KS test as
    in test_table_sampler_follows_law (reject at 1e-3)."""
    assert 10_000 < _rwt.SMALL_MAX <= _rwt.NUMPY_MIN
    monkeypatch.setattr(_rwt, "PY_REMAINDER_MAX", py_max)
    fam, ref = CASES[i]
    g = torch.Generator().manual_seed(200 + i + size)
    x = torch.cat([F.draw_noise(fam, (size,), normalize=False, generator=g,
                                dtype=torch.float64) for _ in range(draws)]).numpy()
    y = x**2 if isinstance(fam, N.InverseNakagami) else x
    assert stats.kstest(y, ref.cdf).pvalue > 1e-3


@pytest.mark.parametrize("i", [0, 1, 5, 7])
def test_no_table_keeps_the_gamma_sampler(i, monkeypatch):
    """Where no table can be built, large draws take the vectorised Marsaglia-Tsang gamma
    sampler (``sampling.gamma.gamma``): forced here, 50,000 draws, KS at 1e-3."""
    monkeypatch.setattr(_rwt, "table", lambda *a: None)
    fam, ref = CASES[i]
    x = _draw(fam, 300 + i).numpy()
    y = x**2 if isinstance(fam, N.InverseNakagami) else x
    assert stats.kstest(y, ref.cdf).pvalue > 1e-3


def test_seeded_draws_repeat_and_advance_the_generator():
    """A large draw is fixed by the generator's state, and moves it on (two words), so two
    successive draws differ."""
    tab = _rwt.table("beta", 2.0, 2.0)
    a = _rwt.sample(tab, 100_000, torch.float32, 1.0, torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    b = _rwt.sample(tab, 100_000, torch.float32, 1.0, g)
    c = _rwt.sample(tab, 100_000, torch.float32, 1.0, g)
    assert torch.equal(a, b) and not torch.equal(b, c)
