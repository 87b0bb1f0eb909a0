"""Tests of shrinkdrop.functional: noise shapes, sample groups, eval factors, errors.

Randomized checks use fixed seeds and reject at p < 1e-4 (failure rate 1e-4 with fresh seeds).
"""

from __future__ import annotations

import pytest
import scipy.stats as st
import torch

from shrinkdrop import functional as F
from shrinkdrop import noise as N
from shrinkdrop.sampling import bernoulli as SB


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_draw_noise_shapes_and_sharing():
    fam = N.Gaussian(1.0, 0.5)
    assert F.draw_noise(fam, (5, 3)).shape == (5, 3)
    shared = F.draw_noise(fam, (6, 3), share_across_batch=True, generator=gen(1))
    assert shared.shape == (1, 3)
    with F.sample_groups(3):
        assert F.current_sample_groups() == 3
        g = F.draw_noise(fam, (6, 3), share_across_batch=True, generator=gen(1))
    assert F.current_sample_groups() == 1
    assert g.shape == (6, 3)
    assert torch.equal(g[0], g[1]) and torch.equal(g[2], g[3]) and not torch.equal(g[1], g[2])
    torch.testing.assert_close(g[0], shared[0])  # the first group is the unshared draw


def test_generator_reproducible():
    fam = N.Bernoulli(0.3)
    a = F.draw_noise(fam, (100, 7), generator=gen(4))
    b = F.draw_noise(fam, (100, 7), generator=gen(4))
    assert torch.equal(a, b)
    assert set((a * 0.3).round().unique().tolist()) == {0.0, 1.0}


@pytest.mark.parametrize("keep", [0.01, 0.5, 0.999])
def test_bernoulli_bits_law(keep):
    xi = F.draw_noise(N.Bernoulli(keep), (1001, 999), normalize=False, generator=gen(5))
    assert st.binomtest(int(xi.sum()), xi.numel(), keep).pvalue > 1e-4


def _gap_pvalue(flat: torch.Tensor, drop: float) -> float:
    """Chi-square p-value of the gaps between consecutive zeros against Geometric(drop)."""
    import numpy as np

    z = (flat == 0).nonzero().squeeze(1).numpy()
    gaps = np.diff(z)
    edges = np.unique(st.geom.ppf(np.linspace(0, 1, 21)[1:-1], drop)).astype(int)
    obs = np.bincount(np.searchsorted(edges, gaps, side="left"), minlength=len(edges) + 1)
    cdf = st.geom.cdf(np.concatenate([edges, [np.inf]]), drop)
    exp = np.diff(np.concatenate([[0.0], cdf])) * len(gaps)
    return st.chisquare(obs, exp).pvalue


@pytest.mark.parametrize("keep", [0.995, 0.95, 0.93])
@pytest.mark.parametrize("margin", [6.0, -3.0])  # -3 SD: the first batch of gaps falls short
def test_bernoulli_gap_law(keep, margin, monkeypatch):
    """Small drop rates are drawn by geometric gaps: the count of zeros, their spacing and
    their positions follow iid Bernoulli(keep), also when the gaps are drawn in several
    batches. Failure rate <= 4e-4 per parametrisation (four tests at 1e-4)."""
    monkeypatch.setattr(SB, "GAP_MARGIN_SD", margin)
    drop = 1 - keep
    assert drop <= SB.GAP_MAX_DROP
    xi = F.draw_noise(N.Bernoulli(keep), (1001, 999), normalize=False, generator=gen(6))
    assert set(xi.unique().tolist()) <= {0.0, 1.0}
    assert st.binomtest(int(xi.sum()), xi.numel(), keep).pvalue > 1e-4
    assert _gap_pvalue(xi.view(-1), drop) > 1e-4
    # every position (the first and the last included) is dropped with probability drop
    g = gen(7)
    small = torch.stack([F.draw_noise(N.Bernoulli(keep), (6,), normalize=False, generator=g)
                         for _ in range(8000)])
    zeros = (small == 0).sum(0)
    p = [st.binomtest(int(c), 8000, drop).pvalue for c in zeros]
    assert min(p) > 1e-4 / 6
    # normalised: the kept entries are exactly 1 / keep
    xn = F.draw_noise(N.Bernoulli(keep), (50, 40), generator=gen(8))
    assert set(xn.unique().tolist()) <= {0.0, float(torch.tensor(1 / keep))}


