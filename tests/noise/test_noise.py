"""Noise families against independent references (scipy.stats, adaptive quadrature).

Calibration of the randomized tests: every goodness-of-fit test uses a fixed seed and
n = 20,000 draws, and rejects at alpha = 1e-3. With the seeds fixed the tests are deterministic;
under fresh seeds each would fail 0.1% of the time when the law is right. Their power is shown by
the ``*_rejects_*`` tests: the same test on a 5% (xi) or 10% (w = xi v) wrong scale (or a
shifted keep probability) fails.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import integrate, stats

import shrinkdrop.noise as N

ALPHA = 1e-3
NDRAWS = 20_000


@pytest.fixture(autouse=True)
def _float64():
    """Exact comparisons in float64; restored afterwards so other modules are unaffected."""
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _gen(seed=1234):
    return torch.Generator().manual_seed(seed)


# (family instance, scipy frozen law of xi or None, law of xi as a callable pdf on |xi| support)
CASES = {
    "bernoulli": (lambda: N.Bernoulli(0.8), stats.bernoulli(0.8)),
    "gaussian": (lambda: N.Gaussian(1.0, 0.5), stats.norm(1.0, 0.5)),
    "gaussian0": (lambda: N.Gaussian(0.0, 0.7), stats.norm(0.0, 0.7)),
    "rayleigh": (lambda: N.Rayleigh(0.6), stats.rayleigh(scale=0.6)),
    "inverse_nakagami": (lambda: N.InverseNakagami(5.0, 0.8), None),
    "inverse_nakagami_heavy": (lambda: N.InverseNakagami(1.5, 0.8), None),
    "half_cauchy": (lambda: N.HalfCauchy(0.3), stats.halfcauchy(scale=0.3)),
    "beta": (lambda: N.Beta(5.5, 2.0), stats.beta(5.5, 2.0)),
    "beta_heavy": (lambda: N.Beta(2.5, 2.0), stats.beta(2.5, 2.0)),
    "uniform": (lambda: N.Uniform(0.5, 1.5), stats.uniform(0.5, 1.0)),
    "uniform0": (lambda: N.Uniform(0.0, 2.0), stats.uniform(0.0, 2.0)),
    "uniform_neg": (lambda: N.Uniform(-1.5, -0.5), stats.uniform(-1.5, 1.0)),
}


class _InvNakagamiRef:
    """xi = sqrt(Y), Y ~ InvGamma(nu/2, scale nu s^2 / 2), built from scipy.stats.invgamma."""

    def __init__(self, nu, s):
        self.y = stats.invgamma(a=nu / 2, scale=nu * s * s / 2)

    def cdf(self, x):
        return self.y.cdf(np.asarray(x) ** 2)

    def logpdf(self, x):
        x = np.asarray(x)
        return self.y.logpdf(x**2) + np.log(2 * x)

    def expect(self, f, **kw):
        return self.y.expect(lambda y: f(np.sqrt(y)), **kw)


def _ref(name):
    make, ref = CASES[name]
    d = make()
    if ref is None:
        ref = _InvNakagamiRef(d.df.item(), d.scale.item())
    return d, ref


def _moment(ref, f, discrete=False):
    """E f(xi) by scipy's own quadrature/summation; inf where the integral diverges."""
    if discrete:
        return ref.expect(f)
    with np.errstate(all="ignore"):
        val = ref.expect(f, epsrel=1e-10, limit=500)
    return val


# --------------------------------------------------------------------------------------- moments
FINITE_MOMENT_CASES = [
    # name, which moments are finite: mean, var, E xi^-2, Var xi^-2, E log|xi|
    ("bernoulli", (True, True, False, False, False)),
    ("gaussian", (True, True, False, False, True)),
    ("gaussian0", (True, True, False, False, True)),
    ("rayleigh", (True, True, False, False, True)),
    ("inverse_nakagami", (True, True, True, True, True)),
    ("inverse_nakagami_heavy", (True, False, True, True, True)),
    ("half_cauchy", (False, False, False, False, True)),
    ("beta", (True, True, True, True, True)),
    ("beta_heavy", (True, True, True, False, True)),
    ("uniform", (True, True, True, True, True)),
    ("uniform0", (True, True, False, False, True)),
    ("uniform_neg", (True, True, True, True, True)),
]


