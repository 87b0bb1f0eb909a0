"""Read-outs: inclusion probabilities, shrinkage factors, AUC and the IW read-out on known cases.

The IW check is exact in the limit: with a linear model, fixed weights and Bernoulli scales on
3 inputs, p(xi | y, W) is computable by enumerating the 8 configurations; 4000 prior draws
(seed 0) estimate the inclusion probabilities within 0.05 (binomial sd at ESS >= 400 is < 0.025).
"""

import itertools

import pytest
import torch

import shrinkdrop as sd
from shrinkdrop.inference import (
    NetSpec,
    importance_readout,
    inclusion_probabilities,
    log_likelihood,
    relevance_auc,
    shrinkage_factors,
)


def test_inclusion_and_shrinkage():
    spec = NetSpec([3, 1], bias=False)
    xi = torch.tensor([[[1.0, 0.0, 1.0], [1.0, 0.0, 0.0]]])  # (chain 1, draw 2, 3)
    p = inclusion_probabilities({"xi_0": xi}, spec)["xi_0"]
    assert p.tolist() == [1.0, 0.0, 0.5]
    k = shrinkage_factors({"xi_0": torch.tensor([[[0.0, 1.0, 3.0]]])}, spec, n=4, sigma0=0.5)
    assert torch.allclose(k["xi_0"], torch.tensor([1.0, 0.5, 0.1], dtype=torch.float64))


def test_relevance_auc():
    assert relevance_auc([0.9, 0.8, 0.1, 0.2], [1, 1, 0, 0]) == 1.0
    assert relevance_auc([0.1, 0.8, 0.9, 0.2], [1, 1, 0, 0]) == 0.25
    assert relevance_auc([0.5, 0.5], [1, 0]) == 0.5
    with pytest.raises(ValueError, match="both classes"):
        relevance_auc([0.1, 0.2], [1, 1])


def test_importance_readout_matches_enumeration():
    g = torch.Generator().manual_seed(0)
    N, D, keep = 15, 3, 0.5
    X = torch.randn(N, D, generator=g, dtype=torch.float64)
    W = torch.tensor([[0.8], [0.0], [0.3]], dtype=torch.float64)
    y = (X @ W).squeeze(-1) + torch.randn(N, generator=g, dtype=torch.float64)
    spec = NetSpec([D, 1], bias=False)

    def ll(scales):
        return log_likelihood(spec, {"v_0": W, **scales}, X, y, precision=1.0)

    torch.set_default_dtype(torch.float64)
    try:
        iw = importance_readout(ll, sd.noise.Bernoulli(keep), spec.sites, samples=4000,
                                generator=torch.Generator().manual_seed(0))
    finally:
        torch.set_default_dtype(torch.float32)
    cfgs = torch.tensor(list(itertools.product([0.0, 1.0], repeat=D)), dtype=torch.float64)
    post = torch.softmax(ll({"xi_0": cfgs}), 0)  # uniform prior at keep = 1/2
    truth = (post[:, None] * cfgs).sum(0)
    assert iw.ess > 400
    assert torch.allclose(iw["xi_0"], truth, atol=0.05), (iw["xi_0"], truth)
    assert truth[0] > 0.9  # the strong input is in: the check is not vacuous
