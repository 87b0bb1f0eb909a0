"""The methods of the UCI benchmark: their names (the method grammar) and their grids.

A *method* is ``<family>-<objective>`` (``bernoulli-mc`` is MC dropout), the same with ``+tau``
(the likelihood's precision fitted on the validation rows), or ``<family>-mcmc`` (posterior
sampling). :func:`parse_methods` reads the comma-separated lists the command line takes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from ...data import UCIData
from ...enums import Objective
from ...noise import FAMILIES, NoiseDistribution

__all__ = [
    "Config",
    "OBJECTIVES", "METHODS", "MCMC_FAMILIES", "MCMC_METHODS", "TAU_SUFFIX", "TAU_METHODS",
    "TAU_FIT_SAMPLES", "ALL_METHODS", "DEFAULT_METHODS", "QUICK_METHODS", "HALF_CAUCHY_SCALES",
    "matched_noise", "method_configs", "split_method", "fits_tau", "base_method",
    "parse_methods",
]

#: the training objectives (names of ``shrinkdrop.enums.Objective``)
OBJECTIVES: tuple[str, ...] = tuple(o.value for o in Objective)

#: every method: ``<family>-<objective>``; ``bernoulli-mc`` is MC dropout
METHODS: tuple[str, ...] = tuple(f"{f}-{o}" for f in FAMILIES for o in OBJECTIVES)

#: families sampled by MCMC: every continuous family NUTS takes through ``pyro_law`` (EP,
#: non-centred) and Bernoulli through the Gibbs sampler
MCMC_FAMILIES: tuple[str, ...] = tuple(FAMILIES)

#: ``<family>-mcmc``: posterior sampling, only on small data sets (``Settings.mcmc_max_rows``);
#: not part of ``all`` (each is one MCMC run per grid point: minutes per unit, not seconds)
MCMC_METHODS: tuple[str, ...] = tuple(f"{f}-mcmc" for f in MCMC_FAMILIES)

#: ``<method>+tau``: the same training, but the Gaussian likelihood's precision is fitted on the
#: validation rows (:func:`shrinkdrop.train.fit_predictive_precision`) instead of taken
#: from the grid, and the refit is scored at the fitted value (regression only)
TAU_SUFFIX = "+tau"
TAU_METHODS: tuple[str, ...] = tuple(m + TAU_SUFFIX for m in METHODS)

#: MC draws per validation row from which ``+tau`` methods fit the precision (the validation
#: and test log-likelihoods themselves are then computed on ``test_samples`` fresh draws)
TAU_FIT_SAMPLES = 1000

#: every method name the runner accepts, in table order (each method beside its ``+tau``)
ALL_METHODS: tuple[str, ...] = tuple(x for m in METHODS for x in (m, m + TAU_SUFFIX)) \
    + MCMC_METHODS

#: the methods run when none are asked for: MC dropout and its ``+tau`` twin (one training
#: shared by the two; the pair of the README's table). Every training method (``all``, 21) is
#: far too slow for a first run: each method is a stacked training of its own, the 14
#: ``marginal_map`` / ``tail_adaptive`` ones on 5 draws per row (docs/uci.md, "Methods")
DEFAULT_METHODS = ("bernoulli-mc", "bernoulli-mc+tau")

QUICK_METHODS = ("bernoulli-mc", "bernoulli-mc+tau", "gaussian-marginal_map")

#: half-Cauchy noise cannot be normalised to mean 1; it gets its own scale grid
HALF_CAUCHY_SCALES = (0.5, 1.0, 2.0)


@dataclass(frozen=True)
class Config:
    """One grid point: a noise law (with its matched dropout rate) and tau."""

    family: str
    params: tuple[tuple[str, float], ...]
    rate: float  # the dropout rate this noise is matched to (enters the weight decay)
    tau: float  # NaN for MCMC methods: the noise precision is a latent variable there
    normalize: bool = True

    def label(self) -> str:
        """The grid point as the ``config`` column shows it."""
        ps = ",".join(f"{k}={v:.6g}" for k, v in self.params)
        tau = "precision learnt" if math.isnan(self.tau) else f"tau={self.tau:g}"
        return f"{self.family}({ps}) rate={self.rate:g} {tau}"

    def noise(self) -> NoiseDistribution:
        """A fresh noise law of this grid point."""
        cls = FAMILIES[self.family]
        return cls(**dict(self.params))


def matched_noise(family: str, rate: float) -> dict[str, float] | None:
    """Noise parameters whose mean-normalised noise has the variance of dropout at ``rate``:
    the family's own answer, :meth:`shrinkdrop.noise.NoiseDistribution.matched_to_dropout`
    (Bernoulli ``keep = 1 - p``, Gaussian dropout, Rayleigh's one point, the others solved
    numerically). None where the family cannot reach that variance (e.g. Uniform needs
    ``p / (1 - p) <= 1/3``) or ``p = 0`` for a continuous family."""
    if family not in FAMILIES:
        raise ValueError(f"family has to be one of {', '.join(FAMILIES)}, but got {family!r}")
    return FAMILIES[family].matched_to_dropout(rate)


def method_configs(method: str, data: UCIData, quick: bool = False) -> tuple[Config, ...]:
    """The grid of one method on one data set: noise parameter x tau.

    Rates come from the data set's ``dropout_rates`` and taus from ``tau_values``. ``quick``
    keeps the smallest and largest rate and the middle tau. MCMC methods have the same noise
    laws and no tau (the precision is learnt: ``Config.tau`` is NaN).
    """
    family, objective = split_method(method)
    rates = list(data.dropout_rates)
    taus = list(data.tau_values) if objective != "mcmc" else [math.nan]
    if quick:
        rates = sorted({min(rates), max(rates)})
        taus = [sorted(taus)[len(taus) // 2]] if objective != "mcmc" else taus
    noises: list[tuple[dict, float, bool]] = []
    if family == "half_cauchy":
        noises = [({"scale": s}, 0.0, False) for s in HALF_CAUCHY_SCALES]
        if quick:
            noises = noises[1:2]
    else:
        seen = set()
        for r in rates:
            params = matched_noise(family, r)
            if params is None:
                continue
            key = tuple(sorted(params.items()))
            if key in seen:  # Rayleigh: every rate gives the same normalised noise
                continue
            seen.add(key)
            noises.append((params, 0.0 if family == "rayleigh" else r, True))
    return tuple(Config(family, tuple(p.items()), rate, tau, norm)
                 for p, rate, norm in noises for tau in taus)


def split_method(method: str) -> tuple[str, str]:
    """``(family, objective)`` of a method name (``+tau`` dropped)."""
    if method not in ALL_METHODS:
        raise ValueError(f"method has to be one of {', '.join(ALL_METHODS)}, but got "
                         f"{method!r}")
    return base_method(method).split("-", 1)  # type: ignore[return-value]


def fits_tau(method: str) -> bool:
    """Whether ``method`` fits the likelihood's precision on the validation rows (``+tau``)."""
    return method.endswith(TAU_SUFFIX)