@pytest.mark.parametrize("name,finite", FINITE_MOMENT_CASES,
                         ids=[c[0] for c in FINITE_MOMENT_CASES])
def test_moments_against_scipy_quadrature(name, finite):
    d, ref = _ref(name)
    discrete = name == "bernoulli"
    got = {
        "mean": d.mean.item(),
        "var": d.variance.item(),
        "m2": d.second_moment.item(),
        "inv2": d.inverse_square_mean.item(),
        "inv2var": d.inverse_square_variance.item(),
        "logabs": d.log_abs_mean.item(),
    }
    for v in got.values():
        assert not math.isnan(v)
    f_mean, f_var, f_inv2, f_inv2var, f_log = finite
    if f_mean:
        m = _moment(ref, lambda x: x, discrete)
        assert got["mean"] == pytest.approx(m, rel=1e-7, abs=1e-12)
    else:
        assert got["mean"] == math.inf
    if f_var:
        m = _moment(ref, lambda x: x, discrete)
        m2 = _moment(ref, lambda x: x * x, discrete)
        assert got["var"] == pytest.approx(m2 - m * m, rel=1e-6, abs=1e-12)
        assert got["m2"] == pytest.approx(m2, rel=1e-7)
    else:
        assert got["var"] == math.inf
    if f_inv2:
        e2 = _moment(ref, lambda x: x**-2.0)
        assert got["inv2"] == pytest.approx(e2, rel=1e-6)
    else:
        assert got["inv2"] == math.inf
    if f_inv2var:
        e2 = _moment(ref, lambda x: x**-2.0)
        e4 = _moment(ref, lambda x: x**-4.0)
        assert got["inv2var"] == pytest.approx(e4 - e2 * e2, rel=1e-5)
    elif name == "bernoulli":
        assert got["inv2var"] == math.inf
    else:
        assert got["inv2var"] == math.inf
    if f_log:
        if name.startswith("gaussian"):
            # log singularity at xi = 0: split scipy's integral there
            mu, sd = d.mean_.item(), d.std.item()
            pdf = stats.norm(mu, sd).pdf
            e = sum(
                integrate.quad(lambda x: np.log(abs(x)) * pdf(x), a, b, limit=200)[0]
                for a, b in ((-np.inf, 0.0), (0.0, np.inf))
            )
        elif name == "uniform0":
            e = integrate.quad(lambda x: np.log(x) / 2.0, 0.0, 2.0)[0]
        else:
            e = _moment(ref, lambda x: np.log(np.abs(x)))
        assert got["logabs"] == pytest.approx(e, rel=1e-6, abs=1e-9)


def test_infinite_inverse_moment_is_really_infinite():
    """Var[xi^-2] = inf for Gaussian noise: the truncated integral grows without bound,
    unlike the finite asymptote of the paper's Figure 1."""
    pdf = stats.norm(1.0, 0.5).pdf
    # integrate x^-2 p(x) over [eps, 10] in t = log x, where the integrand is smooth
    vals = [integrate.quad(lambda t: np.exp(-t) * pdf(np.exp(t)), math.log(eps), math.log(10),
                           limit=200)[0]
            for eps in (1e-2, 1e-4, 1e-6)]
    assert vals[1] > 50 * vals[0] and vals[2] > 50 * vals[1]
    assert N.Gaussian(1.0, 0.5).inverse_square_variance.item() == math.inf


def test_bernoulli_keep_one_is_deterministic():
    d = N.Bernoulli(1.0)
    assert d.inverse_square_variance.item() == 0.0
    assert d.inverse_square_mean.item() == 1.0
    assert torch.all(d.sample((100,)) == 1)


# ----------------------------------------------------------------------------------- log_prob
@pytest.mark.parametrize("name", [n for n in CASES if n != "bernoulli"])
def test_log_prob_against_scipy(name):
    d, ref = _ref(name)
    q = np.linspace(0.02, 0.98, 25)
    if hasattr(ref, "ppf"):
        x = ref.ppf(q)
    else:
        x = np.sqrt(ref.y.ppf(q))
    got = d.log_prob(torch.tensor(x)).numpy()
    np.testing.assert_allclose(got, ref.logpdf(x), rtol=1e-10, atol=1e-12)


