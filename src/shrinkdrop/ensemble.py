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
  (weights only), with the objectives of :mod:`shrinkdrop.objectives` applied to the model's
  ``(S, B)`` log-likelihoods;
* the noise of model ``k`` is drawn from its own law by :func:`shrinkdrop.functional.draw_noise`
  (per example and unit: ARD noise, as :class:`shrinkdrop.nn.UnitNoise`); models sharing a law
  share one draw call. Only the random streams differ from a sequential run.

With the noise switched off (every law a point mass) a stacked fit reproduces separate
:func:`shrinkdrop.fit` runs to float rounding; with noise, the same laws.

A training step (``fit_stacked(step='manual')``, the default) runs a hand-written forward and
backward pass of the MLP and Adam on one flat buffer, with the noise drawn in blocks for several
steps (:class:`_NoisePool`); ``step='autograd'`` is the reference it is tested against (the same
weights to float rounding, noise on). See docs/uci.md, "The training step".
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from . import functional as F
from ._validation import check_choice, positive_float
from .noise import NoiseDistribution
from .objectives import Likelihood, Objective, _check_samples, categorical_log_likelihood
from .objectives import objective as _objective

__all__ = ["StackedNoisyMLP", "fit_stacked", "stacked_loss", "StackedHistory",
           "stacked_predictive", "stacked_fit_tau", "init_linears_", "INITS", "STEPS"]

_LOG_2PI = math.log(2 * math.pi)


#: weight initialisations: ``torch`` (``nn.Linear``'s default) or ``keras`` (Keras' Dense
#: default, as in MC dropout's published UCI code: Glorot-uniform weights, zero biases)
INITS = ("torch", "keras")


def init_linears_(linears: Sequence[nn.Linear], init: str = "torch") -> None:
    """Re-initialise freshly built ``nn.Linear`` layers (in order, from the global RNG).

    ``'torch'`` leaves them as built; ``'keras'`` draws the weights Glorot-uniform,
    ``U(-a, a)`` with ``a = sqrt(6 / (fan_in + fan_out))`` (``nn.init.xavier_uniform_``), and
    zeroes the biases, as Keras' ``Dense`` does by default.
    """
    init = check_init(init)
    if init == "keras":
        with torch.no_grad():
            for lin in linears:
                nn.init.xavier_uniform_(lin.weight)
                if lin.bias is not None:
                    nn.init.zeros_(lin.bias)


def check_init(init) -> str:
    if init not in INITS:
        raise ValueError(f"init has to be one of {', '.join(INITS)}, but got {init!r}")
    return init


def _groups(noises: Sequence[NoiseDistribution]) -> list[tuple[NoiseDistribution, int, int]]:
    """Runs of consecutive models sharing one law object: ``(noise, start, stop)``."""
    out: list[tuple[NoiseDistribution, int, int]] = []
    for k, nz in enumerate(noises):
        if out and out[-1][0] is nz:
            out[-1] = (nz, out[-1][1], k + 1)
        else:
            out.append((nz, k, k + 1))
    return out


def _affine(u: Tensor, w: Tensor, b: Tensor) -> Tensor:
    """``u @ w + b`` for every model: ``(K, n, a) x (K, a, c) + (K, 1, c) -> (K, n, c)``.

    With one output (``c = 1``, regression) the product is taken as ``(K, 1, a) x (K, a, n)``:
    a batched matrix-vector product with one output column takes MKL's slow path (5-7x the
    time of the same product with one output *row* at K = 36, n = 128, a = 50, one thread;
    docs/uci.md, "The training step")."""
    if w.shape[2] == 1:
        K, n = u.shape[0], u.shape[1]
        return torch.baddbmm(b, w.reshape(K, 1, -1), u.transpose(1, 2)).view(K, n, 1)
    return torch.baddbmm(b, u, w)


