"""Training: objectives, likelihoods, weight priors, S-sample prediction, precision fitting and
the training loop (Nalisnick & Smyth, "Unifying the Dropout Family Through Structured Shrinkage
Priors", Sec. 3-4).

* :mod:`~shrinkdrop.train.objectives`: the MC, marginal-MAP and tail-adaptive objectives over
  ``(S, ...)`` per-draw log-likelihoods;
* :mod:`~shrinkdrop.train.likelihoods`: the per-example Gaussian and categorical
  log-likelihoods (the one home of the Gaussian log density);
* :mod:`~shrinkdrop.train.weight_priors`: EP and HP log priors of the weights, weight decay;
* :mod:`~shrinkdrop.train.prediction`: outputs under ``S`` noise draws in one batched pass,
  predictive means and predictive log-likelihoods;
* :mod:`~shrinkdrop.train.precision`: the Gaussian precision fitted on held-out rows;
* :mod:`~shrinkdrop.train.loss`: :class:`ShrinkageLoss`, the objective and the weight prior as
  one loss usable from any training loop (Lightning, the Hugging Face Trainer, your own);
* :mod:`~shrinkdrop.train.uncertainty`: :func:`predictive`, the predictive mean, variance
  (epistemic + aleatoric), intervals, entropy and mutual information, streamed in chunks;
* :mod:`~shrinkdrop.train.loop`: :func:`fit`, Adam on any ``nn.Module`` under noise, from
  tensors, a ``Dataset`` or a ``DataLoader``, with early stopping on validation data.
"""

from __future__ import annotations

from ..enums import Likelihood, Objective, PredictMode
from ..errors import InfiniteObjectiveError, NonFiniteLossError
from .likelihoods import (
    bernoulli_log_likelihood,
    categorical_log_likelihood,
    gaussian_log_likelihood,
    log_likelihood,
)
from .loop import History, fit
from .loss import ShrinkageLoss
from .objectives import marginal_map, mc_objective, objective, tail_adaptive, tail_adaptive_weights
from .precision import fit_predictive_precision, fit_predictive_tau
from .prediction import (
    noise_on,
    predict,
    predictive_log_likelihood,
    predictive_log_likelihoods,
    sample_outputs,
)
from .uncertainty import Predictive, predictive
from .weight_priors import (
    expected_log_prior_hp,
    log_prior_ep,
    log_prior_hp,
    noisy_weights,
    weight_decay,
)

__all__ = [
    "Objective",
    "Likelihood",
    "PredictMode",
    "InfiniteObjectiveError",
    "mc_objective",
    "marginal_map",
    "tail_adaptive",
    "tail_adaptive_weights",
    "objective",
    "weight_decay",
    "log_prior_ep",
    "log_prior_hp",
    "expected_log_prior_hp",
    "noisy_weights",
    "sample_outputs",
    "noise_on",
    "predict",
    "gaussian_log_likelihood",
    "categorical_log_likelihood",
    "log_likelihood",
    "predictive_log_likelihoods",
    "predictive_log_likelihood",
    "fit_predictive_precision",
    "fit_predictive_tau",
    "fit",
    "History",
    "bernoulli_log_likelihood",
    "ShrinkageLoss",
    "NonFiniteLossError",
    "predictive",
    "Predictive",
]