def test_bernoulli_log_prob():
    d = N.Bernoulli(0.3)
    got = d.log_prob(torch.tensor([0.0, 1.0])).numpy()
    np.testing.assert_allclose(got, stats.bernoulli(0.3).logpmf([0, 1]))


# ------------------------------------------------------------------------------------ sampling
def _ks(samples, cdf):
    return stats.kstest(samples, cdf).pvalue


@pytest.mark.parametrize("name", [n for n in CASES if n != "bernoulli"])
@pytest.mark.parametrize("use_generator", [True, False], ids=["generator", "global_rng"])
def test_samples_follow_law(name, use_generator):
    d, ref = _ref(name)
    if use_generator:
        x = d.sample((NDRAWS,), generator=_gen(7)).numpy()
    else:
        torch.manual_seed(7)
        x = d.sample((NDRAWS,)).numpy()
    assert _ks(x, ref.cdf) > ALPHA


@pytest.mark.parametrize("name", ["rayleigh", "inverse_nakagami", "half_cauchy", "gaussian"])
def test_goodness_of_fit_rejects_wrong_scale(name):
    d, ref = _ref(name)
    x = d.sample((NDRAWS,), generator=_gen(7)).numpy()
    assert _ks(1.05 * x, ref.cdf) < ALPHA


def test_bernoulli_binomial_and_power():
    d = N.Bernoulli(0.8)
    k = int(d.sample((NDRAWS,), generator=_gen(3)).sum())
    assert stats.binomtest(k, NDRAWS, 0.8).pvalue > ALPHA
    assert stats.binomtest(k, NDRAWS, 0.81).pvalue < ALPHA


def test_generator_reproducible_and_gamma_sampler():
    d = N.InverseNakagami(3.0, 1.0)
    a = d.sample((50,), generator=_gen(11))
    b = d.sample((50,), generator=_gen(11))
    assert torch.equal(a, b)
    for conc in (0.3, 1.0, 4.5):
        g = N.standard_gamma(torch.full((NDRAWS,), conc), _gen(5)).numpy()
        assert _ks(g, stats.gamma(conc).cdf) > ALPHA
        assert _ks(1.05 * g, stats.gamma(conc).cdf) < ALPHA


def test_batch_shapes_and_expand():
    d = N.Rayleigh(torch.tensor([0.5, 1.0, 2.0]))
    assert d.sample().shape == (3,)
    assert d.sample((4, 2)).shape == (4, 2, 3)
    e = d.expand((5, 3))
    assert e.sample().shape == (5, 3)
    assert e.mean.shape == (5, 3)
    for fam in (N.Bernoulli(0.5), N.Gaussian(1.0, 0.2), N.InverseNakagami(4.0, 1.0),
                N.HalfCauchy(1.0), N.Beta(2.0, 3.0), N.Uniform(0.0, 2.0)):
        assert fam.expand((2, 3)).sample((4,)).shape == (4, 2, 3)


# ----------------------------------------------------------------------------- variance priors
VARIANCE_PRIOR_CASES = [
    (lambda: N.Gaussian(0.0, 0.7), stats.gamma(a=0.5, scale=2 * 0.7**2)),
    (lambda: N.Gaussian(1.0, 0.5), stats.ncx2(df=1, nc=(1.0 / 0.5) ** 2, scale=0.25)),
    (lambda: N.Rayleigh(0.6), stats.expon(scale=2 * 0.36)),
    (lambda: N.InverseNakagami(5.0, 0.8), stats.invgamma(a=2.5, scale=5 * 0.64 / 2)),
    (lambda: N.HalfCauchy(0.3), stats.f(1, 1, scale=0.09)),
]


@pytest.mark.parametrize("i", range(len(VARIANCE_PRIOR_CASES)))
def test_variance_prior_is_the_law_of_xi_squared(i):
    make, ref = VARIANCE_PRIOR_CASES[i]
    d = make()
    law = d.variance_prior()
    y = ref.ppf(np.linspace(0.02, 0.98, 21))
    np.testing.assert_allclose(law.log_prob(torch.tensor(y)).numpy(), ref.logpdf(y),
                               rtol=1e-9, atol=1e-10)
    xi2 = (d.sample((NDRAWS,), generator=_gen(21)) ** 2).numpy()
    assert _ks(xi2, ref.cdf) > ALPHA


