"""MCMC diagnostics over draws shaped (chain, draw, ...): Pyro's ESS and split R-hat."""

from __future__ import annotations

import math

import torch
from pyro.ops.stats import effective_sample_size, split_gelman_rubin

__all__ = ["site_diagnostics", "summarize"]


def site_diagnostics(draws: torch.Tensor) -> tuple[float, float]:
    """(min ESS, max split R-hat) over the elements of one site's draws (chain, draw, ...).

    Elements that never move (e.g. a Bernoulli scale stuck at 1) have undefined ESS / R-hat and
    are skipped; a site with no moving element gives ``(nan, nan)``.
    """
    x = draws.detach().double()
    ess = effective_sample_size(x, chain_dim=0, sample_dim=1).reshape(-1)
    rhat = split_gelman_rubin(x, chain_dim=0, sample_dim=1).reshape(-1)
    ok = torch.isfinite(ess) & torch.isfinite(rhat)
    if not ok.any():
        return math.nan, math.nan
    return ess[ok].min().item(), rhat[ok].max().item()


def summarize(samples: dict[str, torch.Tensor], seconds: float | None = None) -> dict:
    """``min_ess``, ``max_rhat`` over all sites (and per site), ``ess_per_second`` if timed."""
    per = {k: site_diagnostics(v) for k, v in samples.items()}
    ess = [e for e, _ in per.values() if not math.isnan(e)]
    rh = [r for _, r in per.values() if not math.isnan(r)]
    out = {
        "min_ess": min(ess) if ess else math.nan,
        "max_rhat": max(rh) if rh else math.nan,
        "per_site": {k: {"min_ess": e, "max_rhat": r} for k, (e, r) in per.items()},
    }
    if seconds is not None:
        out["ess_per_second"] = out["min_ess"] / seconds if seconds > 0 else math.nan
    return out
