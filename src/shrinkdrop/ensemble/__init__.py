"""Many independent noisy MLPs trained at once: a stacked (batched) ensemble.

A benchmark such as the UCI protocol trains hundreds of *small* networks (one per split and grid
point: 20 splits x 12 configurations per method and data set), each for thousands of epochs of
tiny minibatches. One such network is far too small to keep a CPU core busy: almost all of a
training step is Python and dispatch overhead. :class:`StackedNoisyMLP` holds ``K`` networks
``noise -> Linear -> ReLU -> noise -> ... -> Linear`` as stacked weights ``(K, d_in, d_out)`` and
runs all of them with batched matrix products; :func:`fit_stacked` trains them with Adam.

Equivalence with training each network alone (tested in ``tests/test_ensemble.py``):

* the models share no parameter and the loss is the *sum* of the per-model losses, so each
  model's gradient is its own; Adam is elementwise, so Adam on the stacked tensors is Adam on
  each model (the same step count, learning rate and bias correction);
* model ``k`` is initialised with ``torch.manual_seed(seeds[k])`` exactly as ``nn.Linear`` layers
  built in that order (as :mod:`shrinkdrop.experiments.uci` builds its network), and visits its
  rows in the order of ``torch.randperm(N, generator=Generator().manual_seed(seeds[k]))`` per
  epoch, as :func:`shrinkdrop.fit` does with ``seed=seeds[k]``;
* the per-model loss is :func:`shrinkdrop.fit`'s: ``-mean_n objective_n + wd_k / 2 ||W_k||^2``
  (weights only), with the objectives of :mod:`shrinkdrop.train.objectives` applied to the model's
  ``(S, B)`` log-likelihoods;
* the noise of model ``k`` is drawn from its own law by :func:`shrinkdrop.functional.draw_noise`
  (per example and unit: ARD noise, as :class:`shrinkdrop.nn.UnitNoise`); models sharing a law
  share one draw call. Only the random streams differ from a sequential run.

With the noise switched off (every law a point mass) a stacked fit reproduces separate
:func:`shrinkdrop.fit` runs to float rounding; with noise, the same laws.

A training step (``fit_stacked(step='manual')``, the default) runs a hand-written forward and
backward pass of the MLP and Adam on one flat buffer, with the noise drawn in blocks for several
steps (:class:`~shrinkdrop.ensemble.fit._NoisePool`); ``step='autograd'`` is the reference it is
tested against (the same weights to float rounding, noise on). See docs/uci.md, "The training
step".

Modules: :mod:`~shrinkdrop.ensemble.model` (the stacked networks and their initialisation),
:mod:`~shrinkdrop.ensemble.step` (the loss and the hand-written forward and backward pass),
:mod:`~shrinkdrop.ensemble.adam` (Adam on one flat buffer), :mod:`~shrinkdrop.ensemble.fit`
(:func:`fit_stacked`) and :mod:`~shrinkdrop.ensemble.predict` (:func:`stacked_predictive`,
:func:`stacked_fit_tau`).
"""

from __future__ import annotations

from .fit import StackedHistory, fit_stacked
from .model import INITS, StackedNoisyMLP, check_init, init_linears_
from .predict import stacked_fit_tau, stacked_predictive
from .step import STEPS, stacked_loss

__all__ = ["StackedNoisyMLP", "fit_stacked", "stacked_loss", "StackedHistory",
           "stacked_predictive", "stacked_fit_tau", "init_linears_", "check_init", "INITS", "STEPS"]