def test_variance_prior_bernoulli_and_unnamed():
    law = N.Bernoulli(0.7).variance_prior()
    assert law.probs.item() == pytest.approx(0.7)
    assert N.Beta(2.0, 2.0).variance_prior() is None
    assert N.Uniform(0.0, 2.0).variance_prior() is None


# ----------------------------------------------------------------------------- marginal priors
def test_marginal_prior_types_and_parameters():
    from shrinkdrop import priors as P

    sp = N.Bernoulli(0.7).marginal_prior(2.0)
    assert isinstance(sp, P.SpikeAndSlab)
    lap = N.Rayleigh(0.5).marginal_prior(2.0)
    assert lap.scale.item() == pytest.approx(1.0)
    st = N.InverseNakagami(4.0, 0.5).marginal_prior(2.0)
    assert st.df.item() == 4.0 and st.scale.item() == pytest.approx(1.0)
    hs = N.HalfCauchy(0.5).marginal_prior(2.0)
    assert isinstance(hs, P.Horseshoe)
    vg = N.Gaussian(0.0, 0.5).marginal_prior(2.0)
    assert isinstance(vg, P.VarianceGamma)
    for fam in (N.Gaussian(1.0, 0.5), N.Beta(2.0, 3.0), N.Uniform(0.0, 2.0)):
        assert isinstance(fam.marginal_prior(2.0), P.GaussianScaleMixture)


MARGINAL_CASES = {
    "rayleigh": (lambda: N.Rayleigh(0.6), lambda s0: stats.laplace(scale=0.6 * s0).cdf),
    "inverse_nakagami": (lambda: N.InverseNakagami(5.0, 0.8),
                         lambda s0: stats.t(5.0, scale=0.8 * s0).cdf),
}


@pytest.mark.parametrize("name", list(MARGINAL_CASES))
def test_xi_times_v_follows_closed_form_marginal(name):
    make, cdf = MARGINAL_CASES[name]
    d, s0 = make(), 1.7
    g = _gen(99)
    w = d.sample((NDRAWS,), generator=g) * s0 * torch.randn(NDRAWS, generator=g)
    assert _ks(w.numpy(), cdf(s0)) > ALPHA
    assert _ks(1.10 * w.numpy(), cdf(s0)) < ALPHA


@pytest.mark.parametrize("make", [
    lambda: N.Gaussian(0.0, 0.6), lambda: N.HalfCauchy(0.4), lambda: N.Gaussian(1.0, 0.5),
    lambda: N.Beta(0.7, 2.0), lambda: N.Uniform(-1.0, 3.0),
], ids=["gaussian0", "half_cauchy", "gaussian1", "beta", "uniform"])
def test_xi_times_v_follows_marginal_cdf(make):
    d, s0 = make(), 1.3
    prior = d.marginal_prior(s0)
    g = _gen(5)
    w = (d.sample((NDRAWS,), generator=g) * s0 * torch.randn(NDRAWS, generator=g)).numpy()

    def cdf(x):
        return prior.cdf(torch.as_tensor(x)).numpy()

    assert _ks(w, cdf) > ALPHA
    assert _ks(1.10 * w, cdf) < ALPHA


