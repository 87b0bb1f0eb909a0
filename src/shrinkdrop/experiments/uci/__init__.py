"""The UCI regression benchmark of MC dropout, over every noise family.

Protocol (Gal & Ghahramani 2016, their ``DropoutUncertaintyExps`` code; see ``docs/uci.md``):
per split, the training rows are cut in index order into an inner 80/20 train/validation split;
every configuration (noise parameter x tau) is trained on the inner 80% with inputs and targets
standardised on it and scored on the 20% by MC-averaged log-likelihood; the best configuration is
refitted on the whole training split (standardised on it) and evaluated on the test split: RMSE of
the MC predictive mean and log-likelihood by MC averaging (logsumexp over samples), both in the
target's original units. Network: noise on the inputs -> n_hidden ReLU units -> noise -> linear
output, i.e. MC dropout's network with dropout replaced by ARD noise of each family. Weight decay
is Gal's ``l^2 (1 - p) / (2 N tau)`` with length scale ``l = 1e-2``; batch size 128; Adam.

A *method* is ``<family>-<objective>`` (``bernoulli-mc`` is MC dropout), or
``<family>-mcmc``: the same network as a Bayesian model in the EP (non-centred) parametrization,
its posterior sampled by Pyro's NUTS (Bernoulli scales: Gibbs alternating with NUTS,
:mod:`shrinkdrop.inference`), with the Gaussian noise precision learnt as a latent variable; the
grid is then the noise law alone, and the test metrics are those of the posterior predictive. MCMC
methods run only where the training split has at most ``Settings.mcmc_max_rows`` rows; elsewhere
the unit is recorded as skipped (a row with a ``note``, listed in ``summary.md``). Every run unit
(data set x split x method) is written atomically to ``OUT/parts/``; ``results.csv`` and
``summary.md`` are rebuilt from the parts after each unit. Rerunning the same command resumes.

Modules: :mod:`~shrinkdrop.experiments.uci.methods` (method names and grids),
:mod:`~shrinkdrop.experiments.uci.settings` (settings, units, the tasks of a run),
:mod:`~shrinkdrop.experiments.uci.scoring` (what both engines share),
:mod:`~shrinkdrop.experiments.uci.unit` (the per-unit engine),
:mod:`~shrinkdrop.experiments.uci.stacked` (the stacked engine),
:mod:`~shrinkdrop.experiments.uci.validation`, :mod:`~shrinkdrop.experiments.uci.run` (the run,
its store and work items) and :mod:`~shrinkdrop.experiments.uci.summary`.
"""

from __future__ import annotations

from .methods import (
    ALL_METHODS,
    DEFAULT_METHODS,
    HALF_CAUCHY_SCALES,
    MCMC_FAMILIES,
    MCMC_METHODS,
    METHODS,
    OBJECTIVES,
    QUICK_METHODS,
    TAU_FIT_SAMPLES,
    TAU_METHODS,
    TAU_SUFFIX,
    Config,
    base_method,
    fits_tau,
    matched_noise,
    method_configs,
    parse_methods,
)
from .run import make_groups, run_group, run_uci, select_rows
from .settings import (
    COLUMNS,
    ENGINES,
    MCMC_DEFAULTS,
    MCMC_QUICK,
    PROTOCOL_VERSION,
    Engine,
    Settings,
    UnitTask,
    make_tasks,
    unit_seed,
)
from .stacked import evaluate_stacked
from .summary import write_summary
from .unit import evaluate_unit
from .validation import check_device

__all__ = [
    "METHODS", "DEFAULT_METHODS", "QUICK_METHODS", "OBJECTIVES", "MCMC_METHODS",
    "ALL_METHODS", "MCMC_FAMILIES", "HALF_CAUCHY_SCALES", "Settings", "Config", "UnitTask",
    "matched_noise", "method_configs", "parse_methods", "make_tasks", "unit_seed",
    "evaluate_unit", "run_uci", "select_rows", "write_summary", "COLUMNS", "PROTOCOL_VERSION",
    "ENGINES", "Engine", "MCMC_DEFAULTS", "MCMC_QUICK", "evaluate_stacked", "make_groups",
    "run_group",
    "TAU_METHODS", "TAU_SUFFIX", "TAU_FIT_SAMPLES", "base_method", "fits_tau", "check_device",
]
