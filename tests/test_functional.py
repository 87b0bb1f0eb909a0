"""Tests of shrinkdrop.functional: noise shapes, sample groups, eval factors, errors.

Randomized checks use fixed seeds and reject at p < 1e-4 (failure rate 1e-4 with fresh seeds).
"""

from __future__ import annotations

import pytest
import scipy.stats as st
import torch

from shrinkdrop import functional as F
from shrinkdrop import noise as N


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