def base_method(method: str) -> str:
    """The method without ``+tau``: its training (and its networks: the same seeds)."""
    return method[: -len(TAU_SUFFIX)] if fits_tau(method) else method


def parse_methods(text: str) -> list[str]:
    """The methods a comma-separated list names, in order, without repeats.

    Each item is a method name, a family alone (its training objectives, not ``mcmc``),
    ``<family>+tau`` likewise, ``all`` (every training method), ``all+tau`` or ``mcmc`` (every
    MCMC method). An unknown item is a ValueError that lists the valid names.
    """
    out: list[str] = []
    for t in (t.strip() for t in text.split(",")):
        if not t:
            continue
        if t in FAMILIES:  # a family alone means all its training objectives (not mcmc)
            out += [f"{t}-{o}" for o in OBJECTIVES]
        elif t.endswith(TAU_SUFFIX) and t[: -len(TAU_SUFFIX)] in FAMILIES:
            out += [f"{t[: -len(TAU_SUFFIX)]}-{o}{TAU_SUFFIX}" for o in OBJECTIVES]
        elif t in ALL_METHODS:
            out.append(t)
        elif t == "all":
            out += list(METHODS)
        elif t == "all" + TAU_SUFFIX:
            out += list(TAU_METHODS)
        elif t == "mcmc":
            out += list(MCMC_METHODS)
        else:
            raise ValueError(
                f"unknown method {t!r}; methods are <family>-<objective> with family in "
                f"{', '.join(FAMILIES)} and objective in {', '.join(OBJECTIVES)}, the same "
                f"with {TAU_SUFFIX} (the likelihood's precision fitted on the validation rows), "
                f"or <family>-mcmc for family in {', '.join(MCMC_FAMILIES)} (or a family alone "
                f"or <family>{TAU_SUFFIX}, 'all' or 'all{TAU_SUFFIX}' for the training methods, "
                f"'mcmc' for the MCMC ones); valid names: {', '.join(ALL_METHODS)}")
    return list(dict.fromkeys(out))