# --------------------------------------------------------------------------------- validation
BAD = [
    # keep = 0 (torch's p = 1) is accepted since issue 26: tests/nn/test_torch_parity.py
    (N.Bernoulli, {"keep": 1.5}, "keep"),
    (N.Bernoulli, {"keep": -0.1}, "keep"),
    (N.Bernoulli, {"keep": float("nan")}, "keep"),
    (N.Gaussian, {"mean": 1.0, "std": 0.0}, "std"),
    (N.Gaussian, {"mean": 1.0, "std": -1.0}, "std"),
    (N.Gaussian, {"mean": float("nan"), "std": 1.0}, "mean"),
    (N.Rayleigh, {"scale": 0.0}, "scale"),
    (N.Rayleigh, {"scale": float("nan")}, "scale"),
    (N.InverseNakagami, {"df": 0.0, "scale": 1.0}, "df"),
    (N.InverseNakagami, {"df": 3.0, "scale": -2.0}, "scale"),
    (N.HalfCauchy, {"scale": -1.0}, "scale"),
    (N.HalfCauchy, {"scale": float("inf")}, "scale"),
    (N.Beta, {"a": 0.0, "b": 1.0}, "a"),
    (N.Beta, {"a": 1.0, "b": float("nan")}, "b"),
    (N.Uniform, {"low": 1.0, "high": 1.0}, "high"),
    (N.Uniform, {"low": float("nan"), "high": 1.0}, "low"),
]


@pytest.mark.parametrize("cls,kwargs,argname", BAD,
                         ids=[f"{c.__name__}-{k}" for c, k, _ in [(b[0], b[2], 0) for b in BAD]])
def test_invalid_arguments_name_the_argument(cls, kwargs, argname):
    with pytest.raises(ValueError) as exc:
        cls(**kwargs)
    msg = str(exc.value)
    assert argname in msg
    bad_value = kwargs[argname] if argname in kwargs else None
    if bad_value is not None and not (isinstance(bad_value, float) and math.isnan(bad_value)):
        assert repr(float(bad_value)) in msg or str(bad_value) in msg
    if isinstance(bad_value, float) and math.isnan(bad_value):
        assert "NaN" in msg


def test_sigma0_validated():
    with pytest.raises(ValueError, match="sigma0"):
        N.Rayleigh(1.0).marginal_prior(0.0)


def test_wrong_type_is_a_type_error():
    with pytest.raises(TypeError, match="keep"):
        N.Bernoulli("0.5")


# ------------------------------------------------------------------------------- normalisation
@pytest.mark.parametrize("make", [
    lambda: N.Bernoulli(0.7), lambda: N.Gaussian(1.0, 0.5), lambda: N.Rayleigh(0.3),
    lambda: N.InverseNakagami(4.0, 0.5), lambda: N.Beta(2.0, 3.0), lambda: N.Uniform(0.0, 2.0),
])
def test_normalized_sample_has_mean_one(make):
    d = make()
    x = d.normalized_sample((NDRAWS,), generator=_gen(1))
    se = x.std() / math.sqrt(NDRAWS)
    assert abs(x.mean().item() - 1.0) < 4 * se.item()  # 4 SE: two-sided failure rate 6e-5


@pytest.mark.parametrize("d", [N.HalfCauchy(1.0), N.Gaussian(0.0, 1.0)], ids=repr)
def test_not_normalizable(d):
    assert not d.can_normalize
    with pytest.raises(N.NotNormalizableError, match="normalize=False"):
        d.normalized_sample((3,))


def test_gaussian_dropout_constructor():
    d = N.Gaussian.dropout(0.2)
    assert d.mean.item() == 1.0
    assert d.variance.item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="p"):
        N.Gaussian.dropout(1.0)


def test_repr_and_families():
    assert repr(N.Bernoulli(0.5)) == "Bernoulli(keep=0.5)"
    assert repr(N.Gaussian(1.0, 0.5)) == "Gaussian(mean=1, std=0.5)"
    assert set(N.FAMILIES) == {"bernoulli", "gaussian", "rayleigh", "inverse_nakagami",
                               "half_cauchy", "beta", "uniform", "log_normal"}


def test_uniform_interval_straddling_zero_is_legal():
    """U(-1, 1) is a legal Uniform noise (the bad-input table's former ``low < 0`` case): it
    draws inside [-1, 1] with both signs, has mean 0 and E[xi^-2] = inf, and a finite prior."""
    u = N.Uniform(-1.0, 1.0)
    x = u.sample((4000,), generator=torch.Generator().manual_seed(0))
    assert x.min() >= -1 and x.max() <= 1 and (x < 0).any() and (x > 0).any()
    assert float(u.mean) == 0.0 and math.isinf(float(u.inverse_square_mean))
    assert torch.isfinite(u.marginal_prior(1.0).log_prob(torch.tensor([0.5, 2.0]))).all()
