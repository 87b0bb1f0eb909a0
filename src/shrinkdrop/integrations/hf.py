"""The Hugging Face ``Trainer`` with :class:`~shrinkdrop.train.ShrinkageLoss` and MC prediction
(extra ``hf``).

:func:`compute_loss` is the whole training change: the batch's tensors repeated ``S`` times
(sample-major) inside ``sample_groups(S)``, one forward pass, the objective over the ``S``
draws and the weight prior. :func:`mc_logits` is MC prediction: the log of the predictive
probabilities (``log mean_s softmax``) over ``samples`` draws, noise on although the Trainer
evaluates in ``eval()``. :class:`ShrinkageTrainer` is a ``transformers.Trainer`` that uses
both (``Trainer`` itself needs ``accelerate``)::

    model = sd.convert(AutoModelForSequenceClassification.from_config(cfg), "bernoulli")
    loss = sd.train.ShrinkageLoss("categorical", objective="marginal_map", samples=4,
                                  sigma0=1.0, n=len(train_set))
    trainer = ShrinkageTrainer(model=model, args=args, train_dataset=train_set,
                               shrinkage_loss=loss, predict_samples=32)
    trainer.train()
    log_probs = trainer.predict(test_set).predictions
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..functional import sample_groups
from ..train.loss import ShrinkageLoss
from ..train.prediction import noise_on
from ..train.uncertainty import reduce_draws
from . import _require

__all__ = ["compute_loss", "mc_logits", "ShrinkageTrainer", "EXTRA"]

#: the optional dependency group that brings transformers
EXTRA = "hf"

transformers = _require("transformers", EXTRA, "transformers", __name__)


def _repeat(inputs: Mapping[str, Any], S: int, B: int) -> dict[str, Any]:
    """Every tensor with ``B`` rows repeated ``S`` times along dimension 0 (sample-major)."""
    if S == 1:
        return dict(inputs)
    return {k: v.repeat(S, *([1] * (v.ndim - 1)))
            if isinstance(v, torch.Tensor) and v.ndim and v.shape[0] == B else v
            for k, v in inputs.items()}


def _logits(out: Any) -> torch.Tensor:
    if isinstance(out, torch.Tensor):
        return out
    logits = getattr(out, "logits", None)
    if logits is None:
        logits = out[0] if isinstance(out, (tuple, list)) else out["logits"]
    return logits


def _draws(model: nn.Module, inputs: Mapping[str, Any], S: int) -> tuple[torch.Tensor, Any]:
    """``S`` noisy logits ``(S, B, ...)`` of ``model(**inputs)`` in one batched pass."""
    B = next(v.shape[0] for v in inputs.values() if isinstance(v, torch.Tensor) and v.ndim)
    ctx = contextlib.nullcontext() if model.training else noise_on(model)
    with ctx, (sample_groups(S) if S > 1 else contextlib.nullcontext()):
        out = model(**_repeat(inputs, S, B))
    logits = _logits(out)
    return logits.reshape(S, B, *logits.shape[1:]), out


def compute_loss(loss: ShrinkageLoss, model: nn.Module, inputs: Mapping[str, Any],
                 return_outputs: bool = False) -> torch.Tensor | tuple[torch.Tensor, Any]:
    """:class:`~shrinkdrop.train.ShrinkageLoss` of a transformers model on a batch (a dict
    with ``labels``): the ``Trainer.compute_loss`` of :class:`ShrinkageTrainer`."""
    inputs = dict(inputs)
    if "labels" not in inputs:
        raise ValueError(f"inputs has to hold 'labels', but got the keys {sorted(inputs)}")
    labels = inputs.pop("labels")
    draws, out = _draws(model, inputs, loss.samples)
    value = loss.from_outputs(draws, labels, model)
    return (value, out) if return_outputs else value


@torch.no_grad()
def mc_logits(model: nn.Module, inputs: Mapping[str, Any], samples: int = 32,
              likelihood: str = "categorical") -> torch.Tensor:
    """MC prediction: ``log mean_s softmax(logits_s)`` over ``samples`` draws (noise on in
    ``eval()``); for ``likelihood='gaussian'`` the mean output. ``labels`` is ignored."""
    inputs = {k: v for k, v in inputs.items() if k != "labels"}
    draws, _ = _draws(model, inputs, samples)
    if likelihood == "gaussian":
        return draws.mean(0)
    return reduce_draws([draws], likelihood)["log_probs"].to(draws.dtype)


class ShrinkageTrainer(transformers.Trainer):
    """``transformers.Trainer`` whose loss is ``shrinkage_loss`` (a
    :class:`~shrinkdrop.train.ShrinkageLoss`: objective over S draws + weight prior) and whose
    predictions are MC: :func:`mc_logits` over ``predict_samples`` draws (the log predictive
    probabilities for classification)."""

    def __init__(self, *args: Any, shrinkage_loss: ShrinkageLoss, predict_samples: int = 32,
                 **kwargs: Any) -> None:
        if not isinstance(shrinkage_loss, ShrinkageLoss):
            raise TypeError(f"shrinkage_loss has to be a shrinkdrop.train.ShrinkageLoss, but "
                            f"got {type(shrinkage_loss).__name__}")
        super().__init__(*args, **kwargs)
        self.shrinkage_loss = shrinkage_loss
        self.predict_samples = int(predict_samples)

    def compute_loss(self, model: nn.Module, inputs: dict, return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        return compute_loss(self.shrinkage_loss, model, inputs, return_outputs)

    def prediction_step(self, model: nn.Module, inputs: dict, prediction_loss_only: bool,
                        ignore_keys: list[str] | None = None) -> tuple:
        inputs = self._prepare_inputs(inputs)
        labels = inputs.get("labels")
        lik = getattr(self.shrinkage_loss.likelihood, "value", self.shrinkage_loss.likelihood)
        lik = lik if isinstance(lik, str) else "categorical"
        logits = mc_logits(model, inputs, self.predict_samples, lik)
        loss = None
        if labels is not None:
            with torch.no_grad():
                loss = compute_loss(self.shrinkage_loss, model, inputs).detach()
        if prediction_loss_only:
            return loss, None, None
        return loss, logits, labels
