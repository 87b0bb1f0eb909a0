"""LSTM kernels behind :func:`shrinkdrop.functional.noisy_lstm`: one layer through torch's
fused kernel, the recurrence over precomputed input projections (a Python loop on the CPU,
cuDNN on CUDA) and the untied-gates layer. No noise is drawn here: the callers pass it."""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator, Sequence

import torch
from torch import Tensor


def _quiet_cudnn_rnn(x: Tensor) -> contextlib.AbstractContextManager:
    """On CUDA, cuDNN warns on every call that one layer's weights are not one contiguous
    chunk (nn.LSTM keeps all layers' weights in one flat buffer); here each layer is its own
    call, so cuDNN copies that layer's (small) weights per call: a cost measured in
    benchmarks/bench_layers.py --device cuda, not a defect. The warning is silenced there."""
    return _ignore_rnn_chunk_warning() if x.is_cuda else contextlib.nullcontext()


@contextlib.contextmanager
def _ignore_rnn_chunk_warning() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="RNN module weights are not part of single")
        yield


def _lstm_recurrence(gx: Tensor, h: Tensor, c: Tensor, w_hh: Tensor
                     ) -> tuple[Tensor, Tensor, Tensor]:
    """Run the LSTM recurrence over precomputed input projections ``gx`` (T, N, 4H)."""
    w_hh_t = w_hh.t()
    outs = []
    for t in range(gx.shape[0]):
        gates = torch.addmm(gx[t], h, w_hh_t)
        i, f, g, o = gates.chunk(4, 1)
        c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
        h = torch.sigmoid(o) * torch.tanh(c)
        outs.append(h)
    return torch.stack(outs), h, c


def _lstm_recurrence_fused(gx: Tensor, h: Tensor, c: Tensor, w_hh: Tensor
                           ) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`_lstm_recurrence` through torch's LSTM kernel (cuDNN on CUDA): the projections
    ``gx`` go in as the input with an identity input weight and no bias, so the kernel's input
    GEMM reproduces ``gx`` (a ``4H x 4H`` product per row: cheap on a GPU, too dear on a CPU,
    where the Python loop is kept) and its fused recurrence replaces the loop over time."""
    eye = torch.eye(gx.shape[-1], dtype=gx.dtype, device=gx.device)
    with _quiet_cudnn_rnn(gx):
        out, h, c = torch._VF.lstm(gx, (h.unsqueeze(0), c.unsqueeze(0)), [eye, w_hh], False, 1,
                                   0.0, True, False, False)
    return out, h.squeeze(0), c.squeeze(0)


def _lstm_kernel(x: Tensor, h0: Tensor, c0: Tensor, params: Sequence[Tensor], train: bool
                 ) -> tuple[Tensor, Tensor, Tensor]:
    """One LSTM layer through torch's kernel (cuDNN on CUDA): ``x`` (T, N, D), ``h0``, ``c0``
    (1, N, H), ``params`` in ``nn.LSTM``'s layout; returns the output sequence, h and c."""
    with _quiet_cudnn_rnn(x):
        return torch._VF.lstm(x, (h0, c0), list(params), len(params) == 4, 1, 0.0, train, False,
                              False)


def _untied_lstm_layer(x: Tensor, xi: Tensor, h0: Tensor, c0: Tensor, params: Sequence[Tensor]
                       ) -> tuple[Tensor, Tensor, Tensor]:
    """One LSTM layer whose gate ``g`` sees ``x_t * xi[:, g]`` (untied gates, Eq. 19-20):
    the four input projections of all time steps in one batched matmul, then the recurrence.
    ``x`` (T, N, D); ``xi`` (N or 1, 4, D); ``h0``, ``c0`` (N, H); returns the output sequence
    and h, c as (1, N, H)."""
    T, N, D = x.shape
    w_ih, w_hh = params[0], params[1]
    H = w_hh.shape[1]
    # (4, T, N, D) scaled copies of the inputs, one per gate
    xs = x.unsqueeze(0) * xi.permute(1, 0, 2).unsqueeze(1)
    gx = torch.bmm(xs.reshape(4, T * N, D), w_ih.view(4, H, D).transpose(1, 2))
    gx = gx.view(4, T, N, H).permute(1, 2, 0, 3).reshape(T, N, 4 * H)
    if len(params) == 4:
        gx = gx + (params[2] + params[3])
    recurrence = _lstm_recurrence_fused if gx.is_cuda else _lstm_recurrence
    out, h, c = recurrence(gx, h0, c0, w_hh)
    return out, h.unsqueeze(0), c.unsqueeze(0)
