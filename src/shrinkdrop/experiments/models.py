"""The networks of ``shrinkdrop architectures``: ``nn.Module`` builders over the library's layers.

Nalisnick & Smyth, section 5. Every noise structure comes from :mod:`shrinkdrop.nn`; this module
only wires layers together and, for the residual MLP, evaluates the network with its layer scales
fixed (the ADD read-out, :func:`layer_scale_posterior`).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from .. import noise as N
from ..compress.spec import Residual  # the noise-free residual (NoisyResidual in eval)
from ..nn import NoisyConv2d, NoisyLSTM, NoisyResidual, UnitNoise

__all__ = [
    "Residual",
    "ResidualMLP",
    "layer_scale_posterior",
    "SmallCNN",
    "SequenceInputNoise",
    "Forecaster",
]


# ===================================================================================== resnet
class ResidualMLP(nn.Module):
    """``x -> Linear -> ReLU -> [h + f_l(tau_l (h * xi_l))] x depth -> Linear``, one output.

    ``f_l = ReLU(Linear(width, width))``. ``layer_noise`` gives ADD (one ``tau_l`` per example and
    block, Eq. 15), ``unit_noise`` ARD on each block's input, both ARD+ADD (Eq. 14); neither gives
    the plain residual network.

    Shape: ``(N, d_in) -> (N, 1)``.
    """

    def __init__(self, d_in: int, width: int = 32, depth: int = 6,
                 layer_noise: N.NoiseDistribution | None = None,
                 unit_noise: N.NoiseDistribution | None = None) -> None:
        super().__init__()
        self.inp = nn.Linear(d_in, width)
        self.layer_noise = layer_noise
        blocks = []
        for _ in range(depth):
            f = nn.Sequential(nn.Linear(width, width), nn.ReLU())
            if layer_noise is None and unit_noise is None:
                blocks.append(Residual(f))
            else:
                blocks.append(NoisyResidual(f, layer_noise=layer_noise, unit_noise=unit_noise))
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Linear(width, 1)

    @property
    def depth(self) -> int:
        return len(self.blocks)

    def forward(self, x: Tensor) -> Tensor:
        h = torch.relu(self.inp(x))
        for b in self.blocks:
            h = b(h)
        return self.out(h)

    @torch.no_grad()
    def forward_with_scales(self, x: Tensor, scales: Tensor) -> Tensor:
        """Eval-mode output with the layer scales fixed: ``h_l = h + f_l(scales[l] * h)``.

        ``scales`` is ``(depth,)`` or ``(K, depth)`` (K configurations, output ``(K, N, 1)``).
        ``scales[l] = 1`` is block ``l`` at its noise's mean (what ``eval()`` computes), 0 is
        the block switched off (``tau_l = 0``: the block's weights shrunk to zero). Unit noise is
        at its mean (1).
        """
        single = scales.dim() == 1
        s = scales.reshape(-1, self.depth).to(x.dtype)
        K = s.shape[0]
        h = torch.relu(self.inp(x)).unsqueeze(0).expand(K, -1, -1)
        for i, b in enumerate(self.blocks):
            h = h + b.block(s[:, i, None, None] * h)
        out = self.out(h)
        return out[0] if single else out

    @torch.no_grad()
    def contributions(self, x: Tensor) -> Tensor:
        """Per block, the mean over examples of ``||f_l(h_{l-1})|| / ||h_{l-1}||`` in eval mode."""
        h = torch.relu(self.inp(x))
        ratios = []
        for b in self.blocks:
            f = b.block(h)
            ratios.append((f.norm(dim=-1) / h.norm(dim=-1).clamp_min(1e-12)).mean())
            h = h + f
        return torch.stack(ratios)


@torch.no_grad()
def layer_scale_posterior(model: ResidualMLP, x: Tensor, y: Tensor, keep: float,
                          log_lik: Callable[[Tensor, Tensor], Tensor]) -> dict:
    """Exact posterior over which blocks are on, given the trained weights (Bernoulli ADD).

    With ``tau_l ~ Bernoulli(keep)`` independently (the ADD prior of the trained model) and the
    weights ``W`` fixed at their trained values, enumerate all ``2^depth`` on/off configurations
    ``c``: ``p(c | y, W) propto prod_n p(y_n | x_n, W, c) * keep^|c| (1 - keep)^(depth - |c|)``.
    "On" is the block at its eval scale (``tau_l / E[tau_l] = 1``). This replaces importance
    sampling from the prior by its exact sum, which is affordable for ``depth <= 12``.

    Args:
        model: a :class:`ResidualMLP`.
        x, y: the data that decide (the training set).
        keep: the prior inclusion probability (the ADD noise's keep).
        log_lik: ``(output (K, N, 1), y (N,)) -> (K, N)`` per-example log-likelihoods.

    Returns:
        ``inclusion`` (depth,): posterior ``p(tau_l != 0 | y, W)``; ``map`` (depth,): the most
        probable configuration; ``map_prob``: its posterior probability; ``log_bf_drop`` (depth,):
        ``log p(y | W, all on) - log p(y | W, all on but l)`` (> 0: the data want block l).
    """
    L = model.depth
    if L > 12:
        raise ValueError(f"layer_scale_posterior enumerates 2^depth configurations; depth has to "
                         f"be <= 12, but got {L}")
    if not 0 < keep < 1:
        raise ValueError(f"keep has to be in (0, 1), but got {keep!r}")
    configs = torch.tensor(list(itertools.product((0.0, 1.0), repeat=L)), dtype=x.dtype)
    ll = log_lik(model.forward_with_scales(x, configs), y).sum(-1)  # (K,)
    on = configs.sum(-1)
    log_post = ll + on * math.log(keep) + (L - on) * math.log1p(-keep)
    post = torch.softmax(log_post.double(), 0)
    full = int((configs == 1).all(-1).nonzero()[0])
    drop = []
    for i in range(L):
        c = torch.ones(L, dtype=x.dtype)
        c[i] = 0
        k = int((configs == c).all(-1).nonzero()[0])
        drop.append(float(ll[full] - ll[k]))
    best = int(post.argmax())
    return {
        "inclusion": (post[:, None] * configs.double()).sum(0).float(),
        "map": configs[best],
        "map_prob": float(post[best]),
        "log_bf_drop": torch.tensor(drop),
    }


# ======================================================================================== CNN
class SmallCNN(nn.Module):
    """Two 3x3 conv layers for 8x8 digit images; the second conv carries the prior under test.

    ``conv -> ReLU -> maxpool -> conv2 [-> Dropout2d] -> ReLU -> maxpool -> Linear``.

    Args:
        noise: noise family of the second conv (``NoisyConv2d``), or None (a plain conv).
        tie: ``"channel"``, ``"filter"`` or ``"both"`` (section 5.3).
        dropout2d: ``p`` of an ``nn.Dropout2d`` after the plain second conv (the baseline), or
            None.

    Shape: ``(N, 1, 8, 8) -> (N, n_classes)`` logits.
    """

    def __init__(self, noise: N.NoiseDistribution | None = None, tie: str = "filter",
                 dropout2d: float | None = None, channels: tuple[int, int] = (16, 32),
                 n_classes: int = 10) -> None:
        super().__init__()
        c1, c2 = channels
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        if noise is None:
            self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        else:
            self.conv2 = NoisyConv2d(c1, c2, 3, noise, tie=tie, padding=1)
        self.drop = nn.Dropout2d(dropout2d) if dropout2d is not None else nn.Identity()
        self.fc = nn.Linear(c2 * 2 * 2, n_classes)

    def forward(self, x: Tensor) -> Tensor:
        h = nn.functional.max_pool2d(torch.relu(self.conv1(x)), 2)
        h = nn.functional.max_pool2d(torch.relu(self.drop(self.conv2(h))), 2)
        return self.fc(h.flatten(1))


# ======================================================================================= LSTM
class SequenceInputNoise(nn.Module):
    """Per-sequence input noise for ``nn.LSTM`` built from :class:`shrinkdrop.nn.UnitNoise`.

    One ``xi`` of shape ``(N, 1, D)`` per sequence, the same at every time step: ``UnitNoise``
    applied to an ``(N, 1, D)`` tensor of ones, broadcast over time. With Bernoulli noise this is
    Gal & Ghahramani's variational dropout restricted to the inputs.

    Shape: ``(N, T, D) -> (N, T, D)`` (batch first).
    """

    def __init__(self, noise: N.NoiseDistribution) -> None:
        super().__init__()
        self.unit = UnitNoise(noise)

    def forward(self, x: Tensor) -> Tensor:
        return x * self.unit(x.new_ones(x.shape[0], 1, x.shape[2]))


class Forecaster(nn.Module):
    """Next-step forecaster: an LSTM over a window, a linear read-out of the last hidden state.

    Args:
        d_in, hidden: sizes.
        noise: input noise family, or None.
        kind: ``"lstm"`` (``nn.LSTM``, no noise), ``"tied"`` / ``"untied"`` (``NoisyLSTM`` with
            ``tie_gates`` True / False) or ``"masked"`` (``nn.LSTM`` after
            :class:`SequenceInputNoise`).

    Shape: ``(N, T, d_in) -> (N, 1)``.
    """

    KINDS = ("lstm", "tied", "untied", "masked")

    def __init__(self, d_in: int, hidden: int = 16, noise: N.NoiseDistribution | None = None,
                 kind: str = "lstm") -> None:
        super().__init__()
        if kind not in self.KINDS:
            raise ValueError(f"kind has to be one of {', '.join(map(repr, self.KINDS))}, but "
                             f"got {kind!r}")
        if (noise is None) != (kind == "lstm"):
            raise ValueError(f"kind={kind!r} {'takes no' if kind == 'lstm' else 'needs a'} noise")
        self.pre = SequenceInputNoise(noise) if kind == "masked" else nn.Identity()
        if kind in ("tied", "untied"):
            self.rnn = NoisyLSTM(d_in, hidden, noise, tie_gates=kind == "tied", batch_first=True)
        else:
            self.rnn = nn.LSTM(d_in, hidden, batch_first=True)
        self.head = nn.Linear(hidden, 1)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(self.pre(x))
        return self.head(out[:, -1])
