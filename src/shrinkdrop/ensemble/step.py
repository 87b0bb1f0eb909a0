"""The training step of the stacked networks: the per-model loss (:func:`stacked_loss`), the
hand-written forward and backward pass of the MLP, and the loss head that gives the gradient with
respect to the outputs. See docs/uci.md, "The training step"."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from .._validation import check_choice
from ..enums import Likelihood, Objective
from ..train.likelihoods import categorical_log_likelihood, gaussian_log_density, gaussian_log_norm
from ..train.objectives import objective as _objective
from .model import StackedNoisyMLP, _affine

__all__ = ["stacked_loss", "STEPS"]


def _loglik(out: Tensor, y: Tensor, likelihood: Likelihood, tau: Tensor | None) -> Tensor:
    """``out (K, S, B, d_out)``, ``y (K, B[, ...])`` -> ``(K, S, B)``."""
    if likelihood is Likelihood.CATEGORICAL:
        return categorical_log_likelihood(out, y.unsqueeze(1))
    t = tau.to(out.dtype).view(-1, 1, 1)
    yy = y.reshape(y.shape[0], 1, y.shape[1], -1).to(out.dtype)
    sq = (yy - out).pow(2).sum(-1)
    d = out.shape[-1]
    return gaussian_log_density(sq, t, d)


def stacked_loss(out: Tensor, y: Tensor, *, likelihood: str | Likelihood = "gaussian",
                 tau: Tensor | None = None, objective: str | Objective = "mc",
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
    if lik is Likelihood.GAUSSIAN and tau is None:
        raise ValueError("likelihood='gaussian' needs tau (the (K,) noise precisions), but got "
                         "None")
    ll = _loglik(out, y, lik, tau)  # (K, S, B)
    per = -_objective(ll.transpose(0, 1), obj, beta).mean(-1)  # (K,)
    if weight_decay is not None:
        per = per + 0.5 * weight_decay.to(per.dtype) * sum(
            w.pow(2).flatten(1).sum(1) for w in weights)
    return per


#: how :func:`~shrinkdrop.ensemble.fit_stacked` computes a training step: ``manual`` (the
#: default) runs the hand-written forward and backward pass of the MLP (:func:`_train_forward`,
#: :func:`_train_backward`) and Adam on one flat buffer
#: (:class:`~shrinkdrop.ensemble.adam._FlatAdam`); ``autograd`` runs the network through
#: autograd and ``torch.optim.Adam`` (the reference the manual step is tested against:
#: ``tests/test_ensemble_step.py``). Both draw the same noise in the same order, so they agree
#: to float rounding.
STEPS = ("manual", "autograd")


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
            loss = 0.5 * t * self.total / (self.S * N) - gaussian_log_norm(t, d_out)
        else:
            loss = self.total / N
        self.total = torch.zeros_like(self.total)
        return loss