class StackedNoisyMLP(nn.Module):
    """``K`` independent MLPs with multiplicative unit noise before every linear layer.

    Model ``k`` is ``noise_k -> Linear(sizes[0], sizes[1]) -> ReLU -> noise_k -> ... ->
    Linear(sizes[-2], sizes[-1])``: the network of MC dropout's UCI experiments with each
    ``Dropout`` replaced by :class:`shrinkdrop.nn.UnitNoise` (one draw per example and input
    unit), for ``K`` models at once.

    Args:
        sizes: layer widths ``[d_in, hidden..., d_out]`` (at least two).
        noises: one noise law per model (length ``K``); pass the *same object* for models that
            share a law (consecutive models sharing an object share one draw call).
        seeds: per-model initialisation seeds (default ``0..K-1``): model ``k``'s layers are
            initialised as ``nn.Linear`` layers built in order after ``torch.manual_seed``
            (then re-initialised by :func:`init_linears_` with ``init``).
        init: ``'torch'`` (default, ``nn.Linear``'s) or ``'keras'`` (Glorot-uniform weights, zero
            biases).
        normalize: divide the noise by its mean (default True).
        generator: the noise draws' :class:`torch.Generator`.

    Shapes: ``forward`` takes ``(K, N, d_in)`` and returns ``(K, N, d_out)``.
    """

    def __init__(self, sizes: Sequence[int], noises: Sequence[NoiseDistribution], *,
                 seeds: Sequence[int] | None = None, normalize: bool = True,
                 generator: torch.Generator | None = None, init: str = "torch"):
        super().__init__()
        check_init(init)
        sizes = [int(s) for s in sizes]
        if len(sizes) < 2 or any(s < 1 for s in sizes):
            raise ValueError(f"sizes has to be at least two positive widths [d_in, ..., d_out], "
                             f"but got {sizes}")
        noises = list(noises)
        if not noises:
            raise ValueError("noises has to hold one noise law per model, but got none")
        for i, nz in enumerate(noises):
            F.check_noise(nz, f"noises[{i}]")
        K = len(noises)
        seeds = list(range(K)) if seeds is None else [int(s) for s in seeds]
        if len(seeds) != K:
            raise ValueError(f"seeds has to have one seed per model ({K}), but got {len(seeds)}")
        self.sizes, self.noises = sizes, noises
        self.normalize, self.generator = normalize, generator
        self._groups = _groups(noises)
        for nz, _, _ in self._groups:
            if normalize:
                nz.normalizing_mean("StackedNoisyMLP")
        ws = [[] for _ in sizes[1:]]
        bs = [[] for _ in sizes[1:]]
        with torch.random.fork_rng(devices=[]):
            for s in seeds:
                torch.manual_seed(s)
                lins = [nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:])]
                init_linears_(lins, init)
                for i, lin in enumerate(lins):
                    ws[i].append(lin.weight.detach().t())
                    bs[i].append(lin.bias.detach())
        self.weights = nn.ParameterList(nn.Parameter(torch.stack(w)) for w in ws)  # (K, a, b)
        self.biases = nn.ParameterList(nn.Parameter(torch.stack(b).unsqueeze(1)) for b in bs)

    @property
    def n_models(self) -> int:
        return len(self.noises)

    def draw(self, shape: tuple[int, int], dtype=None, out: Tensor | None = None) -> Tensor:
        """Normalised noise for all models: ``(K, *shape)``, model k's from its own law;
        written into the contiguous ``out`` of that shape when given (no new memory)."""
        n, d = shape
        if out is None:
            out = torch.empty((self.n_models, n, d), dtype=dtype or torch.get_default_dtype(),
                              device=self.weights[0].device)
        elif tuple(out.shape) != (self.n_models, n, d) or not out.is_contiguous():
            raise ValueError(f"out has to be a contiguous {(self.n_models, n, d)} tensor, but "
                             f"got shape {tuple(out.shape)}")
        for nz, a, b in self._groups:  # each law fills its models' slice in place
            F._draw_into(nz, out[a:b], normalize=self.normalize, generator=self.generator)
        return out

    def _eval_factors(self, dtype) -> Tensor | None:
        if self.normalize:
            return None
        f = [F._eval_factor(nz, False, "StackedNoisyMLP") for nz in self.noises]
        return torch.tensor(f, dtype=dtype, device=self.weights[0].device).view(-1, 1, 1)

    def forward(self, x: Tensor, noise: bool | None = None) -> Tensor:
        """``(K, N, d_in) -> (K, N, d_out)``; noise in train mode (or ``noise=True``), else the
        noise's mean (1 when normalised)."""
        if x.ndim != 3 or x.shape[0] != self.n_models or x.shape[2] != self.sizes[0]:
            raise ValueError(f"x has to have shape (K={self.n_models}, N, d_in={self.sizes[0]}), "
                             f"but got {tuple(x.shape)}")
        noise = self.training if noise is None else noise
        factor = None if noise else self._eval_factors(x.dtype)
        inplace = not torch.is_grad_enabled()  # no autograd: reuse the fresh buffers
        h = x
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            if noise:
                xi = self.draw((h.shape[1], h.shape[2]), h.dtype)
                h = xi.mul_(h) if inplace else h * xi
            elif factor is not None:
                h = h * factor
            h = _affine(h, w, b)
            if i < last:
                h = h.relu_() if inplace else torch.relu(h)
        return h

    def model(self, k: int) -> nn.Sequential:
        """Model ``k`` as an ordinary ``nn.Sequential`` of ``UnitNoise`` and ``nn.Linear``
        layers (a copy of its current weights)."""
        from .nn import UnitNoise

        layers: list[nn.Module] = []
        last = len(self.weights) - 1
        for i, (w, b) in enumerate(zip(self.weights, self.biases)):
            layers.append(UnitNoise(self.noises[k], normalize=self.normalize))
            lin = nn.Linear(w.shape[1], w.shape[2])
            with torch.no_grad():
                lin.weight.copy_(w[k].t())
                lin.bias.copy_(b[k, 0])
            layers.append(lin)
            if i < last:
                layers.append(nn.ReLU())
        return nn.Sequential(*layers)


