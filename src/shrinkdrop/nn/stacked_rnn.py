"""``NoisyStackedRNN``: ``nn.LSTM / nn.GRU / nn.RNN(dropout=p)``'s between-layer dropout as noise.

torch applies ``dropout=p`` of a stacked RNN to the output of every layer but the last, one
Bernoulli draw per (time step, sequence, feature), inside its kernel. This module runs the same
recurrence one layer at a time through torch's kernels (dropout 0) and puts a noise family
between the layers, with the same per-element law: ``Bernoulli(1 - p)`` is torch's dropout.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .. import functional as F
from .. import noise as _noise
from ._base import NoiseLayer, StructuredPrior, _sampling_words
from .rnn import check_recurrent_input

__all__ = ["NoisyStackedRNN"]

_KERNELS = {"LSTM": torch._VF.lstm, "GRU": torch._VF.gru, "RNN_TANH": torch._VF.rnn_tanh,
            "RNN_RELU": torch._VF.rnn_relu}


class NoisyStackedRNN(NoiseLayer):
    """A stacked LSTM / GRU / RNN with structured noise between its layers (not within time).

    Built directly (``mode`` ``'LSTM'``, ``'GRU'``, ``'RNN_TANH'`` or ``'RNN_RELU'``; fresh
    parameters initialised as torch's module initialises them) or from an existing module with
    :meth:`from_module` (what :func:`shrinkdrop.convert` does for ``nn.LSTM/GRU/RNN(dropout=p)``
    with ``num_layers > 1``); it holds that module's parameter
    tensors under the same names (``weight_ih_l0``, ..., ``_reverse``, ``weight_hr_l0``), so state
    dicts interchange with the original, and takes and returns what it does (``(out, (h, c))``
    for LSTM, ``(out, h)`` otherwise). The input of layer ``l + 1`` (``l < L - 1``) is
    ``out_l * xi`` with ``xi`` of ``out_l``'s shape: one scale per (sequence, time step, feature):
    the input column ``r`` of ``weight_ih_l{l+1}`` (all gates, both directions) is scaled by
    ``xi_{n,t,r}``. It is drawn per time step, like torch's ``dropout=``, not once per sequence
    (for that, see :class:`NoisyLSTM`). ``share_across_batch=True``: one scale per feature,
    shared by all sequences and time steps (noise ``(1, 1, H)`` per forward pass / sample
    group). ``PackedSequence`` inputs are not supported (``TypeError``).

    Shape: as the wrapped module (``(T, N, D)``, ``(N, T, D)`` with ``batch_first``, or ``(T, D)``).
    """

    #: the noise scales data-dependent mixing weights (attention) or several layers' input
    #: weights: train.noisy_weights / log_prior_hp leave it out
    pairs_with_next_weight = False

    def __init__(self, mode: str, input_size: int, hidden_size: int, num_layers: int,
                 noise: _noise.NoiseDistribution, *, bias: bool = True, batch_first: bool = False,
                 bidirectional: bool = False, proj_size: int = 0,
                 share_across_batch: bool = False, normalize: bool = True,
                 generator: torch.Generator | None = None, device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None, _rnn: nn.RNNBase | None = None) -> None:
        super().__init__(noise, share_across_batch=share_across_batch, normalize=normalize,
                         generator=generator)
        if mode not in _KERNELS:
            raise ValueError(f"mode has to be one of {sorted(_KERNELS)}, but got {mode!r}")
        self.mode, self.input_size, self.hidden_size = mode, int(input_size), int(hidden_size)
        self.num_layers, self.bias = int(num_layers), bool(bias)
        self.batch_first, self.bidirectional = bool(batch_first), bool(bidirectional)
        self.proj_size = int(proj_size)
        if _rnn is None:  # built directly: fresh parameters, initialised as torch's module does
            # torch's common base takes the mode and initialises as nn.LSTM / GRU / RNN do
            _rnn = nn.RNNBase(mode, self.input_size, self.hidden_size, self.num_layers,
                              bias=self.bias, batch_first=self.batch_first,
                              bidirectional=self.bidirectional, proj_size=self.proj_size,
                              device=device, dtype=dtype)
        self._all_weights: list[list[str]] = [list(names) for names in _rnn._all_weights]
        for names in self._all_weights:
            for name in names:
                self.register_parameter(name, _rnn._parameters[name])

    @classmethod
    def from_module(cls, rnn: nn.RNNBase, noise: _noise.NoiseDistribution,
                    **kw: Any) -> NoisyStackedRNN:
        """The noisy twin of ``rnn`` (an ``nn.LSTM``, ``nn.GRU`` or ``nn.RNN``), sharing its
        parameter tensors; ``rnn.dropout`` is replaced by ``noise``."""
        if not isinstance(rnn, (nn.LSTM, nn.GRU, nn.RNN)):
            raise TypeError(f"rnn has to be an nn.LSTM, nn.GRU or nn.RNN, but got "
                            f"{type(rnn).__name__}")
        new = cls(rnn.mode, rnn.input_size, rnn.hidden_size, rnn.num_layers, noise,
                  bias=rnn.bias, batch_first=rnn.batch_first, bidirectional=rnn.bidirectional,
                  proj_size=getattr(rnn, "proj_size", 0), _rnn=rnn, **kw)
        new.train(rnn.training)
        return new

    def _noise_between(self, out: Tensor) -> Tensor:
        noisy = self.training or self.mc
        if self.batch_first or out.dim() == 2:
            return F.unit_noise(out, self.noise, noisy, **self._kw())
        # time-major (T, N, H): the batch is dimension 1 (matters for share_across_batch)
        return F.unit_noise(out.transpose(0, 1), self.noise, noisy, **self._kw()).transpose(0, 1)

    def forward(self, x: Tensor, hx: Tensor | tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, Tensor | tuple[Tensor, Tensor]]:
        if isinstance(x, nn.utils.rnn.PackedSequence):
            raise TypeError("NoisyStackedRNN does not take a PackedSequence; pass a padded "
                            "tensor (and mask the padded steps in the loss)")
        if not isinstance(x, Tensor) or x.dim() not in (2, 3):
            raise ValueError(f"NoisyStackedRNN: Expected input of shape (T, N, D), (N, T, D) or "
                             f"(T, D), but got {getattr(x, 'shape', type(x).__name__)}")
        batched = x.dim() == 3
        lstm = self.mode == "LSTM"
        check_recurrent_input(x, hx, input_size=self.input_size, hidden_size=self.hidden_size,
                              h_out=self.proj_size if self.proj_size > 0 else self.hidden_size,
                              layers=self.num_layers * (2 if self.bidirectional else 1),
                              batch_first=self.batch_first, lstm=lstm,
                              like=next(self.parameters()))
        if not batched:
            x = x.unsqueeze(0 if self.batch_first else 1)
            if hx is not None:
                hx = tuple(h.unsqueeze(1) for h in hx) if lstm else hx.unsqueeze(1)
        n = x.shape[0] if self.batch_first else x.shape[1]
        D = 2 if self.bidirectional else 1
        h_out = self.proj_size if self.proj_size > 0 else self.hidden_size
        if hx is None:
            h0 = x.new_zeros(self.num_layers * D, n, h_out)
            c0 = x.new_zeros(self.num_layers * D, n, self.hidden_size) if lstm else None
        else:
            h0, c0 = hx if lstm else (hx, None)
        kernel = _KERNELS[self.mode]
        hs, cs = [], []
        for layer in range(self.num_layers):
            if layer > 0:
                x = self._noise_between(x)
            sl = slice(layer * D, (layer + 1) * D)
            weights = [getattr(self, name) for d in range(D)
                       for name in self._all_weights[layer * D + d]]
            if lstm:
                x, h, c = kernel(x, (h0[sl], c0[sl]), weights, self.bias, 1, 0.0, self.training,
                                 self.bidirectional, self.batch_first)
                cs.append(c)
            else:
                x, h = kernel(x, h0[sl], weights, self.bias, 1, 0.0, self.training,
                              self.bidirectional, self.batch_first)
            hs.append(h)
        h = torch.cat(hs)
        if not batched:
            x = x.squeeze(0 if self.batch_first else 1)
            h = h.squeeze(1)
        if not lstm:
            return x, h
        c = torch.cat(cs)
        return x, (h, c if batched else c.squeeze(1))

    def extra_repr(self) -> str:
        s = f"{self.mode}, {self.input_size}, {self.hidden_size}, num_layers={self.num_layers}"
        if self.batch_first:
            s += ", batch_first=True"
        if self.bidirectional:
            s += ", bidirectional=True"
        if self.proj_size:
            s += f", proj_size={self.proj_size}"
        return f"{s}, " + super().extra_repr()

    def prior(self, sigma0: float = 1.0) -> StructuredPrior:
        shape = ("1", "1", "H") if self.share_across_batch else ("N", "T", "H")
        return StructuredPrior(
            "between RNN layers",
            "input column r of weight_ih_l{l+1} (all gates, both directions) shares xi_ntr: one "
            "scale per (sequence, time step, input dim), not per sequence; recurrent weights none",
            shape, self._marginal(self.noise, sigma0),
            f"between-layer noise: xi ~ {self.noise!r}, drawn per time step (torch's dropout=); "
            + _sampling_words(self.share_across_batch),
            self.noise, sigma0,
        )
