"""Gibbs inclusion probabilities against exact enumeration on a linear model.

Linear model, EP: y = X (xi * v) + eps, v ~ N(0, sigma0^2 I), eps ~ N(0, 1/prec), xi_r ~
Bernoulli(keep). Integrating v out, y | xi ~ N(0, sigma0^2 X_xi X_xi^T + I / prec), so
p(xi | y) is exact by enumerating the 2^D configurations. Tolerance: 0.08 absolute per input,
with a fixed seed; a wrong conditional (e.g. dropping the prior odds, or one likelihood
evaluation reused for both values) moves several probabilities by more than 0.2.
"""

import itertools
import math

import pytest
import torch

import shrinkdrop as sd
from shrinkdrop.inference import NetSpec, make_model
from shrinkdrop.inference.gibbs import gibbs_bernoulli


def exact_inclusion(X, y, keep, sigma0, prec):
    N, D = X.shape
    logw, configs = [], []
    for cfg in itertools.product([0.0, 1.0], repeat=D):
        xi = torch.tensor(cfg, dtype=X.dtype)
        Xs = X * xi
        cov = sigma0**2 * Xs @ Xs.T + torch.eye(N, dtype=X.dtype) / prec
        lp = torch.distributions.MultivariateNormal(torch.zeros(N, dtype=X.dtype), cov).log_prob(y)
        lp = lp + xi.sum() * math.log(keep) + (D - xi.sum()) * math.log(1 - keep)
        logw.append(lp)
        configs.append(xi)
    w = torch.softmax(torch.stack(logw), 0)
    return (w[:, None] * torch.stack(configs)).sum(0)


@pytest.fixture
def linear_problem():
    g = torch.Generator().manual_seed(3)
    N, D = 30, 5
    X = torch.randn(N, D, generator=g, dtype=torch.float64)
    beta = torch.tensor([1.0, 0.5, 0.0, 0.35, 0.0], dtype=torch.float64)
    y = X @ beta + torch.randn(N, generator=g, dtype=torch.float64)
    return X, y


@pytest.mark.slow
def test_gibbs_matches_enumeration(linear_problem):
    torch.set_default_dtype(torch.float64)
    try:
        X, y = linear_problem
        keep, sigma0, prec = 0.5, 1.0, 1.0
        truth = exact_inclusion(X, y, keep, sigma0, prec)
        spec = NetSpec([5, 1], bias=False)
        model = make_model(spec, sd.noise.Bernoulli(keep), "ep", sigma0=sigma0, precision=prec)
        res = gibbs_bernoulli(model, X, y, num_warmup=100, num_samples=700, chains=2, seed=0,
                              max_tree_depth=4)
        est = res.samples["xi_0"].double().mean((0, 1))
        assert torch.all(truth > 0.05) and torch.any(truth < 0.8)  # a non-trivial target
        assert torch.allclose(est, truth, atol=0.08), (est, truth)
    finally:
        torch.set_default_dtype(torch.float32)
