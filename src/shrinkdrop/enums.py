"""The named choices of shrinkdrop: every string option that has a fixed set of values.

Each is a ``str`` enum, so a member compares equal to its value (``Objective.MC == "mc"``) and
arguments may be given either way (:func:`shrinkdrop._validation.check_choice` converts them).
This module imports nothing of the package: every layer may use it.
"""

from __future__ import annotations

import enum

__all__ = ["Objective", "Likelihood", "PredictMode", "Tie", "Structure", "Param"]


class Objective(str, enum.Enum):
    """Training objective over S noise draws (valid values: 'mc', 'marginal_map',
    'tail_adaptive')."""

    MC = "mc"
    MARGINAL_MAP = "marginal_map"
    TAIL_ADAPTIVE = "tail_adaptive"


class Likelihood(str, enum.Enum):
    """Built-in likelihoods: 'gaussian' (fixed precision tau), 'categorical' (logits) or
    'bernoulli' (one logit per binary target)."""

    GAUSSIAN = "gaussian"
    CATEGORICAL = "categorical"
    BERNOULLI = "bernoulli"


class PredictMode(str, enum.Enum):
    """'mc': average of S noisy passes; 'mean': one pass with noise off (weight scaling)."""

    MC = "mc"
    MEAN = "mean"


class Tie(str, enum.Enum):
    """Which conv weights share a scale (section 5.3)."""

    #: one scale per output filter, shared by all its channels (Eq. 23; SpatialDropout)
    FILTER = "filter"
    #: one scale per (input channel, filter) pair (Eq. 21-22)
    CHANNEL = "channel"
    #: the product of the two (Eq. 24-25)
    BOTH = "both"


class Structure(str, enum.Enum):
    """Which weights of an MCMC network share a scale: 'ard' (one per input unit), 'add' (one
    per residual layer) or 'ard+add' (both)."""

    ARD = "ard"
    ADD = "add"
    ARD_ADD = "ard+add"


class Param(str, enum.Enum):
    """Parametrization of a prior: 'ep' (expanded, noise in the network) or 'hp'
    (hierarchical, the scale in the prior of the weights)."""

    EP = "ep"
    HP = "hp"