@dataclass
class StackedHistory:
    """What :func:`fit_stacked` did: per-epoch mean training loss of every model ``(epochs, K)``
    and the wall time."""

    loss: list[list[float]] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def epochs(self) -> int:
        """Epochs run (as :class:`shrinkdrop.objectives.History`)."""
        return len(self.loss)


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


def _check_data(X: Tensor, y: Tensor, rows_of: Tensor, K: int):
    if not isinstance(X, Tensor) or not isinstance(y, Tensor):
        raise TypeError("X and y have to be tensors")
    if X.ndim != 3:
        raise ValueError(f"X has to have shape (G, N, d) (G data sets of N rows), but got "
                         f"{tuple(X.shape)}")
    if y.shape[:2] != X.shape[:2]:
        raise ValueError(f"y has to have shape (G, N[, ...]) matching X {tuple(X.shape[:2])}, "
                         f"but got {tuple(y.shape)}")
    if X.shape[1] == 0:
        raise ValueError("X has to have at least one row, but got 0")
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
        raise ValueError(f"X is on {dev} but the model's parameters are on {pdev}: move one of "
                         f"them (model.to({str(dev)!r}))")
    if y.device != dev:
        raise ValueError(f"y has to be on X's device {dev}, but it is on {y.device}")
    gen = generator if generator is not None else model.generator
    if gen is not None and gen.device.type != dev.type:
        raise ValueError(f"the model's noise generator is on {gen.device} but X is on {dev}: "
                         f"give StackedNoisyMLP a torch.Generator(device={str(dev)!r})")
    return dev


def _loglik(out: Tensor, y: Tensor, likelihood: Likelihood, tau: Tensor | None) -> Tensor:
    """``out (K, S, B, d_out)``, ``y (K, B[, ...])`` -> ``(K, S, B)``."""
    if likelihood is Likelihood.CATEGORICAL:
        return categorical_log_likelihood(out, y.unsqueeze(1))
    t = tau.to(out.dtype).view(-1, 1, 1)
    yy = y.reshape(y.shape[0], 1, y.shape[1], -1).to(out.dtype)
    sq = (yy - out).pow(2).sum(-1)
    d = out.shape[-1]
    return -0.5 * t * sq + d * (0.5 * t.log() - 0.5 * _LOG_2PI)


def stacked_loss(out: Tensor, y: Tensor, *, likelihood="gaussian", tau=None, objective="mc",
                 beta: float = -1.0, weight_decay: Tensor | None = None,
                 weights: Sequence[Tensor] = ()) -> Tensor:
    """Per-model minibatch loss of :func:`shrinkdrop.fit`, for ``K`` models at once.

    ``loss_k = -mean_n objective_n(ll_k[:, n]) + weight_decay_k / 2 * sum_W ||W_k||^2`` with
    ``ll_k`` the ``(S, B)`` per-draw log-likelihoods of model ``k``.

    Args:
        out: ``(K, S, B, d_out)`` network outputs (S noise draws of a minibatch of B rows).
        y: ``(K, B)`` targets (regression) or labels (categorical).
        tau: ``(K,)`` Gaussian precisions; weight_decay: ``(K,)`` or None; weights: stacked
            ``(K, ...)`` weight tensors.

    Returns: ``(K,)``.
    """
    lik = check_choice("likelihood", likelihood, Likelihood)
    obj = check_choice("objective", objective, Objective)
    ll = _loglik(out, y, lik, tau)  # (K, S, B)
    per = -_objective(ll.transpose(0, 1), obj, beta).mean(-1)  # (K,)
    if weight_decay is not None:
        per = per + 0.5 * weight_decay.to(per.dtype) * sum(
            w.pow(2).flatten(1).sum(1) for w in weights)
    return per


#: how :func:`fit_stacked` computes a training step: ``manual`` (the default) runs the
#: hand-written forward and backward pass of the MLP (:func:`_train_forward`,
#: :func:`_train_backward`) and Adam on one flat buffer (:class:`_FlatAdam`); ``autograd`` runs
#: the network through autograd and ``torch.optim.Adam`` (the reference the manual step is
#: tested against: ``tests/test_ensemble_step.py``). Both draw the same noise in the same
#: order, so they agree to float rounding.
STEPS = ("manual", "autograd")


