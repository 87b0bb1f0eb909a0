"""Adam on one flat buffer holding every parameter of the stacked networks."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

__all__ = ["_FlatAdam"]


class _FlatAdam:
    """``torch.optim.Adam``'s default update on the CPU (its single-tensor path; no weight decay,
    amsgrad or maximize), op for op, on one flat tensor holding every parameter.

    The parameters of ``params`` are re-pointed to views of one buffer (and their gradients
    are views of another), so a step is 7 kernels instead of 7 per parameter tensor;
    :meth:`release` gives each parameter its own storage again. Adam is elementwise, so this
    is Adam on each tensor: bit-identical to ``torch.optim.Adam`` (tested).
    """

    def __init__(self, params: Sequence[Tensor], lr: float,
                 betas: tuple[float, float] = (0.9, 0.999),
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
