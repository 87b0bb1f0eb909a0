"""The VI scale updates are the maximisers of their objective (checked by numerical optimisation).

Deterministic (no randomness except a seeded end-to-end fit); tolerances are relative 1e-6 on
the maximiser found by SciPy's bounded scalar / L-BFGS search in log-space.
"""

import math

import pytest
import torch
from scipy.optimize import minimize, minimize_scalar

from shrinkdrop.inference import NetSpec
from shrinkdrop.inference.vi import (
    HalfCauchyHyperprior,
    InverseGammaHyperprior,
    ard_add_objective,
    ard_add_update,
    fit_vi,
    scale_objective,
    scale_update,
)

HYPERPRIORS = [
    InverseGammaHyperprior(1.0, 1.0),
    InverseGammaHyperprior(0.5, 0.01),
    InverseGammaHyperprior(0.0, 0.0),
    HalfCauchyHyperprior(1.0),
    HalfCauchyHyperprior(0.05),
    HalfCauchyHyperprior(10.0),
]


def _numeric_argmax(moment, count, hp):
    f = lambda t: -float(scale_objective(math.exp(t), moment, count, hp))  # noqa: E731
    r = minimize_scalar(f, bounds=(-25, 25), method="bounded", options={"xatol": 1e-10})
    return math.exp(r.x)


@pytest.mark.parametrize("hp", HYPERPRIORS, ids=repr)
@pytest.mark.parametrize("moment,count", [(0.01, 1), (3.0, 10), (250.0, 50), (1e-4, 200)])
def test_scale_update_is_the_maximiser(hp, moment, count):
    s = float(scale_update(moment, count, hp))
    s_num = _numeric_argmax(moment, count, hp)
    assert s == pytest.approx(s_num, rel=1e-6)
    # and it is a maximum, not a stationary point of another kind
    for eps in (0.97, 1.03):
        assert scale_objective(s, moment, count, hp) > scale_objective(s * eps, moment, count, hp)


@pytest.mark.parametrize("hp", [InverseGammaHyperprior(1.0, 0.5), HalfCauchyHyperprior(1.0),
                                HalfCauchyHyperprior(0.1)], ids=repr)
def test_ard_add_update_is_the_joint_maximiser(hp):
    g = torch.Generator().manual_seed(0)
    M = torch.rand(6, generator=g, dtype=torch.float64) * torch.tensor(
        [5.0, 0.01, 2.0, 0.001, 1.0, 0.3], dtype=torch.float64)
    count = 8
    lam, tau = ard_add_update(M, count, hp, hp)

    def f(t):
        t = torch.tensor(t, dtype=torch.float64)
        return -float(ard_add_objective(t[:-1].exp(), t[-1].exp(), M, count, hp, hp))

    x0 = [0.0] * 7
    r = minimize(f, x0, method="L-BFGS-B", options={"ftol": 1e-15, "gtol": 1e-10,
                                                    "maxiter": 10000})
    ours = -float(ard_add_objective(lam, tau, M, count, hp, hp))
    assert ours <= r.fun + 1e-7 * abs(r.fun)
    num = torch.tensor(r.x).exp()
    assert torch.allclose(tau * lam, num[-1] * num[:-1], rtol=1e-3)


def test_scale_update_rejects_unknown_hyperprior():
    with pytest.raises(TypeError, match="hyperprior"):
        scale_update(1.0, 3, object())


def test_fit_vi_shrinks_irrelevant_inputs():
    g = torch.Generator().manual_seed(1)
    X = torch.randn(80, 5, generator=g, dtype=torch.float64)
    y = 1.5 * X[:, 0] - X[:, 1] + 0.3 * torch.randn(80, generator=g, dtype=torch.float64)
    res = fit_vi(NetSpec([5, 1], bias=False), X, y, hyperprior=HalfCauchyHyperprior(1.0),
                 precision=1 / 0.09, steps=600, lr=0.05, samples=2)
    lam = res.scales["xi_0"]
    assert lam[:2].min() > 5 * lam[2:].max()
    assert torch.allclose(res.mu[0][:2, 0], torch.tensor([1.5, -1.0], dtype=torch.float64),
                          atol=0.15)
