"""The training loop: any ``nn.Module`` under multiplicative noise, trained with Adam on one of
the objectives of :mod:`shrinkdrop.train.objectives`."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .._validation import check_choice, check_int, check_samples, positive_float
from ..enums import Likelihood, Objective
from .likelihoods import log_likelihood
from .objectives import objective as _objective
from .prediction import sample_outputs
from .weight_priors import _decayed
from .weight_priors import weight_decay as _weight_decay

__all__ = ["fit", "History"]


@dataclass
class History:
    """What :func:`fit` did: per-epoch mean training loss, wall time and the arguments."""

    loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    args: dict = field(default_factory=dict)

    @property
    def epochs(self) -> int:
        return len(self.loss)


def _cuda_devices(model: nn.Module, *tensors: torch.Tensor) -> list[int]:
    """The CUDA device indices holding ``model``'s parameters or ``tensors``: the generators
    :func:`fit` forks so that seeding leaves the caller's global RNG state untouched."""
    devs = {t.device for t in (*model.parameters(), *model.buffers(), *tensors)}
    return sorted({d.index if d.index is not None else torch.cuda.current_device()
                   for d in devs if d.type == "cuda"})


def _check_data(X: torch.Tensor, y: torch.Tensor) -> int:
    """The number of rows of ``X`` and ``y`` (tensors with the same, positive number)."""
    if not isinstance(X, torch.Tensor) or not isinstance(y, torch.Tensor):
        raise TypeError("X and y have to be tensors")
    if X.ndim == 0 or y.ndim == 0 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X and y have to have the same number of rows, but got X of shape "
                         f"{tuple(X.shape)} and y of shape {tuple(y.shape)}")
    if X.shape[0] == 0:
        raise ValueError("X has to have at least one row, but got 0")
    return X.shape[0]


def _decay_of(sigma0: float | None, weight_decay: float | None, N: int) -> float:
    """The weight decay given by ``sigma0`` (``1 / (N sigma0^2)``) or ``weight_decay`` (at most
    one of them; neither: 0)."""
    if sigma0 is not None and weight_decay is not None:
        raise ValueError(f"give at most one of sigma0 and weight_decay, but got sigma0={sigma0} "
                         f"and weight_decay={weight_decay}")
    if sigma0 is not None:
        positive_float("sigma0", sigma0)
        return _weight_decay(sigma0, N)
    if weight_decay is not None:
        wd = float(weight_decay)
        if not (wd >= 0 and math.isfinite(wd)):
            raise ValueError(f"weight_decay has to be >= 0 and finite, but got {weight_decay!r}")
        return wd
    return 0.0


def _epoch(model, X, y, opt, gen, ll_fn, obj, beta, S, batch_size, wd, decayed) -> float:
    """One epoch of shuffled minibatches; the mean training loss over the rows."""
    N = X.shape[0]
    perm = torch.randperm(N, generator=gen)
    total = 0.0
    for i in range(0, N, batch_size):
        idx = perm[i : i + batch_size]
        xb, yb = X[idx], y[idx]
        out = sample_outputs(model, xb, S)
        ll = ll_fn(out.reshape(S * len(idx), *out.shape[2:]), yb.repeat(
            S, *([1] * (yb.ndim - 1)))).reshape(S, len(idx))
        loss = -_objective(ll, obj, beta).mean()
        if wd > 0:
            loss = loss + 0.5 * wd * sum(p.pow(2).sum() for p in decayed)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        total = total + loss.detach().double() * len(idx)  # no per-step sync
    return float(total) / N


def fit(
    model: nn.Module,
    X: torch.Tensor,
    y: torch.Tensor,
    *,
    likelihood: str | Likelihood | Callable[[torch.Tensor, torch.Tensor], torch.Tensor] = (
        "gaussian"),
    objective: str | Objective = "mc",
    samples: int = 1,
    tau: float | torch.Tensor | None = None,
    sigma0: float | None = None,
    weight_decay: float | None = None,
    epochs: int = 40,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    progress: bool = True,
    beta: float = -1.0,
    callback: Callable[[int, History, nn.Module], bool | None] | None = None,
    generator: torch.Generator | None = None,
) -> History:
    """Train any ``nn.Module`` under multiplicative noise with Adam; returns a :class:`History`.

    Per minibatch the loss is ``-mean_n obj_n + weight_decay / 2 * ||W||^2`` where ``obj_n`` is
    the chosen :class:`~shrinkdrop.enums.Objective` over ``samples`` noise draws of example
    ``n`` (one ``S * B`` batched pass, :func:`~shrinkdrop.train.sample_outputs`) and ``W`` are
    the weights (``ndim >= 2``; biases are not decayed, as in Gal's UCI code). ``sigma0`` gives
    ``weight_decay = 1 / (N sigma0^2)``.

    Args:
        model: the network; trained in train mode, left in eval mode.
        X, y: training inputs ``(N, ...)`` and targets ``(N, ...)``.
        likelihood: ``'gaussian'`` (needs ``tau``; per-example ``log N(y; f(x), 1/tau)``),
            ``'categorical'`` (``f(x)`` are logits) or a callable ``(output, y) -> (B,)``.
        objective: ``'mc'`` | ``'marginal_map'`` | ``'tail_adaptive'`` (``beta`` for the latter).
        samples: S noise draws per example and step.
        sigma0 / weight_decay: at most one (neither: no prior).
        epochs, batch_size, lr: Adam, shuffled minibatches.
        seed: seeds torch's global RNG inside ``torch.random.fork_rng`` (global state untouched)
            and the shuffling generator (unless ``generator`` is given).
        progress: tqdm bar over epochs.
        callback: ``callback(epoch, history, model)`` after each epoch; returning True stops.
        generator: the shuffling generator.
    """
    obj = check_choice("objective", objective, Objective)
    N = _check_data(X, y)
    S = check_samples(samples)
    check_int("epochs", epochs)
    check_int("batch_size", batch_size)
    positive_float("lr", lr)
    ll_fn = log_likelihood(likelihood, tau)
    wd = _decay_of(sigma0, weight_decay, N)

    args = dict(likelihood=likelihood if isinstance(likelihood, str) else "callable",
                objective=obj.value, samples=S, tau=tau, sigma0=sigma0, weight_decay=wd,
                epochs=epochs, batch_size=batch_size, lr=lr, seed=seed, beta=beta, n=N)
    history = History(args=args)
    decayed = _decayed(model.parameters())
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    gen = generator if generator is not None else torch.Generator().manual_seed(seed)

    from tqdm.auto import tqdm

    start = time.perf_counter()
    with torch.random.fork_rng(devices=_cuda_devices(model, X)):
        torch.manual_seed(seed)  # seeds every device's generator: fork those in use
        model.train()
        bar = tqdm(range(epochs), disable=not progress, desc=f"fit[{obj.value}, S={S}]")
        for epoch in bar:
            history.loss.append(_epoch(model, X, y, opt, gen, ll_fn, obj, beta, S, batch_size,
                                       wd, decayed))
            bar.set_postfix(loss=f"{history.loss[-1]:.4g}")
            if callback is not None and callback(epoch, history, model):
                break
        bar.close()
    history.seconds = time.perf_counter() - start
    model.eval()
    return history