class _FlatAdam:
    """``torch.optim.Adam``'s default update on the CPU (its single-tensor path; no weight decay,
    amsgrad or maximize), op for op, on one flat tensor holding every parameter.

    The parameters of ``params`` are re-pointed to views of one buffer (and their gradients
    are views of another), so a step is 7 kernels instead of 7 per parameter tensor;
    :meth:`release` gives each parameter its own storage again. Adam is elementwise, so this
    is Adam on each tensor: bit-identical to ``torch.optim.Adam`` (tested).
    """

    def __init__(self, params: Sequence[Tensor], lr: float, betas=(0.9, 0.999),
                 eps: float = 1e-8):
        self.params = list(params)
        self.flat = torch.cat([q.detach().reshape(-1) for q in self.params])
        self.grad = torch.zeros_like(self.flat)
        self.grads = []
        o = 0
        for q in self.params:
            n = q.numel()
            q.data = self.flat[o: o + n].view(q.shape)
            self.grads.append(self.grad[o: o + n].view(q.shape))
            o += n
        self.exp_avg = torch.zeros_like(self.flat)
        self.exp_avg_sq = torch.zeros_like(self.flat)
        self.lr, self.betas, self.eps, self.t = lr, betas, eps, 0

    def step(self) -> None:
        self.t += 1
        beta1, beta2 = self.betas
        g = self.grad
        self.exp_avg.lerp_(g, 1 - beta1)
        self.exp_avg_sq.mul_(beta2).addcmul_(g, g, value=1 - beta2)
        step_size = self.lr / (1 - beta1 ** self.t)
        denom = (self.exp_avg_sq.sqrt() / (1 - beta2 ** self.t) ** 0.5).add_(self.eps)
        self.flat.addcdiv_(self.exp_avg, denom, value=-step_size)

    def release(self) -> None:
        for q in self.params:
            q.data = q.data.clone()


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


def _autograd_forward(model: StackedNoisyMLP, x: Tensor, xis: Sequence[Tensor]) -> Tensor:
    """:meth:`StackedNoisyMLP.forward` with the noise given, through autograd: the reference of
    :func:`_train_forward` and :func:`_train_backward`."""
    h = x
    last = len(model.weights) - 1
    for i, (w, b, xi) in enumerate(zip(model.weights, model.biases, xis)):
        h = _affine(h * xi, w, b)
        if i < last:
            h = torch.relu(h)
    return h


def _train_forward(model: StackedNoisyMLP, x: Tensor, xis: Sequence[Tensor]):
    """The noisy forward pass with the noise ``xis`` (per layer ``(K, n, d_i)``; the first is
    overwritten), keeping what :func:`_train_backward` needs: per layer its noisy input
    ``u_i``, and for hidden layers ``m_i = xi_i 1[z_{i-1} > 0]`` (the noise where the ReLU lets
    through), so that ``u_i = relu(z_{i-1}) xi_i = z_{i-1} m_i``: two passes over the hidden
    units, and the backward pass multiplies by ``m_i`` once."""
    us, ms = [], []
    z = x
    for i, (w, b, xi) in enumerate(zip(model.weights, model.biases, xis)):
        if i == 0:  # no gradient flows into the inputs: the noise's buffer becomes u
            m, u = None, xi.mul_(z)
        else:
            m = torch.ops.aten.threshold_backward(xi, z, 0.0)  # xi where z > 0, else 0
            u = z * m
        us.append(u)
        ms.append(m)
        z = _affine(u, w, b)
    return z, (us, ms)


def _train_backward(model: StackedNoisyMLP, saved, g: Tensor, grads: Sequence[Tensor],
                    wd: Tensor | None) -> None:
    """Gradients of the summed loss with respect to every weight and bias, written into
    ``grads`` (``[dW_0, ..., dW_L, db_0, ..., db_L]``), given ``g = dloss / d out``
    ``(K, n, d_out)``: for ``z_i = u_i W_i + b_i`` with ``u_i = relu(z_{i-1}) xi_i``,
    ``dW_i = u_i^T g_i``, ``db_i = sum_n g_i`` and ``g_{i-1} = (g_i W_i^T) xi_i 1[z_{i-1} >
    0]``; weight decay adds ``wd_k W``."""
    us, ms = saved
    L = len(model.weights)
    K, n = g.shape[0], g.shape[1]
    if L == 2 and model.sizes[-1] == 1:
        _one_hidden_one_output_backward(model, us, ms[1], g, grads)
        L = 0
    for i in reversed(range(L)):
        w, u = model.weights[i], us[i]
        gw, gb = grads[i], grads[L + i]
        if w.shape[2] == 1:  # one output: (K, 1, n) x (K, n, a), the fast shape (_affine)
            torch.bmm(g.view(K, 1, n), u, out=gw.view(K, 1, -1))
        else:
            torch.bmm(u.transpose(1, 2), g, out=gw)
        torch.sum(g, 1, keepdim=True, out=gb)
        if i > 0:
            gu = g * w.reshape(K, 1, -1) if w.shape[2] == 1 else torch.bmm(g, w.transpose(1, 2))
            g = gu.mul_(ms[i])
    if wd is not None:
        for w, gw in zip(model.weights, grads):
            gw.addcmul_(wd, w)


