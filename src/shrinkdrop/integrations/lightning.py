"""A ``LightningModule`` that trains any model with :class:`~shrinkdrop.train.ShrinkageLoss`
and predicts by MC noise (extra ``lightning``).

Lightning (>= 2.2) puts the model in ``eval()`` for validation and prediction, which switches
``nn.Dropout`` off and breaks MC dropout (Lightning-AI/pytorch-lightning#21410): here
validation and prediction draw through :func:`shrinkdrop.train.noise_on`, which turns the
noise of the library's layers (``mc_mode``) and of torch's dropout modules on whatever the mode.

Example::

    loss = sd.train.ShrinkageLoss("categorical", objective="marginal_map", samples=4,
                                  sigma0=1.0, n=len(train_set))
    module = ShrinkageModule(model, loss, lr=1e-3, predict_samples=32)
    lightning.Trainer(max_epochs=5).fit(module, train_loader, val_loader)
    preds = trainer.predict(module, test_loader)   # one Predictive per batch
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..train.loss import ShrinkageLoss
from ..train.objectives import marginal_map
from ..train.sources import unpack_batch
from ..train.uncertainty import Predictive, predictive
from . import _require

__all__ = ["ShrinkageModule", "EXTRA"]

#: the optional dependency group that brings Lightning
EXTRA = "lightning"

lightning = _require("lightning", EXTRA, "Lightning", __name__)


class ShrinkageModule(lightning.LightningModule):
    """Trains ``model`` with ``loss`` (:class:`~shrinkdrop.train.ShrinkageLoss`) by Adam at
    ``lr``; batches are ``(x, y)`` pairs (prediction: ``x`` or pairs).

    ``training_step`` is ``loss(model, x, y)`` (logged as ``train_loss``);
    ``validation_step`` logs ``val_ll``, the MC predictive log-likelihood over ``val_samples``
    draws; ``predict_step`` returns :func:`shrinkdrop.train.predictive`'s
    :class:`~shrinkdrop.train.Predictive` over ``predict_samples`` draws (``likelihood`` and
    ``tau`` default to the loss's). Noise is on in validation and prediction even though
    Lightning calls ``eval()``.
    """

    def __init__(self, model: nn.Module, loss: ShrinkageLoss, lr: float = 1e-3,
                 val_samples: int = 8, predict_samples: int = 32,
                 likelihood: str | None = None, tau: float | None = None) -> None:
        super().__init__()
        if not isinstance(loss, ShrinkageLoss):
            raise TypeError(f"loss has to be a shrinkdrop.train.ShrinkageLoss, but got "
                            f"{type(loss).__name__}")
        self.model, self.loss_fn, self.lr = model, loss, float(lr)
        self.val_samples, self.predict_samples = val_samples, predict_samples
        lik = likelihood if likelihood is not None else loss.likelihood
        if not isinstance(lik, str):
            raise ValueError("predict_step needs a named likelihood ('gaussian', 'categorical' "
                             "or 'bernoulli'); give likelihood= with a callable loss")
        self.likelihood = getattr(lik, "value", lik)
        self.tau = tau if tau is not None else loss.tau

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = unpack_batch(batch, "the training loader")
        loss = self.loss_fn(self.model, x, y)
        self.log("train_loss", loss.detach(), batch_size=x.shape[0])
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        x, y = unpack_batch(batch, "the validation loader")
        outs = self.loss_fn.outputs(self.model, x, self.val_samples)  # noise on in eval()
        ll = marginal_map(self.loss_fn.log_likelihoods(outs, y)).mean()
        self.log("val_ll", ll, batch_size=x.shape[0])
        return ll

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> Predictive:
        x = batch if isinstance(batch, torch.Tensor) else unpack_batch(batch, "the loader")[0]
        return predictive(self.model, x, likelihood=self.likelihood,
                          samples=self.predict_samples, tau=self.tau)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.Adam(self.parameters(), lr=self.lr)
