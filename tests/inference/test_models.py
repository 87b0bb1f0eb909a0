"""Pyro models: laws match shrinkdrop.noise, potential matches Pyro's trace, NUTS recovers a
closed-form posterior.

NUTS check: Bayesian linear regression with a Gaussian prior (a linear NetSpec whose scales
are fixed at 1 through ``fixed=``, so the prior is N(0, sigma0^2 I)). Posterior N(m, S),
S = (X^T X prec + I/sigma0^2)^-1, m = prec S X^T y. 2 chains x 400 draws, seed 0: the mean is
checked to 0.1 posterior sd (+ 4 MC standard errors), the covariance entries to 20% of the
largest posterior variance; a wrong likelihood scale or prior (factor 2 in either) misses
both by far.
"""

import math

import pyro
import pytest
import torch
from pyro.infer.mcmc.util import initialize_model

import shrinkdrop as sd
from shrinkdrop.inference import NetSpec, make_model, pyro_law, run_nuts
from shrinkdrop.inference.models import _init_params, make_potential

FAMILIES = [
    sd.noise.HalfCauchy(0.3),
    sd.noise.InverseNakagami(3.0, 0.5),
    sd.noise.Rayleigh(0.7),
    sd.noise.Gaussian(1.0, 0.5),
    sd.noise.Beta(2.0, 3.0),
    sd.noise.Uniform(0.2, 1.5),
]


@pytest.mark.parametrize("noise", FAMILIES, ids=repr)
def test_pyro_law_matches_noise_log_prob(noise):
    x = noise.sample((200,), generator=torch.Generator().manual_seed(0))
    assert torch.allclose(pyro_law(noise).log_prob(x), noise.log_prob(x), atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("param", ["ep", "hp"])
@pytest.mark.parametrize("spec", [NetSpec([3, 4, 1]),
                                  NetSpec([3, 4, 4, 4, 1], structure="ard+add", residual=True),
                                  NetSpec([3, 4, 4, 4, 1], structure="add", residual=True)],
                         ids=["ard", "ard+add", "add"])
def test_potential_matches_pyro_trace(param, spec):
    g = torch.Generator().manual_seed(0)
    X = torch.randn(20, 3, generator=g)
    y = torch.randn(20, generator=g)
    model = make_model(spec, sd.noise.InverseNakagami(3.0, 0.5), param)
    pyro.set_rng_seed(0)
    _, pot_pyro, _, _ = initialize_model(model, model_args=(X, y))
    pot, tr = make_potential(model, X, y)
    z = _init_params(model, tr, g)
    assert pot(z).item() == pytest.approx(pot_pyro(z).item(), rel=1e-5)


def test_structures_sites():
    spec = NetSpec([3, 4, 4, 4, 1], structure="add", residual=True)
    assert [s.name for s in spec.sites] == ["xi_0", "tau_1", "tau_2", "xi_3"]
    spec = NetSpec([3, 4, 4, 4, 1], structure="ard+add", residual=True)
    assert [s.name for s in spec.sites] == ["xi_0", "xi_1", "tau_1", "xi_2", "tau_2", "xi_3"]
    with pytest.raises(ValueError, match="structure has to be one of"):
        NetSpec([3, 1], structure="layer")
    with pytest.raises(ValueError, match="needs residual layers"):
        NetSpec([3, 4, 1], structure="add")


def test_bernoulli_needs_gibbs():
    model = make_model(NetSpec([2, 1]), sd.noise.Bernoulli(0.5), "ep")
    with pytest.raises(ValueError, match="gibbs"):
        model(torch.zeros(3, 2), torch.zeros(3))


def test_nuts_recovers_linear_regression_posterior():
    torch.set_default_dtype(torch.float64)
    try:
        g = torch.Generator().manual_seed(0)
        N, D, prec, sigma0 = 40, 3, 4.0, 1.0
        X = torch.randn(N, D, generator=g)
        y = X @ torch.tensor([1.0, -0.5, 0.2]) + torch.randn(N, generator=g) / math.sqrt(prec)
        S = torch.linalg.inv(prec * X.T @ X + torch.eye(D) / sigma0**2)
        m = prec * S @ X.T @ y
        spec = NetSpec([D, 1], bias=False)
        model = make_model(spec, sd.noise.HalfCauchy(1.0), "ep", sigma0=sigma0, precision=prec)
        res = run_nuts(model, X, y, num_warmup=200, num_samples=400, chains=2, seed=0,
                       fixed={"xi_0": torch.ones(D)})
        w = res.samples["v_0"].reshape(-1, D)
        sd_post = S.diagonal().sqrt()
        se = sd_post / math.sqrt(w.shape[0])
        assert torch.all((w.mean(0) - m).abs() < 0.1 * sd_post + 4 * se), (w.mean(0), m)
        assert torch.allclose(torch.cov(w.T), S, atol=0.2 * S.diagonal().max())
        assert res.divergences == 0
    finally:
        torch.set_default_dtype(torch.float32)