def _one_hidden_one_output_backward(model: StackedNoisyMLP, us, m: Tensor, g: Tensor,
                                    grads: Sequence[Tensor]) -> None:
    """:func:`_train_backward` of the UCI network (one hidden layer, one output) without a
    pass over the hidden units: with ``g (K, n, 1)`` and ``w = W_1 (K, H, 1)``, ``dz_0 = g w^T
    m``, so ``dW_0 = u_0^T dz_0 = ((g u_0)^T m) w^T`` and ``db_0 = (g^T m) w^T``: one
    ``(K, d + 1, n) x (K, n, H)`` product of the small ``[g u_0, g]`` with ``m``, its
    ``(K, d + 1, H)`` result scaled by ``w``, instead of forming the ``(K, n, H)`` ``dz_0``
    (two passes over it) and reducing it."""
    u0, u1 = us
    K, n, d = u0.shape
    w = model.weights[1].reshape(K, 1, -1)
    torch.bmm(g.view(K, 1, n), u1, out=grads[1].view(K, 1, -1))  # dW_1 = u_1^T g
    torch.sum(g, 1, keepdim=True, out=grads[3])  # db_1
    a = torch.cat([u0 * g, g], 2)  # (K, n, d + 1)
    r = torch.bmm(a.transpose(1, 2), m)  # (K, d + 1, H)
    torch.mul(r[:, :d], w, out=grads[0])
    torch.mul(r[:, d:], w, out=grads[2])


class _Head:
    """The data term of :func:`stacked_loss` (no weight decay) for a training run: per step the
    gradient with respect to ``out (K, S B, d_out)``, summing the per-model loss x rows over
    the epoch in ``total`` (float64). Gaussian MC in closed form, ``dloss_k / d out = tau_k
    (out - y) / (S B)`` (the per-step loss is affine in the summed squared errors, so only
    those are summed); otherwise by autograd through :func:`stacked_loss` alone (the MLP
    itself never enters autograd)."""

    def __init__(self, lik: Likelihood, obj: Objective, tau: Tensor | None, beta: float, S: int,
                 K: int, dtype, device):
        self.lik, self.obj, self.tau, self.beta, self.S = lik, obj, tau, beta, S
        self.closed = lik is Likelihood.GAUSSIAN and obj is Objective.MC
        self.total = torch.zeros(K, dtype=torch.float64, device=device)
        if self.closed:
            self.t = tau.to(dtype).view(-1, 1, 1, 1)
            self.scale: dict[int, Tensor] = {}

    def __call__(self, out: Tensor, yb: Tensor) -> Tensor:
        K, n = out.shape[0], out.shape[1]
        S, B = self.S, n // self.S
        if self.closed:
            r = out.view(K, S, B, -1) - yb.reshape(K, 1, B, -1).to(out.dtype)
            self.total += r.pow(2).sum((1, 2, 3))  # / S and the constants: in epoch_loss
            if B not in self.scale:
                self.scale[B] = self.t / (S * B)
            return r.mul_(self.scale[B]).view(K, n, -1)
        o = out.view(K, S, B, -1).detach().requires_grad_()
        with torch.enable_grad():
            per = stacked_loss(o, yb, likelihood=self.lik, tau=self.tau, objective=self.obj,
                               beta=self.beta)
            (g,) = torch.autograd.grad(per.sum(), o)
        self.total += per.detach().double() * B
        return g.reshape(K, n, -1).contiguous()

    def epoch_loss(self, N: int, d_out: int) -> Tensor:
        """The epoch's mean per-model data loss ``(K,)``; resets the sum."""
        if self.closed:
            t = self.tau.double()
            loss = 0.5 * t * self.total / (self.S * N) - d_out * (0.5 * t.log() - 0.5 * _LOG_2PI)
        else:
            loss = self.total / N
        self.total = torch.zeros_like(self.total)
        return loss


