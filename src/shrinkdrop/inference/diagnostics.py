"""MCMC diagnostics over draws shaped (chain, draw, ...): Pyro's ESS and split R-hat, and the
mixing verdict that ``shrinkdrop mcmc`` attaches to every run."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from pyro.ops.stats import effective_sample_size, split_gelman_rubin

from .._validation import check_positive

__all__ = ["site_diagnostics", "summarize", "MixingVerdict", "mixing_verdict", "RHAT_MAX",
           "ESS_MIN"]

#: a run has mixed when the largest split R-hat of the checked quantities is below this
#: (Gelman et al., BDA3 Sec. 11.4; Vehtari et al. 2021 argue for 1.01 with long chains, which the
#: short runs here cannot resolve: 1.1 is what they can)
RHAT_MAX = 1.1
#: ... and their smallest ESS (over all chains) is at least this: below ~100 draws' worth of
#: information R-hat itself is unreliable and posterior means carry >= 10% of a posterior sd of
#: Monte Carlo error (Vehtari et al. 2021 use 100 per chain; 100 in all is the floor here)
ESS_MIN = 100.0


def site_diagnostics(draws: torch.Tensor) -> tuple[float, float]:
    """(min ESS, max split R-hat) over the elements of one site's draws (chain, draw, ...).

    Elements that never move (e.g. a Bernoulli scale stuck at 1) have undefined ESS / R-hat and
    are skipped; a site with no moving element gives ``(nan, nan)``.
    """
    if not isinstance(draws, torch.Tensor) or draws.ndim < 2 or min(draws.shape[:2]) < 1:
        got = tuple(draws.shape) if isinstance(draws, torch.Tensor) else type(draws).__name__
        raise ValueError(f"draws has to be a tensor of shape (chain, draw, ...), but got {got}")
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


@dataclass(frozen=True)
class MixingVerdict:
    """Whether chains mixed: ``mixed``, the ``reasons`` they did not (empty when they did), the
    ``worst`` site by R-hat and the thresholds used."""

    mixed: bool
    reasons: tuple[str, ...]
    worst: str | None
    rhat_max: float
    ess_min: float

    def text(self) -> str:
        if self.mixed:
            return (f"mixed: max R-hat < {self.rhat_max:g} and min ESS >= {self.ess_min:g} on "
                    "the checked quantities")
        return "DID NOT MIX: " + "; ".join(self.reasons)


def mixing_verdict(diag: dict, *, rhat_max: float = RHAT_MAX, ess_min: float = ESS_MIN
                   ) -> MixingVerdict:
    """The verdict on a :func:`summarize` result: mixed iff ``max_rhat < rhat_max`` and
    ``min_ess >= ess_min``; undefined (NaN) diagnostics count as not mixed.

    Example:
        >>> v = mixing_verdict(summarize({"a": draws}))  # draws (chain, draw)
        >>> v.mixed, v.text()
    """
    check_positive("rhat_max", rhat_max)
    check_positive("ess_min", ess_min)
    if not rhat_max >= 1:
        raise ValueError(f"rhat_max has to be >= 1 (R-hat is 1 for chains that agree), but got "
                         f"{rhat_max}")
    rhat_max, ess_min = float(rhat_max), float(ess_min)
    per = diag.get("per_site", {})
    rh, ess = diag["max_rhat"], diag["min_ess"]
    worst = None
    finite = {k: v["max_rhat"] for k, v in per.items() if math.isfinite(v["max_rhat"])}
    if finite:
        worst = max(finite, key=finite.get)
    reasons = []
    if not (math.isfinite(rh) and rh < rhat_max):
        where = f" ({worst})" if worst else ""
        reasons.append(f"max R-hat {rh:.3g} >= {rhat_max:g}{where}: chains disagree")
    if not (math.isfinite(ess) and ess >= ess_min):
        low = {k: v["min_ess"] for k, v in per.items() if math.isfinite(v["min_ess"])}
        where = f" ({min(low, key=low.get)})" if low else ""
        reasons.append(f"min ESS {ess:.3g} < {ess_min:g}{where}: too few effective draws")
    return MixingVerdict(not reasons, tuple(reasons), worst, rhat_max, ess_min)
