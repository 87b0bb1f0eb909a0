"""The summary statistics the experiments report: mean and standard error over seeds or splits,
and how they are printed."""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

__all__ = ["mean_se", "decimals", "pm"]


def mean_se(values: Iterable[float], *, skip_nan: bool = True,
            skip_inf: bool = True) -> tuple[float, float]:
    """Mean and standard error of the mean (``std(ddof=1) / sqrt(n)``; NaN for one value) of
    ``values``, leaving out NaNs (``skip_nan``) and infinities (``skip_inf``); NaNs when nothing
    is left."""
    v = np.asarray(list(values), dtype=np.float64).reshape(-1)
    keep = np.ones(v.shape, dtype=bool)
    if skip_nan:
        keep &= ~np.isnan(v)
    if skip_inf:
        keep &= ~np.isinf(v)
    v = v[keep]
    if v.size == 0:
        return math.nan, math.nan
    se = float(v.std(ddof=1) / math.sqrt(v.size)) if v.size > 1 else math.nan
    return float(v.mean()), se


def decimals(mean: float, se: float) -> int:
    """Decimals for "mean ± se": at least 3, and enough to show two significant figures of the
    standard error (of the mean when there is none), so that naval's RMSE of 0.0008 +- 0.00005
    is not printed as 0.001 ± 0.000."""
    scale = se if math.isfinite(se) and se > 0 else abs(mean)
    if not math.isfinite(scale) or scale == 0:
        return 3
    return min(8, max(3, 1 - math.floor(math.log10(scale))))


def pm(mean: float, se: float, digits: int | None = None) -> str:
    """``mean ± se`` (``-`` for a NaN mean, the mean alone for a NaN SE), with
    :func:`decimals` decimals unless ``digits`` is given."""
    if not math.isfinite(mean):
        return "-"
    digits = decimals(mean, se) if digits is None else digits
    if not math.isfinite(se):
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {se:.{digits}f}"