def fit_stacked(
    model: StackedNoisyMLP,
    X: Tensor,
    y: Tensor,
    *,
    data_of: Sequence[int] | Tensor | None = None,
    likelihood="gaussian",
    objective="mc",
    samples: int = 1,
    tau=None,
    weight_decay=0.0,
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
            (:data:`STEPS`).

    Returns:
        :class:`StackedHistory`; the model is left in eval mode.
    """
    if not isinstance(model, StackedNoisyMLP):
        raise TypeError(f"model has to be a StackedNoisyMLP, but got {type(model).__name__}")
    K = model.n_models
    obj = check_choice("objective", objective, Objective)
    lik = check_choice("likelihood", likelihood, Likelihood)
    S = _check_samples(samples)
    for name, v in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"{name} has to be a positive integer, but got {v!r}")
    positive_float("lr", lr)
    if step not in STEPS:
        raise ValueError(f"step has to be one of {', '.join(STEPS)}, but got {step!r}")
    rows_of = torch.arange(K) if data_of is None else torch.as_tensor(data_of, dtype=torch.long)
    _check_data(X, y, rows_of, K)
    dev = _check_device(model, X, y)
    tau_t = _precisions(tau, lik, K, X.dtype)
    tau_t = tau_t.to(dev) if tau_t is not None else None
    wd = _per_model("weight_decay", weight_decay, K)
    if not bool(torch.all(torch.isfinite(wd) & (wd >= 0))):
        raise ValueError(f"weight_decay has to be >= 0 and finite, but got {wd.tolist()}")
    wd = wd.to(dtype=X.dtype, device=dev).view(-1, 1, 1)
    seeds = list(range(K)) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != K:
        raise ValueError(f"seeds has to have one seed per model ({K}), but got {len(seeds)}")

    N = X.shape[1]
    gens = [torch.Generator().manual_seed(s) for s in seeds]
    history = StackedHistory()
    decay = bool(torch.any(wd > 0))
    from tqdm.auto import tqdm

    start = time.perf_counter()
    model.train()
    Xf = X.reshape(-1, X.shape[2])  # (G N, d): rows of model k's data at rows_of[k] * N + i
    yf = y.reshape(X.shape[0] * N, *y.shape[2:])
    base = (rows_of * N).view(-1, 1)
    bar = tqdm(range(epochs), disable=not progress, desc=f"{desc}[{obj.value}, K={K}, S={S}]")
    params = list(model.weights) + list(model.biases)
    pool = _NoisePool(model, S * min(batch_size, N))
    gathered = None
    if step == "manual":
        adam = _FlatAdam(params, lr)
        wd_g = wd if decay else None
        wd_v = wd.view(-1)
        head = _Head(lik, obj, tau_t, beta, S, K, X.dtype, dev)
        wsq = torch.zeros(K, dtype=torch.float64, device=dev)
    else:
        opt = torch.optim.Adam(params, lr=lr)
    try:
        for _ in bar:
            # the shuffling stays on the CPU generators (the same row order on every device)
            perm = (torch.stack([torch.randperm(N, generator=g) for g in gens]) + base).to(dev)
            if step == "manual":
                with torch.no_grad():
                    # the epoch's rows in visiting order, once; minibatches are views of it
                    flat = perm.reshape(-1)
                    if gathered is None:  # kept across epochs: no fresh pages per epoch
                        gathered = (Xf.new_empty((K * N, *Xf.shape[1:])),
                                    yf.new_empty((K * N, *yf.shape[1:])))
                    Xp = torch.index_select(Xf, 0, flat, out=gathered[0]).view(K, N, -1)
                    yp = torch.index_select(yf, 0, flat, out=gathered[1]).view(
                        K, N, *yf.shape[1:])
                    for i in range(0, N, batch_size):
                        xb, yb = Xp[:, i: i + batch_size], yp[:, i: i + batch_size]
                        B = xb.shape[1]
                        xs = xb.repeat(1, S, 1) if S > 1 else xb
                        out, saved = _train_forward(model, xs, pool.take(S * B, X.dtype))
                        g = head(out, yb)
                        if decay:  # sum_W ||W_k||^2 x rows, for the epoch's loss
                            for w in model.weights:
                                w2 = w.view(K, -1)
                                wsq.add_(torch.linalg.vecdot(w2, w2), alpha=B)
                        _train_backward(model, saved, g, adam.grads, wd_g)
                        adam.step()
                mean = head.epoch_loss(N, model.sizes[-1])
                if decay:
                    mean = mean + 0.5 * wd_v.double() * wsq / N
                    wsq.zero_()
            else:
                total = torch.zeros(K, dtype=torch.float64, device=dev)
                for i in range(0, N, batch_size):
                    idx = perm[:, i: i + batch_size]  # (K, B): rows of Xf
                    B = idx.shape[1]
                    flat = idx.reshape(-1)
                    xb = Xf.index_select(0, flat).view(K, B, -1)  # (K, B, d)
                    yb = yf.index_select(0, flat).view(K, B, *yf.shape[1:])  # (K, B[, ...])
                    xs = xb.repeat(1, S, 1) if S > 1 else xb
                    out = _autograd_forward(model, xs, pool.take(S * B, X.dtype))
                    out = out.view(K, S, B, -1)
                    per = stacked_loss(out, yb, likelihood=lik, tau=tau_t, objective=obj,
                                       beta=beta, weight_decay=wd.view(-1) if decay else None,
                                       weights=model.weights)
                    opt.zero_grad(set_to_none=True)
                    per.sum().backward()
                    opt.step()
                    total += per.detach().double() * B
                mean = total / N
            history.loss.append(mean.tolist())
            if progress:
                bar.set_postfix(loss=f"{float(mean.mean()):.4g}")
    finally:
        if step == "manual":
            adam.release()
    bar.close()
    history.seconds = time.perf_counter() - start
    model.eval()
    return history


@torch.no_grad()
@contextlib.contextmanager
def _noisy(model: StackedNoisyMLP, generator: torch.Generator | None):
    """The model in train mode (noise on), drawing from ``generator`` when one is given; both
    restored after."""
    was, old_gen = model.training, model.generator
    model.train()
    if generator is not None:
        model.generator = generator
    try:
        yield model
    finally:
        model.generator = old_gen
        model.train(was)


def _mc_blocks(model: StackedNoisyMLP, xe: Tensor, samples: int, max_elements: int,
               scale=None):
    """Noisy outputs of every model in blocks of rows x samples: yields ``(r0, out)`` with
    ``out (K, s, nr, d_out)`` for rows ``r0 .. r0 + nr - 1`` of ``xe (K, n, d)``, ``samples``
    draws per row in all (in the target's units when ``scale = (y_mean, y_std)``, each
    ``(K, 1, 1)``). The blocks are small enough to stay in cache (the passes are memory-bound).
    """
    K, n = xe.shape[0], xe.shape[1]
    width = max(model.sizes)
    rows = max(1, min(n, max_elements // (K * width)))
    chunk = max(1, min(samples, max_elements // max(1, K * rows * width)))
    for r0 in range(0, n, rows):
        xr = xe[:, r0: r0 + rows]
        nr = xr.shape[1]
        done = 0
        while done < samples:
            s = min(chunk, samples - done)
            out = model(xr.repeat(1, s, 1), noise=True).view(K, s, nr, -1)
            if scale is not None:
                out = out * scale[1].unsqueeze(1) + scale[0].unsqueeze(1)
            yield r0, out
            done += s


def _target_scale(y_mean, y_std, K: int, dtype, dev) -> tuple[Tensor, Tensor]:
    fk = dict(dtype=dtype, device=dev)
    ym = _per_model("y_mean", 0.0 if y_mean is None else y_mean, K).to(**fk).view(-1, 1, 1)
    ys = _per_model("y_std", 1.0 if y_std is None else y_std, K).to(**fk).view(-1, 1, 1)
    return ym, ys


@torch.no_grad()
def stacked_predictive(
    model: StackedNoisyMLP,
    X: Tensor,
    y: Tensor,
    samples: int,
    *,
    data_of: Sequence[int] | Tensor | None = None,
    likelihood="gaussian",
    tau=None,
    y_mean=None,
    y_std=None,
    max_elements: int = 2 ** 21,
    generator: torch.Generator | None = None,
) -> dict[str, Tensor]:
    """MC predictive metrics of every model on its evaluation set, in chunks of samples.

    For Gaussian regression, Gal's UCI convention per model (``tau``, ``y`` in the target's
    units; ``yhat_s = out_s * y_std + y_mean``): ``ll_n = logsumexp_s(-tau/2 (y_n - yhat_ns)^2)
    - log S - log(2 pi)/2 + log(tau)/2``, the same as
    :func:`shrinkdrop.objectives.predictive_log_likelihoods`. Categorical: ``logsumexp_s log
    softmax(out_s)[y] - log S``.

    Args:
        X: ``(G, n, d)`` evaluation inputs (standardised as in training); ``y``: ``(G, n)``.
        samples: noise draws per point (``S``), in blocks of rows x samples of about
            ``max_elements`` hidden activations over all models (default 2^21, 8 MiB in
            float32: measured fastest for 36-72 models; the passes are memory-bound).
        tau: a number, one per model ``(K,)``, or ``J`` per model ``(K, J)``: then every
            precision is scored on the *same* draws and ``ll`` is ``(K, J)``, ``ll_points``
            ``(K, J, n)`` (Gaussian only).
        y_mean, y_std: numbers or one per model (Gaussian only).

    Returns:
        ``{'ll': (K,) mean log-likelihood, 'll_points': (K, n), 'mc_mean': (K, n, d_out) MC mean
        of the outputs in the target's units (regression) or of the class probabilities,
        'mean_pred': (K, n, d_out) the output with the noise replaced by its mean}``.
    """
    K = model.n_models
    S = _check_samples(samples)
    lik = check_choice("likelihood", likelihood, Likelihood)
    rows_of = torch.arange(K) if data_of is None else torch.as_tensor(data_of, dtype=torch.long)
    _check_data(X, y, rows_of, K)
    dev = _check_device(model, X, y, generator)
    xe, ye = X[rows_of.to(dev)], y[rows_of.to(dev)]  # (K, n, d), (K, n)
    n = xe.shape[1]
    multi = lik is Likelihood.GAUSSIAN and torch.as_tensor(tau).ndim == 2
    if multi:
        tau_kj = torch.as_tensor(tau, dtype=torch.float64)
        if tau_kj.shape[0] != K:
            raise ValueError(f"tau has to have one row per model ({K}), but got shape "
                             f"{tuple(tau_kj.shape)}")
        taus = [_precisions(tau_kj[:, j], lik, K, X.dtype).to(dev)
                for j in range(tau_kj.shape[1])]
    else:
        tau_t = _precisions(tau, lik, K, X.dtype)
        taus = [tau_t.to(dev) if tau_t is not None else None]
    J = len(taus)
    scale = _target_scale(y_mean, y_std, K, X.dtype, dev) if lik is Likelihood.GAUSSIAN \
        else None
    with _noisy(model, generator):
        run_max = torch.full((J, K, n), -math.inf, dtype=torch.float64, device=dev)
        run_sum = torch.zeros((J, K, n), dtype=torch.float64, device=dev)
        mc_sum = None
        for r0, out in _mc_blocks(model, xe, S, max_elements, scale):
            nr = out.shape[2]
            yr = ye[:, r0: r0 + nr]
            part = (out if lik is Likelihood.GAUSSIAN else out.softmax(-1)).sum(1).double()
            if mc_sum is None:
                mc_sum = torch.zeros((K, n, part.shape[-1]), dtype=torch.float64, device=dev)
            mc_sum[:, r0: r0 + nr] += part
            for j, t in enumerate(taus):
                lw = _loglik(out, yr, lik, t).double()  # (K, s, nr)
                mx, sm = run_max[j, :, r0: r0 + nr], run_sum[j, :, r0: r0 + nr]
                m = torch.maximum(mx, lw.max(1).values)
                sm.mul_(torch.exp(mx - m)).add_(torch.exp(lw - m.unsqueeze(1)).sum(1))
                mx.copy_(m)
        ll_points = run_max + run_sum.log() - math.log(S)  # (J, K, n)
        try:
            mean_out = model(xe, noise=False)
        except F.EvalNoiseError:  # infinite-mean noise, unnormalised: no weight-scaling rule
            mean_pred = torch.full(mc_sum.shape, math.nan, dtype=torch.float64, device=dev)
        else:
            mean_pred = mean_out * scale[1] + scale[0] if lik is Likelihood.GAUSSIAN \
                else mean_out.softmax(-1)
    ll_points = ll_points.transpose(0, 1) if multi else ll_points[0]
    return {"ll": ll_points.mean(-1), "ll_points": ll_points, "mc_mean": mc_sum / S,
            "mean_pred": mean_pred.double()}


@torch.no_grad()
def stacked_fit_tau(
    model: StackedNoisyMLP,
    X: Tensor,
    y: Tensor,
    samples: int = 1000,
    *,
    data_of: Sequence[int] | Tensor | None = None,
    y_mean=None,
    y_std=None,
    rows: Sequence | None = None,
    max_elements: int = 2 ** 21,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Per model, the Gaussian precision (target's units) that maximises its MC predictive
    log-likelihood on its rows ``(X, y)``: :func:`shrinkdrop.objectives.fit_predictive_precision`
    of the squared errors of ``samples`` noisy passes, as
    :func:`shrinkdrop.objectives.fit_predictive_tau` does for one network. Give it held-out
    rows. The errors are kept in float32: ``K x n x samples`` of them.

    Args:
        rows: subsets of the ``n`` rows (index tensors or boolean masks), each fitted on its
            own from the same draws (e.g. for cross-fitting); default: all rows.

    Returns ``(K,)``, or ``(K, len(rows))`` when ``rows`` is given.
    """
    from .objectives import fit_predictive_precision

    K = model.n_models
    S = _check_samples(samples)
    rows_of = torch.arange(K) if data_of is None else torch.as_tensor(data_of, dtype=torch.long)
    _check_data(X, y, rows_of, K)
    dev = _check_device(model, X, y, generator)
    xe, ye = X[rows_of.to(dev)], y[rows_of.to(dev)]
    n = xe.shape[1]
    subsets = None
    if rows is not None:
        subsets = []
        for i, r in enumerate(rows):
            idx = torch.arange(n)[torch.as_tensor(r)] if torch.as_tensor(r).dtype == torch.bool \
                else torch.as_tensor(r, dtype=torch.long)
            if idx.ndim != 1 or idx.numel() == 0 or int(idx.min()) < 0 or int(idx.max()) >= n:
                raise ValueError(f"rows[{i}] has to select at least one of the {n} rows, but "
                                 f"got {torch.as_tensor(r).tolist()}")
            subsets.append(idx)
    scale = _target_scale(y_mean, y_std, K, X.dtype, dev)
    sq = torch.empty((K, n, S), dtype=torch.float32, device=dev)
    filled = torch.zeros(n, dtype=torch.long)
    with _noisy(model, generator):
        for r0, out in _mc_blocks(model, xe, S, max_elements, scale):
            s, nr = out.shape[1], out.shape[2]
            yy = ye[:, r0: r0 + nr].reshape(K, 1, nr, -1).to(out.dtype)
            e = (yy - out).pow(2).sum(-1)  # (K, s, nr)
            f = int(filled[r0])
            sq[:, r0: r0 + nr, f: f + s] = e.transpose(1, 2)
            filled[r0: r0 + nr] += s
    d = model.sizes[-1]
    sq = sq.cpu()
    if subsets is None:
        return fit_predictive_precision(sq, event_size=d)
    return torch.stack([fit_predictive_precision(sq[:, idx], event_size=d) for idx in subsets],
                       1)
