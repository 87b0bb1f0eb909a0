"""Inference beyond MAP: NUTS on EP / HP models, Gibbs for Bernoulli scales, VI, read-outs."""

from .diagnostics import (
    ESS_MIN,
    RHAT_MAX,
    MixingVerdict,
    mixing_verdict,
    site_diagnostics,
    summarize,
)
from .gibbs import GibbsResult, gibbs_bernoulli
from .models import (
    Likelihood,
    NetSpec,
    NutsResult,
    Param,
    ScaleSite,
    Structure,
    effective_weights,
    fit_map_noise,
    flatten_chains,
    forward,
    log_likelihood,
    make_model,
    predictive_metrics,
    pyro_law,
    run_nuts,
)
from .readout import (
    ImportanceReadout,
    conditional_readout,
    importance_readout,
    inclusion_probabilities,
    readout_table,
    relevance_auc,
    shrinkage_factors,
)

__all__ = [
    "Likelihood", "NetSpec", "NutsResult", "Param", "ScaleSite", "Structure",
    "effective_weights", "flatten_chains", "forward", "log_likelihood", "make_model",
    "predictive_metrics", "pyro_law", "run_nuts", "fit_map_noise",
    "ImportanceReadout", "conditional_readout", "importance_readout", "inclusion_probabilities",
    "readout_table",
    "relevance_auc", "shrinkage_factors", "site_diagnostics", "summarize", "GibbsResult",
    "ESS_MIN", "RHAT_MAX", "MixingVerdict", "mixing_verdict",
    "gibbs_bernoulli",
]
from .svi import SVIResult, SVISite, fit_svi, given_scales, scale_sites  # noqa: E402

__all__ += ["SVIResult", "SVISite", "fit_svi", "given_scales", "scale_sites"]
from .linear_ss import LinearSSResult, linear_spike_slab, log_marginal  # noqa: E402

__all__ += ["LinearSSResult", "linear_spike_slab", "log_marginal"]
from .readout import Removal, median_probability_rule, one_se_removal  # noqa: E402

__all__ += ["Removal", "median_probability_rule", "one_se_removal"]
# ---- issue 29 (mcmc29): the compiled backend (JAX imported only when these are called)
from .jax_models import numpyro_model, run_nuts_jax  # noqa: E402

__all__ += ["numpyro_model", "run_nuts_jax"]
