"""The structured priors of section 5 on real data.

Three experiments, each a grid of (model, seed) trained with :func:`shrinkdrop.fit` (MC objective,
S = 1, Gaussian weight prior ``sigma0 = 1``) and scored on a fixed held-out split, so that the
seeds (initialisation, noise, minibatch order) give the error bars and every model sees the same
data:

* ``resnet``: a residual MLP with more blocks than the data need (6 of width 32) on scikit-learn's
  diabetes data, plain / ARD / ADD / ARD+ADD (section 5.1). Read-out of which blocks the data
  switch off: the exact posterior over the Bernoulli layer scales given the trained weights
  (:func:`shrinkdrop.experiments.models.layer_scale_posterior`) and each block's relative
  contribution ``||f_l(h)|| / ||h||``.
* ``cnn``: a 2-conv CNN on scikit-learn's 8x8 digits; the second conv carries the tied-channel,
  tied-filter or joint prior (Bernoulli and Gaussian noise of equal variance) against
  ``nn.Dropout2d`` and no noise (section 5.3).
* ``lstm``: next-quarter US inflation from 8-quarter windows of 10 macro series (statsmodels'
  bundled ``macrodata``, optional extra ``timeseries``); ``NoisyLSTM`` with tied and untied gate
  noise against input-only variational dropout (``nn.LSTM`` after a per-sequence mask) and no
  noise (section 5.2).

Gaussian log-likelihoods use the noise precision tau that maximises the validation predictive
log-likelihood (a grid), in the target's original units.

Modules: :mod:`~shrinkdrop.experiments.architectures.data`,
:mod:`~shrinkdrop.experiments.architectures.common` (settings, scoring, plots), one per
experiment (:mod:`~shrinkdrop.experiments.architectures.resnet`,
:mod:`~shrinkdrop.experiments.architectures.cnn`,
:mod:`~shrinkdrop.experiments.architectures.lstm`) and
:mod:`~shrinkdrop.experiments.architectures.run`.
"""

from __future__ import annotations

from .cnn import CNN_MODELS, run_cnn
from .common import Experiment, Settings
from .data import EXTRA, MACRO_FEATURES, blocked_split, load_diabetes, load_digits, load_macrodata
from .lstm import LSTM_MODELS, run_lstm
from .resnet import RESNET_DEPTH, RESNET_MODELS, run_resnet
from .run import ArchitecturesOptions, run

HELP = ("Section 5 on real data: ADD in a residual MLP, CNN priors on digits, LSTM gate noise "
        "on macro data.")

__all__ = ["HELP", "run", "ArchitecturesOptions", "Experiment", "Settings", "EXTRA",
           "load_macrodata", "load_diabetes", "load_digits", "blocked_split", "MACRO_FEATURES",
           "RESNET_MODELS", "RESNET_DEPTH", "CNN_MODELS", "LSTM_MODELS", "run_resnet", "run_cnn",
           "run_lstm"]
