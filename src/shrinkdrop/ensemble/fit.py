"""Training the stacked networks: :func:`fit_stacked`, Adam on every model at once as
:func:`shrinkdrop.fit` would train each alone, with the training noise drawn in blocks
(:class:`_NoisePool`)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .._validation import check_choice, check_int, check_samples, positive_float
from ..enums import Likelihood, Objective
from ._checks import _check_data, _check_device, _per_model, _precisions
from .adam import _FlatAdam
from .model import StackedNoisyMLP
from .step import STEPS, _autograd_forward, _Head, _train_backward, _train_forward, stacked_loss

__all__ = ["fit_stacked", "StackedHistory"]


@dataclass
class StackedHistory:
    """What :func:`fit_stacked` did: per-epoch mean training loss of every model ``(epochs, K)``
    and the wall time."""

    loss: list[list[float]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def epochs(self) -> int:
        """Epochs run (as :class:`shrinkdrop.train.History`)."""
        return len(self.loss)


class _NoisePool:
    """Training noise for several steps per draw call: per layer a block ``(K, R, d_i)`` drawn by
    :meth:`StackedNoisyMLP.draw` (each model from its own law, one call per law), handed out
    ``n`` fresh rows at a time. The draws are iid, so a step's noise is a fresh iid sample of
    the same law whichever rows of a block it gets; a block's unused tail is dropped. ``R``
    holds about ``max_elements`` values over all layers and models, and at least one step's
    rows: at the UCI shapes (K = 36, 8 + 50 units) a block lasts ~8 steps, so the per-call
    cost of the samplers (most of a step at these sizes) is paid once per ~8 steps. The blocks
    are allocated once and redrawn in place: a fresh multi-MB allocation per refill costs its
    page faults (a fill of a fresh 8 MB tensor 3.3x a kept one's: bench_sampling.py)."""

    def __init__(self, model: StackedNoisyMLP, rows: int, max_elements: int = 2 ** 21):
        self.model = model
        width = sum(model.sizes[:-1]) * model.n_models
        self.R = max(int(rows), max_elements // max(1, width))
        self.blocks: list[Tensor] = []
        self.pos = self.R

    def take(self, n: int, dtype) -> list[Tensor]:
        """Noise for ``n`` rows: per layer ``(K, n, d_i)`` (views of the blocks)."""
        if self.pos + n > self.R:
            if not self.blocks or self.blocks[0].dtype != dtype:
                self.blocks = [self.model.draw((self.R, d), dtype)
                               for d in self.model.sizes[:-1]]
            else:
                for d, blk in zip(self.model.sizes[:-1], self.blocks):
                    self.model.draw((self.R, d), dtype, out=blk)
            self.pos = 0
        a, self.pos = self.pos, self.pos + n
        return [blk[:, a: self.pos] for blk in self.blocks]


class _ManualEpochs:
    """The epochs of ``fit_stacked(step='manual')``: the hand-written forward and backward pass
    (:func:`~shrinkdrop.ensemble.step._train_forward`,
    :func:`~shrinkdrop.ensemble.step._train_backward`) and Adam on one flat buffer
    (:class:`~shrinkdrop.ensemble.adam._FlatAdam`); :meth:`close` gives the parameters their own
    storage back."""

    def __init__(self, model: StackedNoisyMLP, Xf: Tensor, yf: Tensor, pool: _NoisePool,
                 head: _Head, lr: float, wd: Tensor, decay: bool, S: int, batch_size: int):
        self.model, self.Xf, self.yf, self.pool, self.head = model, Xf, yf, pool, head
        self.S, self.batch_size, self.decay = S, batch_size, decay
        self.adam = _FlatAdam(list(model.weights) + list(model.biases), lr)
        self.wd_g = wd if decay else None
        self.wd_v = wd.view(-1)
        self.wsq = torch.zeros(model.n_models, dtype=torch.float64, device=wd.device)
        self.gathered: tuple[Tensor, Tensor] | None = None

    def epoch(self, perm: Tensor) -> Tensor:
        """One epoch over the rows ``perm (K, N)`` (rows of ``Xf``, in visiting order); the
        mean per-model loss ``(K,)``."""
        model, pool, head, adam, wd_g, wsq = (self.model, self.pool, self.head, self.adam,
                                              self.wd_g, self.wsq)
        Xf, yf, S, batch_size, decay = self.Xf, self.yf, self.S, self.batch_size, self.decay
        K, N = perm.shape
        dtype = Xf.dtype
        with torch.no_grad():
            # the epoch's rows in visiting order, once; minibatches are views of it
            flat = perm.reshape(-1)
            if self.gathered is None:  # kept across epochs: no fresh pages per epoch
                self.gathered = (Xf.new_empty((K * N, *Xf.shape[1:])),
                                 yf.new_empty((K * N, *yf.shape[1:])))
            Xp = torch.index_select(Xf, 0, flat, out=self.gathered[0]).view(K, N, -1)
            yp = torch.index_select(yf, 0, flat, out=self.gathered[1]).view(K, N, *yf.shape[1:])
            for i in range(0, N, batch_size):
                xb, yb = Xp[:, i: i + batch_size], yp[:, i: i + batch_size]
                B = xb.shape[1]
                xs = xb.repeat(1, S, 1) if S > 1 else xb
                out, saved = _train_forward(model, xs, pool.take(S * B, dtype))
                g = head(out, yb)
                if decay:  # sum_W ||W_k||^2 x rows, for the epoch's loss
                    for w in model.weights:
                        w2 = w.view(K, -1)
                        wsq.add_(torch.linalg.vecdot(w2, w2), alpha=B)
                _train_backward(model, saved, g, adam.grads, wd_g)
                adam.step()
        mean = head.epoch_loss(N, model.sizes[-1])
        if decay:
            mean = mean + 0.5 * self.wd_v.double() * wsq / N
            wsq.zero_()
        return mean

    def close(self) -> None:
        self.adam.release()


class _AutogradEpochs:
    """The epochs of ``fit_stacked(step='autograd')``: the network through autograd and
    ``torch.optim.Adam`` (the reference of :class:`_ManualEpochs`)."""

    def __init__(self, model: StackedNoisyMLP, Xf: Tensor, yf: Tensor, pool: _NoisePool,
                 lik: Likelihood, obj: Objective, tau: Tensor | None, beta: float, lr: float,
                 wd: Tensor, decay: bool, S: int, batch_size: int):
        self.model, self.Xf, self.yf, self.pool = model, Xf, yf, pool
        self.loss_args = dict(likelihood=lik, tau=tau, objective=obj, beta=beta,
                              weight_decay=wd.view(-1) if decay else None, weights=model.weights)
        self.S, self.batch_size = S, batch_size
        self.opt = torch.optim.Adam(list(model.weights) + list(model.biases), lr=lr)

    def epoch(self, perm: Tensor) -> Tensor:
        """One epoch over the rows ``perm (K, N)``; the mean per-model loss ``(K,)``."""
        model, Xf, yf, pool, opt, S = self.model, self.Xf, self.yf, self.pool, self.opt, self.S
        K, N = perm.shape
        total = torch.zeros(K, dtype=torch.float64, device=perm.device)
        for i in range(0, N, self.batch_size):
            idx = perm[:, i: i + self.batch_size]  # (K, B): rows of Xf
            B = idx.shape[1]
            flat = idx.reshape(-1)
            xb = Xf.index_select(0, flat).view(K, B, -1)  # (K, B, d)
            yb = yf.index_select(0, flat).view(K, B, *yf.shape[1:])  # (K, B[, ...])
            xs = xb.repeat(1, S, 1) if S > 1 else xb
            out = _autograd_forward(model, xs, pool.take(S * B, Xf.dtype))
            out = out.view(K, S, B, -1)
            per = stacked_loss(out, yb, **self.loss_args)
            opt.zero_grad(set_to_none=True)
            per.sum().backward()
            opt.step()
            total += per.detach().double() * B
        return total / N

    def close(self) -> None:
        pass


def _check_loop(epochs: int, batch_size: int, lr: float, step: str) -> None:
    check_int("epochs", epochs)
    check_int("batch_size", batch_size)
    positive_float("lr", lr)
    if step not in STEPS:
        raise ValueError(f"step has to be one of {', '.join(STEPS)}, but got {step!r}")


def _decays(weight_decay, K: int, dtype, dev) -> Tensor:
    """The weight decay per model ``(K, 1, 1)``, checked ``>= 0`` and finite."""
    wd = _per_model("weight_decay", weight_decay, K)
    if not bool(torch.all(torch.isfinite(wd) & (wd >= 0))):
        raise ValueError(f"weight_decay has to be >= 0 and finite, but got {wd.tolist()}")
    return wd.to(dtype=dtype, device=dev).view(-1, 1, 1)


def _shufflers(seeds: Sequence[int] | None, K: int) -> list[torch.Generator]:
    """Per model the CPU generator of its row order (seeded ``seeds[k]``, default ``k``)."""
    seeds = list(range(K)) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != K:
        raise ValueError(f"seeds has to have one seed per model ({K}), but got {len(seeds)}")
    return [torch.Generator().manual_seed(s) for s in seeds]


def _fit_inputs(model: StackedNoisyMLP, X: Tensor, y: Tensor, data_of, lik: Likelihood, tau,
                weight_decay, seeds: Sequence[int] | None):
    """:func:`fit_stacked`'s data and per-model arguments, checked: the data set of each model
    ``(K,)``, the device, the precisions ``(K,)`` (None if categorical), the weight decays
    ``(K, 1, 1)`` and the shuffling generators."""
    K = model.n_models
    rows_of = torch.arange(K) if data_of is None else torch.as_tensor(data_of, dtype=torch.long)
    _check_data(X, y, rows_of, K, model)
    dev = _check_device(model, X, y)
    tau_t = _precisions(tau, lik, K, X.dtype)
    tau_t = tau_t.to(dev) if tau_t is not None else None
    wd = _decays(weight_decay, K, X.dtype, dev)
    return rows_of, dev, tau_t, wd, _shufflers(seeds, K)


def _epochs(step: str, model: StackedNoisyMLP, X: Tensor, y: Tensor, S: int, batch_size: int,
            lr: float, lik: Likelihood, obj: Objective, tau: Tensor | None, beta: float,
            wd: Tensor) -> _ManualEpochs | _AutogradEpochs:
    """The epochs of a training run by ``step`` (:data:`~shrinkdrop.ensemble.step.STEPS`) on
    the data sets ``X (G, N, d)`` flattened to rows ``(G N, d)``."""
    N = X.shape[1]
    Xf = X.reshape(-1, X.shape[2])  # (G N, d): rows of model k's data at rows_of[k] * N + i
    yf = y.reshape(X.shape[0] * N, *y.shape[2:])
    decay = bool(torch.any(wd > 0))
    pool = _NoisePool(model, S * min(batch_size, N))
    if step == "manual":
        head = _Head(lik, obj, tau, beta, S, model.n_models, X.dtype, X.device)
        return _ManualEpochs(model, Xf, yf, pool, head, lr, wd, decay, S, batch_size)
    return _AutogradEpochs(model, Xf, yf, pool, lik, obj, tau, beta, lr, wd, decay, S,
                           batch_size)


def fit_stacked(
    model: StackedNoisyMLP,
    X: Tensor,
    y: Tensor,
    *,
    data_of: Sequence[int] | Tensor | None = None,
    likelihood: str | Likelihood = "gaussian",
    objective: str | Objective = "mc",
    samples: int = 1,
    tau: float | Sequence[float] | Tensor | None = None,
    weight_decay: float | Sequence[float] | Tensor = 0.0,
    epochs: int = 40,
    batch_size: int = 128,
    lr: float = 1e-3,
    seeds: Sequence[int] | None = None,
    beta: float = -1.0,
    progress: bool = True,
    desc: str = "fit_stacked",
    step: str = "manual",
) -> StackedHistory:
    """Train every model of ``model`` with Adam as :func:`shrinkdrop.fit` would, all at once.

    Args:
        model: the stacked networks (``K`` models).
        X: ``(G, N, d)``: ``G`` data sets of the same size (e.g. the splits of a benchmark).
        y: ``(G, N)`` targets (regression, one output) or class labels.
        data_of: ``(K,)``: the data set each model trains on (default: model k on data set k).
        likelihood: ``'gaussian'`` (needs ``tau``) or ``'categorical'``.
        objective: ``'mc'`` | ``'marginal_map'`` | ``'tail_adaptive'``; ``samples`` draws per
            example and step.
        tau: the Gaussian precision (standardised units): a number or one per model.
        weight_decay: ``wd`` of ``wd / 2 ||W||^2`` (weights only): a number or one per model.
        epochs, batch_size, lr: Adam on shuffled minibatches.
        seeds: per-model shuffling seeds (default ``0..K-1``): model k visits its rows in the
            order of ``torch.randperm(N, generator=torch.Generator().manual_seed(seeds[k]))``.
        progress: a tqdm bar over epochs.
        step: ``'manual'`` (default: hand-written forward and backward pass, Adam on one flat
            buffer; several times faster) or ``'autograd'`` (autograd and
            ``torch.optim.Adam``): the same draws and the same updates to float rounding
            (:data:`~shrinkdrop.ensemble.step.STEPS`).

    Returns:
        :class:`StackedHistory`; the model is left in eval mode.
    """
    if not isinstance(model, StackedNoisyMLP):
        raise TypeError(f"model has to be a StackedNoisyMLP, but got {type(model).__name__}")
    K = model.n_models
    obj = check_choice("objective", objective, Objective)
    lik = check_choice("likelihood", likelihood, Likelihood)
    S = check_samples(samples)
    _check_loop(epochs, batch_size, lr, step)
    rows_of, dev, tau_t, wd, gens = _fit_inputs(model, X, y, data_of, lik, tau, weight_decay,
                                                seeds)

    N = X.shape[1]
    history = StackedHistory()
    from tqdm.auto import tqdm

    start = time.perf_counter()
    model.train()
    base = (rows_of * N).view(-1, 1)  # model k's rows: rows_of[k] * N + i of the (G N) rows
    bar = tqdm(range(epochs), disable=not progress, desc=f"{desc}[{obj.value}, K={K}, S={S}]")
    run = _epochs(step, model, X, y, S, batch_size, lr, lik, obj, tau_t, beta, wd)
    try:
        for _ in bar:
            # the shuffling stays on the CPU generators (the same row order on every device)
            perm = (torch.stack([torch.randperm(N, generator=g) for g in gens]) + base).to(dev)
            mean = run.epoch(perm)
            history.loss.append(mean.tolist())
            if progress:
                bar.set_postfix(loss=f"{float(mean.mean()):.4g}")
    finally:
        run.close()
    bar.close()
    history.seconds = time.perf_counter() - start
    model.eval()
    return history
