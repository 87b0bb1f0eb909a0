"""The NumPyro twins equal the Pyro models (the reference): log density and its gradient in
unconstrained space at random points, float64, to 1e-5 relative, for every continuous family
(on ARD+ADD, which has both kinds of scale site) and every structure (ARD, ADD, ARD+ADD), both
parametrizations; Bernoulli conditioned on fixed 0/1 scales. Plus one short vectorised run of
DiscreteHMCGibbs around NUTS: shapes, sites, 0/1 scales.

The points are Pyro's own initialisation, uniform on (-2, 2) in unconstrained space, seeded;
a wrong law, Jacobian or likelihood term moves the density by O(1), far outside 1e-5.
"""

import numpy as np
import pytest
import torch

import shrinkdrop as sd
from shrinkdrop.inference import NetSpec, make_model
from shrinkdrop.inference.models import _init_params, make_potential

pytest.importorskip("numpyro")
from shrinkdrop.inference.jax_models import numpyro_model, run_nuts_jax  # noqa: E402

FAMILIES = [
    sd.noise.HalfCauchy(0.3),
    sd.noise.InverseNakagami(3.0, 0.5),
    sd.noise.Rayleigh(0.7),
    sd.noise.Gaussian(1.0, 0.5),
    sd.noise.Beta(2.0, 3.0),
    sd.noise.Uniform(0.2, 1.5),
]
SPECS = {"ard": NetSpec([3, 4, 1]),
         "ard+add": NetSpec([3, 4, 4, 4, 1], structure="ard+add", residual=True),
         "add": NetSpec([3, 4, 4, 4, 1], structure="add", residual=True)}


def _data(likelihood="gaussian", seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(15, 3, generator=g, dtype=torch.float64)
    y = (torch.randn(15, generator=g, dtype=torch.float64) if likelihood == "gaussian"
         else torch.randint(0, 3, (15,), generator=g))
    return X, y


def _compare(model, X, y, seed, fixed=None):
    """Pyro's potential and gradient vs NumPyro's at one random unconstrained point."""
    import jax
    import jax.numpy as jnp
    from numpyro.handlers import condition
    from numpyro.infer.util import potential_energy

    pot, tr = make_potential(model, X, y, fixed)
    z = {k: v.double().requires_grad_() for k, v in
         _init_params(model, tr, torch.Generator().manual_seed(seed), fixed).items()}
    u = pot(z)
    u.backward()
    nm = numpyro_model(model)
    if fixed:
        nm = condition(nm, {k: jnp.asarray(v.numpy()) for k, v in fixed.items()})
    yj = jnp.asarray(y.numpy())
    Xj = jnp.asarray(X.numpy())

    def f(p):
        return potential_energy(nm, (Xj, yj), {}, p)

    zj = {k: jnp.asarray(v.detach().numpy()) for k, v in z.items()}
    uj, gj = jax.value_and_grad(f)(zj)
    if fixed:  # NumPyro's conditioned sites add their prior, constant in the weights
        law = model.noise.pyro_law()
        u = u - sum(law.log_prob(v).sum() for v in fixed.values())
    assert float(uj) == pytest.approx(u.item(), rel=1e-5, abs=1e-8)
    for k, v in z.items():
        np.testing.assert_allclose(np.asarray(gj[k]), v.grad.numpy(), rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize("param", ["ep", "hp"])
@pytest.mark.parametrize("noise", FAMILIES, ids=repr)
def test_every_family_equals_pyro(noise, param):
    """ARD+ADD has both kinds of scale site (per unit and per layer) and the residual path."""
    X, y = _data()
    model = make_model(SPECS["ard+add"], noise, param, sigma0=0.8, bias_scale=1.3)
    _compare(model, X, y, 0)


@pytest.mark.parametrize("param", ["ep", "hp"])
@pytest.mark.parametrize("structure", ["ard", "add"])
def test_every_structure_equals_pyro(structure, param):
    X, y = _data()
    model = make_model(SPECS[structure], sd.noise.InverseNakagami(3.0, 0.5), param, sigma0=0.8)
    _compare(model, X, y, 1)


@pytest.mark.parametrize("likelihood", ["gaussian", "categorical"])
def test_fixed_precision_and_categorical(likelihood):
    X, y = _data(likelihood)
    spec = NetSpec([3, 5, 1 if likelihood == "gaussian" else 3], activation="tanh")
    model = make_model(spec, sd.noise.HalfCauchy(1.0), "hp", likelihood=likelihood,
                       precision=2.5 if likelihood == "gaussian" else None)
    _compare(model, X, y, 3)


@pytest.mark.parametrize("structure", list(SPECS))
def test_bernoulli_given_scales_equals_pyro(structure):
    X, y = _data()
    spec = SPECS[structure]
    g = torch.Generator().manual_seed(4)
    fixed = {s.name: (torch.rand(s.shape, generator=g) < 0.6).double() for s in spec.sites}
    model = make_model(spec, sd.noise.Bernoulli(0.6), "ep")
    _compare(model, X, y, 5, fixed)


def test_discrete_gibbs_runs_vectorised():
    """DiscreteHMCGibbs around NUTS, 2 chains (plain NUTS runs end to end in
    tests/experiments/test_mcmc.py: one JAX compilation per path keeps these tests short)."""
    X, y = _data()
    spec = NetSpec([3, 3, 1])
    res = run_nuts_jax(make_model(spec, sd.noise.Bernoulli(0.5), "ep"), X, y, num_warmup=6,
                       num_samples=5, chains=2, max_tree_depth=3)
    assert set(res.samples) == {"xi_0", "xi_1", "v_0", "v_1", "b_0", "b_1", "precision"}
    assert res.samples["v_0"].shape == (2, 5, 3, 3)
    assert res.samples["xi_0"].dtype == torch.get_default_dtype()
    assert res.seconds >= res.sample_seconds > 0 and res.divergences >= 0
    assert res.gradients >= 2 * 11
    assert set(res.samples["xi_0"].unique().tolist()) <= {0.0, 1.0}
    with pytest.raises(ValueError, match="chains"):
        run_nuts_jax(make_model(spec, sd.noise.HalfCauchy(1.0)), X, y, chains=0)
