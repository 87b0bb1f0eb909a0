"""Inference beyond MAP: NUTS on EP / HP models, Gibbs for Bernoulli scales, VI, read-outs."""

from .models import (
    Likelihood,
    NetSpec,
    NutsResult,
    Param,
    ScaleSite,
    Structure,
    effective_weights,
    flatten_chains,
    forward,
    log_likelihood,
    make_model,
    predictive_metrics,
    pyro_law,
    run_nuts,
)

__all__ = [
    "Likelihood", "NetSpec", "NutsResult", "Param", "ScaleSite", "Structure",
    "effective_weights", "flatten_chains", "forward", "log_likelihood", "make_model",
    "predictive_metrics", "pyro_law", "run_nuts",
]