def test_bernoulli_gap_test_has_power():
    """The spacing test above rejects a 5% wrong drop rate (probability of a miss < 1e-6)."""
    xi = F.draw_noise(N.Bernoulli(0.95), (1001, 999), normalize=False, generator=gen(6))
    assert _gap_pvalue(xi.view(-1), 0.05 * 1.05) < 1e-6


@pytest.mark.parametrize("fam", [N.Bernoulli(0.97), N.Bernoulli(0.6), N.Gaussian(1.0, 0.4),
                                 N.Uniform(0.2, 1.5), N.Rayleigh(0.7),
                                 N.InverseNakagami(4.0, 1.0)])
def test_draw_into_same_law(fam):
    """``_draw_into`` (a slice of one buffer, as the stacked ensemble fills it) draws the same
    law as ``draw_noise``: two-sample KS at 1e-4, and only the given slice is written."""
    buf = torch.full((3, 4000, 5), -7.0)
    F._draw_into(fam, buf[1:2], generator=gen(9))
    assert bool((buf[0] == -7).all() and (buf[2] == -7).all())
    ref = F.draw_noise(fam, (4000, 5), generator=gen(10))
    assert st.ks_2samp(buf[1].reshape(-1).numpy(), ref.reshape(-1).numpy()).pvalue > 1e-4
    with pytest.raises(ValueError, match="contiguous"):
        F._draw_into(fam, buf[:, :, 1])


def test_eval_factors():
    x = torch.randn(4, 5)
    assert F.unit_noise(x, N.Rayleigh(1.0), training=False) is x
    raw = F.unit_noise(x, N.Rayleigh(2.0), training=False, normalize=False)
    torch.testing.assert_close(raw, x * float(N.Rayleigh(2.0).mean))
    with pytest.raises(F.EvalNoiseError, match="infinite mean"):
        F.unit_noise(x, N.HalfCauchy(1.0), training=False, normalize=False)
    with pytest.raises(N.NotNormalizableError):
        F.unit_noise(x, N.HalfCauchy(1.0), training=True)


def test_weight_noise_errors_and_eval():
    x, w = torch.randn(3, 4), torch.randn(2, 4)
    with pytest.raises(ValueError, match="share_across_batch"):
        F.weight_noise_linear(x, w, None, N.Gaussian(1.0, 1.0), share_across_batch=True,
                              local_reparameterization=True)
    torch.testing.assert_close(
        F.weight_noise_linear(x, w, None, N.Bernoulli(0.5), training=False, normalize=False),
        x @ (w * 0.5).t())


def test_layer_noise_shape():
    x = torch.ones(50, 3, 4)
    y = F.layer_noise(x, N.Uniform(0.0, 2.0), generator=gen(6))
    assert torch.equal(y, y[:, :1, :1].expand_as(y)) and not torch.equal(y[0], y[1])


def test_small_bernoulli_runs_torch_kernel_and_the_rest_ours():
    """The dispatch of unit_noise (docs/layers.md, "Small Bernoulli draws"): per-example,
    normalised Bernoulli noise from the global generator on fewer than TORCH_DROPOUT_MAX elements
    is torch's dropout kernel (the same values as F.dropout under the same seed); with a
    generator, at TORCH_DROPOUT_MAX elements and more, shared or raw, it is our draw (the same
    values as draw_noise under the same seed)."""
    nz = N.Bernoulli(0.7)
    small = torch.rand(64, 20) + 0.5
    torch.manual_seed(5)
    a = F.unit_noise(small, nz)
    torch.manual_seed(5)
    assert torch.equal(a, torch.nn.functional.dropout(small, 0.3, True))
    big = torch.rand(F.TORCH_DROPOUT_MAX) + 0.5
    for x, kw in ((big, {}), (small, dict(generator=3)), (small, dict(normalize=False))):
        mk = (lambda kw=kw: dict(kw, generator=gen(kw["generator"]))) if "generator" in kw \
            else kw.copy
        torch.manual_seed(6)
        got = F.unit_noise(x, nz, **mk())
        torch.manual_seed(6)
        xi = F.draw_noise(nz, x.shape, **mk())
        assert torch.equal(got, x * xi)
    # the law of the small path (torch's kernel): binomial test on the drops
    torch.manual_seed(7)
    drops = sum(int((F.unit_noise(small, nz) == 0).sum()) for _ in range(20))
    assert st.binomtest(drops, 20 * small.numel(), 0.3).pvalue > 1e-4
