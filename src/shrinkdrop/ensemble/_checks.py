"""Checks of the stacked engine's arguments, shared by training and prediction."""

from __future__ import annotations

import torch
from torch import Tensor

from ..enums import Likelihood
from .model import StackedNoisyMLP

__all__ = ["_per_model", "_precisions", "_check_data", "_check_device"]


def _per_model(name: str, value, K: int) -> Tensor:
    t = torch.as_tensor(value, dtype=torch.float64).reshape(-1)
    if t.numel() == 1:
        t = t.expand(K)
    if t.numel() != K:
        raise ValueError(f"{name} has to be a number or one value per model ({K}), but got "
                         f"{t.numel()} values")
    return t


def _precisions(tau, likelihood: Likelihood, K: int, dtype) -> Tensor | None:
    """The Gaussian precision per model (checked positive and finite); None if categorical."""
    if likelihood is not Likelihood.GAUSSIAN:
        return None
    if tau is None:
        raise ValueError("likelihood='gaussian' needs tau (the noise precision), but got None")
    t = _per_model("tau", tau, K)
    if not bool(torch.all(torch.isfinite(t) & (t > 0))):
        raise ValueError(f"tau has to be positive and finite, but got {t.tolist()}")
    return t.to(dtype)


def _check_data(X: Tensor, y: Tensor, rows_of: Tensor, K: int,
                model: StackedNoisyMLP | None = None):
    if not isinstance(X, Tensor) or not isinstance(y, Tensor):
        raise TypeError(f"X and y have to be tensors, but got {type(X).__name__} and "
                        f"{type(y).__name__}")
    if X.ndim != 3:
        raise ValueError(f"X has to have shape (G, N, d) (G data sets of N rows), but got "
                         f"{tuple(X.shape)}")
    if y.shape[:2] != X.shape[:2]:
        raise ValueError(f"y has to have shape (G, N[, ...]) matching X {tuple(X.shape[:2])}, "
                         f"but got {tuple(y.shape)}")
    if X.shape[1] == 0:
        raise ValueError("X has to have at least one row, but got 0")
    if model is not None:
        d, out = model.sizes[0], model.sizes[-1]
        if X.shape[2] != d:
            raise ValueError(f"X has to have {d} columns (the models' input width), but got "
                             f"shape {tuple(X.shape)}")
        if tuple(y.shape[2:]) not in ((), (out,)):
            raise ValueError(f"y has to have shape (G, N) or (G, N, {out}) (the models' "
                             f"output width), but got {tuple(y.shape)}")
    if X.device.type != "meta" and y.device.type != "meta":
        for name, t in (("X", X), ("y", y)):
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                bad = int((~torch.isfinite(t)).sum())
                raise ValueError(f"{name} has to be finite, but got {bad} NaN or infinite "
                                 f"value(s)")
    if rows_of.shape != (K,) or int(rows_of.min()) < 0 or int(rows_of.max()) >= X.shape[0]:
        raise ValueError(f"data_of has to give each of the {K} models a data set index in "
                         f"0..{X.shape[0] - 1}, but got {rows_of.tolist()}")


def _check_device(model: StackedNoisyMLP, X: Tensor, y: Tensor,
                  generator: torch.Generator | None = None) -> torch.device:
    """The device of ``X``; the model's parameters, ``y`` and the noise generator have to be
    there too (a clear error instead of one from deep inside a kernel)."""
    dev = X.device
    pdev = model.weights[0].device
    if pdev != dev:
        raise ValueError(f"X has to be on the model's device {pdev}, but got {dev}: move one "
                         f"of them (model.to({str(dev)!r}))")
    if y.device != dev:
        raise ValueError(f"y has to be on X's device {dev}, but it is on {y.device}")
    gen = generator if generator is not None else model.generator
    if gen is not None and gen.device.type != dev.type:
        raise ValueError(f"the model's noise generator is on {gen.device} but X is on {dev}: "
                         f"give StackedNoisyMLP a torch.Generator(device={str(dev)!r})")
    return dev
