"""MCMC diagnostics and the mixing verdict on chains whose behaviour is known by construction.

Split R-hat is checked against a NumPy transcription of BDA3's formula (Gelman et al. 2013,
Sec. 11.4; Pyro's estimator is the same, so they agree to rounding). Verdict cases use fixed
seeds: iid chains (R-hat ~1.00, ESS ~ the number of draws), chains with means 2 sd apart
(R-hat ~1.46, and a small ESS too), and AR(1) chains with coefficient 0.99 (ESS ~ S (1 - 0.99)
/ (1 + 0.99), ~10 over 4 x 500 draws); each sits far from the thresholds (1.1, 100), so a
fresh seed would flip none of them.
"""

import math

import numpy as np
import pytest
import torch

from shrinkdrop.inference import ESS_MIN, RHAT_MAX, mixing_verdict, site_diagnostics, summarize


def split_rhat_numpy(x: np.ndarray) -> float:
    """BDA3 split R-hat of draws (chain, draw)."""
    c, n = x.shape
    h = n // 2
    s = np.concatenate([x[:, :h], x[:, h:2 * h]], 0)
    m, n = s.shape
    means, var = s.mean(1), s.var(1, ddof=1)
    b, w = n * means.var(ddof=1), var.mean()
    return math.sqrt(((n - 1) / n * w + b / n) / w)


def ar1(chains, draws, phi, seed, offsets=None):
    g = torch.Generator().manual_seed(seed)
    e = torch.randn(chains, draws, generator=g, dtype=torch.float64)
    x = torch.empty_like(e)
    x[:, 0] = e[:, 0]
    for t in range(1, draws):
        x[:, t] = phi * x[:, t - 1] + math.sqrt(1 - phi**2) * e[:, t]
    if offsets is not None:
        x = x + torch.tensor(offsets, dtype=torch.float64)[:, None]
    return x


def test_split_rhat_matches_bda3():
    for seed, off in [(0, None), (1, [0, 0, 1, 1]), (2, [0, 3, 0, 0])]:
        x = ar1(4, 200, 0.5, seed, off)
        _, rh = site_diagnostics(x)
        assert rh == pytest.approx(split_rhat_numpy(x.numpy()), rel=1e-6)


def test_verdict_iid_chains_mix():
    v = mixing_verdict(summarize({"a": ar1(4, 500, 0.0, 0), "b": ar1(4, 500, 0.0, 1)}))
    assert v.mixed and v.reasons == () and v.text().startswith("mixed")
    assert (v.rhat_max, v.ess_min) == (RHAT_MAX, ESS_MIN) == (1.1, 100.0)


def test_verdict_separated_chains_do_not_mix():
    diag = summarize({"ok": ar1(4, 500, 0.0, 0), "bad": ar1(4, 500, 0.0, 1, [0, 0, 2, 2])})
    assert diag["per_site"]["bad"]["max_rhat"] > 1.3  # the construction: sqrt(1 + 8/7) ~ 1.46
    v = mixing_verdict(diag)
    assert not v.mixed and v.worst == "bad"
    assert "R-hat" in v.reasons[0] and "(bad)" in v.reasons[0]
    assert v.text().startswith("DID NOT MIX")


def test_verdict_sticky_chains_fail_on_ess():
    diag = summarize({"sticky": ar1(4, 500, 0.99, 3, )})
    assert diag["min_ess"] < 50
    v = mixing_verdict(diag, rhat_max=10.0)  # only the ESS floor can fail here
    assert not v.mixed and any("ESS" in r and "(sticky)" in r for r in v.reasons)
    assert mixing_verdict(diag, rhat_max=10.0, ess_min=1.0).mixed  # the floor is what decides


def test_verdict_undefined_is_not_mixed_and_bad_thresholds_are_named():
    v = mixing_verdict(summarize({"stuck": torch.ones(2, 10)}))
    assert not v.mixed and len(v.reasons) == 2
    with pytest.raises(ValueError, match="rhat_max"):
        mixing_verdict(summarize({"a": ar1(2, 10, 0.0, 0)}), rhat_max=0.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_diagnostics_agree_with_arviz(seed):
    """The summary's split R-hat is ArviZ's ``method="split"`` (the same BDA3 formula: to 1e-8);
    its ESS (Pyro's, Geyer's initial monotone sequence over whole chains) is within 8% of
    ArviZ's ``method="mean"`` (the same estimator over half-chains) on AR(0.7) chains of 300
    draws, one chain shifted by 0.3 sd; a wrong variance or lag sum misses by far more."""
    az = pytest.importorskip("arviz")
    x = ar1(4, 300, 0.7, seed, [0.0, 0.0, 0.3, 0.0])
    ds = az.convert_to_dataset({"a": x.numpy()})
    ess, rh = site_diagnostics(x)
    assert rh == pytest.approx(float(az.rhat(ds, method="split")["a"]), rel=1e-8)
    assert ess == pytest.approx(float(az.ess(ds, method="mean")["a"]), rel=0.08)
