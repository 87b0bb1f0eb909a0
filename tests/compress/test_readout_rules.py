"""Thresholds without a guess (median-probability rule, one-SE rule) and the scale fit whose
posterior they read."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import shrinkdrop as sd
from shrinkdrop import compress as C
from shrinkdrop.inference import median_probability_rule, one_se_removal


def test_median_probability_rule():
    out = median_probability_rule({"a": torch.tensor([0.1, 0.5, 0.49, 0.9])})
    assert out["a"].tolist() == [True, False, True, False]


def _ll_fn(base, costs):
    """Per-row validation LL: ``base`` minus the summed cost of the removed units."""
    def loglik(removed):
        pen = sum(float(costs[k][m].sum()) for k, m in removed.items()) if removed else 0.0
        return base - pen
    return loglik


def test_one_se_removal_takes_the_largest_removal_within_one_se():
    g = torch.Generator().manual_seed(0)
    base = torch.randn(400, generator=g, dtype=torch.float64)  # SE = sd / 20 ~ 0.05
    se = float(base.std() / 20)
    scores = {"a": torch.arange(6.0), "b": torch.arange(6.0, 10.0)}
    # units with score < 5 cost nothing (up to 0.2 SE in all); unit 5 costs 3 SE
    costs = {"a": torch.tensor([0.0, 0.0, 0.1, 0.05, 0.05, 3.0]) * se,
             "b": torch.full((4,), 3.0) * se}
    rem = one_se_removal(scores, _ll_fn(base, costs), candidates=10)
    assert rem["a"].tolist() == [True] * 5 + [False]
    assert not rem["b"].any()
    assert rem.ll >= rem.ll_full - rem.se
    # the same with unit 5 costing 0.5 SE: it goes too (the rule can tell the difference)
    costs["a"][5] = 0.5 * se
    rem = one_se_removal(scores, _ll_fn(base, costs), candidates=10)
    assert rem["a"].all() is not True and int(rem["a"].sum()) == 5  # keep_one keeps the last
    costs["a"][:] = 0.0
    rem = one_se_removal(scores, _ll_fn(base, costs), candidates=10, keep_one=False)
    assert rem["a"].all() and not rem["b"].any()


def test_one_se_removal_errors():
    with pytest.raises(ValueError, match="candidates"):
        one_se_removal({"a": torch.ones(2)}, lambda r: torch.zeros(3), candidates=0)
    with pytest.raises(ValueError, match="finite"):
        one_se_removal({"a": torch.tensor([1.0, math.nan])}, lambda r: torch.zeros(3))


def _site_q(law, loc=-0.5, log_scale=-0.35667494393873245):  # log 0.7
    model = nn.Sequential(sd.nn.UnitNoise(law, normalize=False), nn.Linear(3, 2))
    x, y = torch.randn(8, 3), torch.randint(0, 2, (8,))
    fit = C.fit_scales(model, x, y, epochs=1, batch_size=8, lr=0.0, q_lr=0.0, progress=False)
    q = fit._q("0.xi")
    with torch.no_grad():
        q.loc.fill_(loc)
        q.log_scale.fill_(log_scale)
    return q


def test_horseshoe_kl_by_quadrature_matches_monte_carlo():
    law = sd.noise.HalfCauchy(1.0)
    q = _site_q(law)
    g = torch.Generator().manual_seed(0)
    s = math.exp(q.log_scale[0].item())
    lx = q.loc[0].item() + s * torch.randn(100_000, generator=g)
    log_q = torch.distributions.LogNormal(q.loc[0].item(), s).log_prob(lx.exp())
    mc = (log_q - law.log_prob(lx.exp())).mean().item() * 3
    sem = (log_q - law.log_prob(lx.exp())).std().item() * 3 / math.sqrt(100_000)
    assert abs(q.kl().item() - mc) < 5 * sem


def test_sbp_kl_is_the_closed_form():
    law = sd.noise.LogUniform(math.exp(-20), math.exp(2))
    q = _site_q(law, loc=-2.0, log_scale=0.1)
    want = 3 * sd.noise.kl_lognormal_log_uniform(torch.tensor(-2.0), torch.tensor(math.exp(0.1)),
                                                 math.exp(-20), math.exp(2))
    assert q.kl().item() == pytest.approx(float(want), rel=1e-6)


def test_fit_scales_ranks_relevant_inputs_above_noise():
    g = torch.Generator().manual_seed(0)
    X = torch.randn(800, 6, generator=g)
    y = ((X[:, 0] + X[:, 1]) > 0).long()
    torch.manual_seed(0)
    model = nn.Sequential(sd.nn.UnitNoise(sd.noise.Bernoulli(0.5), normalize=False),
                          nn.Linear(6, 16), nn.ReLU(), nn.Linear(16, 2))
    fit = C.fit_scales(model, X, y, epochs=8, batch_size=100, q_lr=0.1, sigma0=0.3,
                       progress=False)
    p = fit.scores()["0.xi"]
    assert p[:2].min() > p[2:].max(), p
    scales = fit.scales({"0.xi": p < p[:2].min()})
    assert scales["0.xi"].tolist() == [1, 1, 0, 0, 0, 0]


class _Fit:
    """A read-out whose scales are 0 for the removed units and 1 otherwise."""

    def scales(self, removed):
        return {k: (~m).float() for k, m in removed.items()}


def _two_site_net():
    """A 10-40-3 net with a Bernoulli scale per input (``0.xi``) and per hidden unit
    (``3.xi``), an example input and random posterior scores for both sites (seed 0)."""
    torch.manual_seed(0)
    law = sd.noise.Bernoulli(0.5)
    net = nn.Sequential(sd.nn.UnitNoise(law, normalize=False), nn.Linear(10, 40), nn.ReLU(),
                        sd.nn.UnitNoise(law, normalize=False), nn.Linear(40, 3))
    x = torch.randn(2, 10)
    return net, x, {"0.xi": torch.rand(10), "3.xi": torch.rand(40)}


def test_flops_removal_is_the_largest_uniform_fraction_reaching_the_target():
    """``--flops-target``: every site keeps the same fraction (its lowest-scored units go), the
    largest fraction whose compacted net has at most 1/factor of the FLOPs: the next fraction
    up (one more unit kept in the site that gains one first) would miss the target."""
    import math

    from shrinkdrop.experiments.compress.methods import flops_removal

    net, x, scores = _two_site_net()
    dense = C.count_flops(net, x)
    rem = flops_removal(net, _Fit(), scores, x, 2.0)
    assert C.count_flops(C.compact(net, _Fit().scales(rem), x), x) <= dense / 2
    k = {n: int(m.sum()) for n, m in rem.items()}
    for n, m in rem.items():  # in each site the lowest-scored units go
        assert 0 < k[n] < m.numel() and scores[n][m].max() < scores[n][~m].min()
    # one common fraction f: k_s = floor((1 - f) n_s) for every site
    lo = max(1 - (k[n] + 1) / scores[n].numel() for n in k)
    hi = min(1 - k[n] / scores[n].numel() for n in k)
    assert lo < hi
    # the next fraction up keeps one more unit somewhere and misses the target
    f2 = hi + 1e-9
    sc = {}
    for n, v in scores.items():
        m = torch.zeros(v.numel(), dtype=torch.bool)
        m[v.argsort()[:math.floor((1 - f2) * v.numel())]] = True
        sc[n] = (~m).float()
    assert C.count_flops(C.compact(net, sc, x), x) > dense / 2


def test_fit_scales_stops_on_a_non_finite_loss_saying_where():
    """A diverged fit (here: a NaN in the data) stops with NonFiniteLossError naming the epoch
    and batch (rows are shuffled: batch 0 or 1), not a NaN posterior or an error from inside
    a distribution."""
    law = sd.noise.LogUniform(math.exp(-20.0), math.exp(2.0))
    net = nn.Sequential(sd.nn.UnitNoise(law, normalize=False), nn.Linear(4, 2))
    X, y = torch.randn(64, 4), torch.randint(0, 2, (64,))
    X[40, 1] = float("nan")
    with pytest.raises(sd.errors.NonFiniteLossError, match=r"loss is nan at epoch 0, batch [01] "):
        C.fit_scales(net, X, y, epochs=2, batch_size=32, seed=0, progress=False)


def test_snr_score_of_a_point_mass_q_is_finite_and_ordered():
    """SBP's signal-to-noise score at log s = -60 / -200 (s^2 underflows float32): finite,
    larger than at log s = -5, and 1 / sqrt(expm1(s^2)) where that is representable."""
    from shrinkdrop.compress.fit import _Q

    law = sd.noise.LogUniform(math.exp(-20.0), math.exp(2.0))
    site = type("S", (), {"noise": law, "shape": (4,)})()
    q = _Q(site, 0.95, 0.0)
    with torch.no_grad():
        q.log_scale.copy_(torch.tensor([-200.0, -60.0, -5.0, 0.5]))
    sc = q.score()
    assert bool(torch.isfinite(sc).all()) and sc[0] >= sc[1] > sc[2] > sc[3] > 0
    want = 1 / math.sqrt(math.expm1(math.exp(2 * 0.5)))
    assert float(sc[3]) == pytest.approx(want, rel=1e-5)
    assert float(sc[2]) == pytest.approx(1 / math.sqrt(math.expm1(math.exp(-10.0))), rel=1e-5)


def test_log_normal_q_with_a_huge_log_scale_stays_finite():
    """An unused unit's log s driven past any sensible value (SBP's KL pulls q towards the
    uniform prior): draws, KL, mean and score stay finite (exp(log s) * z was inf * 0)."""
    from shrinkdrop.compress.fit import _Q, LOG_SCALE_MAX

    for law in (sd.noise.LogUniform(math.exp(-20.0), math.exp(2.0)), sd.noise.HalfCauchy(1.0)):
        site = type("S", (), {"noise": law, "shape": (3,)})()
        q = _Q(site, 0.95, 0.0)
        with torch.no_grad():
            q.log_scale.copy_(torch.tensor([1e4, 200.0, LOG_SCALE_MAX + 1]))  # all past the cap
        x = q.rsample(64, 0.5, torch.Generator().manual_seed(0))
        k = q.kl()
        k.backward()
        for t in (x, k, q.mean(), q.score()):
            assert bool(torch.isfinite(t).all())
        assert bool((q.log_scale.grad == 0).all())  # past the cap: flat


def test_log_normal_q_draws_far_beyond_the_bounds_have_finite_gradients():
    """loc far above the prior's interval (exp overflows float32): the draws sit at the bound
    and the gradient is finite (an exp clamped after overflowing gave 0 * inf = nan)."""
    from shrinkdrop.compress.fit import _Q

    law = sd.noise.LogUniform(math.exp(-20.0), math.exp(2.0))
    site = type("S", (), {"noise": law, "shape": (2,)})()
    q = _Q(site, 0.95, 0.0)
    with torch.no_grad():
        q.loc.copy_(torch.tensor([95.0, 0.0]))
    x = q.rsample(32, 0.5, torch.Generator().manual_seed(0))
    x.sum().backward()
    assert bool(torch.isfinite(q.loc.grad).all() & torch.isfinite(q.log_scale.grad).all())
    assert float(x.detach()[:, 0].min()) == pytest.approx(math.exp(2.0))


def test_validation_removal_spends_the_flops_where_the_validation_rows_lose_least():
    """``--allocation validation``: units leave each site in posterior order, and the site of
    each step is the one losing the least validation LL per FLOP saved. With a validation LL
    that only penalises removing hidden units, the inputs go first (7 of 10 reach half the
    FLOPs: 2 (10 - k) 40 + 240 <= 520); with the penalty on the inputs instead, hidden units
    go (20 of 40: 26 (40 - j) <= 520), two at a time (5% of 40)."""
    from shrinkdrop.experiments.compress.methods import validation_removal

    net, x, scores = _two_site_net()
    dense = C.count_flops(net, x)
    assert dense == 1040
    for costly, want in (("3.xi", {"0.xi": 7, "3.xi": 0}), ("0.xi", {"0.xi": 0, "3.xi": 20})):
        def loglik(rem, costly=costly):
            return -torch.full((5,), float(rem[costly].sum()))

        rem = validation_removal(net, _Fit(), scores, x, 2.0, loglik)
        assert {n: int(m.sum()) for n, m in rem.items()} == want
        assert C.count_flops(C.compact(net, _Fit().scales(rem), x), x) <= dense / 2
        for n, m in rem.items():  # the lowest-scored units of a site go
            if 0 < int(m.sum()):
                assert scores[n][m].max() < scores[n][~m].min()
    # an unreachable target stops with one unit per site
    rem = validation_removal(net, _Fit(), scores, x, 1000.0, lambda r: torch.zeros(5))
    assert {n: int(m.sum()) for n, m in rem.items()} == {"0.xi": 9, "3.xi": 39}
