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


@pytest.mark.parametrize("param", ["ep", "hp"])
def test_linear_ard_log_density_matches_hand_written(param):
    """Depth 0 (``NetSpec([D, 1])``, ``shrinkdrop mcmc --depth 0``): the linear ARD regression
    ``y = sum_r xi_r v_r x_r + b`` (EP) / ``w_r ~ N(0, sigma0^2 xi_r^2)`` (HP), learnt noise
    precision. Pyro's trace and the NUTS potential both equal the density written out by hand."""
    torch.set_default_dtype(torch.float64)
    try:
        g = torch.Generator().manual_seed(1)
        N, D, s, sigma0 = 15, 4, 0.1, 1.3
        X, y = torch.randn(N, D, generator=g), torch.randn(N, generator=g)
        model = make_model(NetSpec([D, 1]), sd.noise.HalfCauchy(s), param, sigma0=sigma0)
        wname = "v_0" if param == "ep" else "w_0"
        z = {"xi_0": torch.randn(D, generator=g), wname: torch.randn(D, 1, generator=g),
             "b_0": torch.randn(1, generator=g), "precision": torch.randn((), generator=g)}
        xi, u, b, prec = z["xi_0"].exp(), z[wname], z["b_0"], z["precision"].exp()

        def log_normal(x, sd_):
            return (-0.5 * math.log(2 * math.pi) - torch.log(sd_) - 0.5 * (x / sd_) ** 2).sum()

        one = torch.tensor(1.0)
        lp = (math.log(2 / (math.pi * s)) - torch.log1p((xi / s) ** 2)).sum()  # half-Cauchy
        if param == "ep":
            lp += log_normal(u[:, 0], sigma0 * one)
            w = xi * u[:, 0]
        else:
            lp += log_normal(u[:, 0], sigma0 * xi)
            w = u[:, 0]
        lp += log_normal(b, one)
        lp += 2 * math.log(0.5) - math.lgamma(2) + torch.log(prec) - 0.5 * prec  # Gamma(2, 0.5)
        lp += log_normal(y - X @ w - b, prec.rsqrt())

        values = {"xi_0": xi, wname: u, "b_0": b, "precision": prec}
        tr = pyro.poutine.trace(pyro.poutine.condition(model, data=values)).get_trace(X, y)
        assert tr.log_prob_sum().item() == pytest.approx(lp.item(), rel=1e-10)
        pot, _ = make_potential(model, X, y)  # unconstrained: + log-Jacobian of the two exps
        jac = z["xi_0"].sum() + z["precision"]
        assert pot(z).item() == pytest.approx(-(lp + jac).item(), rel=1e-10)
    finally:
        torch.set_default_dtype(torch.float32)
