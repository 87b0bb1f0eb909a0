"""``NoisyLSTM``: input noise drawn once per sequence, tied or untied across gates."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .. import functional as F
from .. import noise as _noise
from ._base import NoiseLayer, StructuredPrior, _sampling_words

__all__ = ["NoisyLSTM"]


def _shape_error(name: str, want: tuple, got: Tensor) -> ValueError:
    return ValueError(f"{name} has to have shape {want}, but got {tuple(got.shape)}")


def check_recurrent_input(x: object, hx: object, *, input_size: int, hidden_size: int,
                          h_out: int, layers: int, batch_first: bool, lstm: bool,
                          like: Tensor) -> None:
    """What ``nn.LSTM`` / ``nn.GRU`` check before their kernel runs (the noisy layers call the
    kernels directly): ``x`` a floating tensor ``(T, N, D)`` / ``(N, T, D)`` / ``(T, D)`` with
    ``D = input_size`` on the parameters' device and dtype; ``hx`` ``h0`` (and ``c0`` for an
    LSTM) of shape ``(layers, N, h_out)`` (``(layers, N, hidden_size)`` for ``c0``), without
    ``N`` for an unbatched input. A ValueError / TypeError names the argument otherwise."""
    if not isinstance(x, Tensor):
        raise TypeError(f"input has to be a tensor (T, N, D), but got {type(x).__name__}")
    if x.dim() not in (2, 3):
        raise ValueError(f"Expected input (T, N, D), (N, T, D) with batch_first or unbatched "
                         f"(T, D): input has to be 2-D or 3-D, but got a {x.dim()}-D tensor "
                         f"{tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"input has to be a floating tensor, but got {x.dtype}")
    if x.device != like.device:
        raise ValueError(f"input has to be on the parameters' device {like.device}, but got "
                         f"device {x.device}")
    if x.shape[-1] != input_size:
        raise ValueError(f"input has to have input_size={input_size} features in its last "
                         f"dimension, but got {x.shape[-1]} (shape {tuple(x.shape)})")
    if hx is None:
        return
    batched = x.dim() == 3
    n = (x.shape[0] if batch_first else x.shape[1]) if batched else None
    lead = (layers, n) if batched else (layers,)
    if lstm:
        if not isinstance(hx, (tuple, list)) or len(hx) != 2:
            raise TypeError(f"hx has to be a tuple (h0, c0) for an LSTM, but got "
                            f"{type(hx).__name__}")
        pairs = (("h0", hx[0], lead + (h_out,)), ("c0", hx[1], lead + (hidden_size,)))
    else:
        pairs = (("hx", hx, lead + (h_out,)),)
    for name, h, want in pairs:
        if not isinstance(h, Tensor):
            raise TypeError(f"{name} has to be a tensor, but got {type(h).__name__}")
        if tuple(h.shape) != want:
            raise _shape_error(name, want, h)
        if h.device != x.device:
            raise ValueError(f"{name} has to be on the input's device {x.device}, but got "
                             f"{h.device}")


class NoisyLSTM(NoiseLayer):
    """LSTM with multiplicative noise on its inputs, drawn once per sequence (section 5.2).

    Nalisnick & Smyth, Eq. 17-20. ``tie_gates=True``: one ``xi_r`` per input dimension shared by
    the four gates (ARD on the input rows of ``M``; input-only variational dropout with
    Bernoulli). ``tie_gates=False``: gate ``g`` in (i, f, g, o) sees ``x_t * xi_{g}``, one scale
    per (gate, input dimension). The noise is constant over time within a sequence and independent
    across sequences; recurrent weights get none. With ``num_layers > 1`` each layer's input gets
    its own noise. Parameters are named and shaped like ``nn.LSTM`` (``weight_ih_l0``, ...), so
    state dicts interchange.

    Args:
        input_size, hidden_size: as ``nn.LSTM``.
        noise: a :mod:`shrinkdrop.noise` family.
        tie_gates: share the noise across the four gates (default True).
        num_layers: stacked layers (default 1).
        batch_first: input ``(N, T, D)`` (default False: ``(T, N, D)``).
        bias: learn biases (default True).
        share_across_batch: one draw per forward pass for all sequences (default False).
        normalize, generator: as :class:`UnitNoise`.

    Shape:
        input ``(T, N, D)`` / ``(N, T, D)`` / unbatched ``(T, D)``; output ``(T, N, H)``;
        ``(h, c)`` ``(num_layers, N, H)``; noise ``(N, D)`` tied, ``(N, 4, D)`` untied.

    Example:
        >>> lstm = NoisyLSTM(10, 20, shrinkdrop.noise.Bernoulli(0.75), tie_gates=False)
        >>> out, (h, c) = lstm(torch.randn(35, 4, 10))
    """

    def __init__(self, input_size: int, hidden_size: int, noise: _noise.NoiseDistribution,
                 tie_gates: bool = True, num_layers: int = 1, batch_first: bool = False, *,
                 bias: bool = True, share_across_batch: bool = False, normalize: bool = True,
                 generator: torch.Generator | None = None,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        super().__init__(noise, share_across_batch=share_across_batch, normalize=normalize,
                         generator=generator)
        for name, v in (("input_size", input_size), ("hidden_size", hidden_size),
                        ("num_layers", num_layers)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{name} has to be a positive int, but got {v!r}")
        self.input_size, self.hidden_size = input_size, hidden_size
        self.num_layers, self.batch_first = num_layers, bool(batch_first)
        self.tie_gates, self.bias = bool(tie_gates), bool(bias)
        fk = dict(device=device, dtype=dtype)
        self._flat_names: list[list[str]] = []
        for k in range(num_layers):
            d = input_size if k == 0 else hidden_size
            names = [f"weight_ih_l{k}", f"weight_hh_l{k}"]
            setattr(self, names[0], nn.Parameter(torch.empty(4 * hidden_size, d, **fk)))
            setattr(self, names[1], nn.Parameter(torch.empty(4 * hidden_size, hidden_size, **fk)))
            if bias:
                names += [f"bias_ih_l{k}", f"bias_hh_l{k}"]
                setattr(self, names[2], nn.Parameter(torch.empty(4 * hidden_size, **fk)))
                setattr(self, names[3], nn.Parameter(torch.empty(4 * hidden_size, **fk)))
            self._flat_names.append(names)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # nn.LSTM's initialisation
        bound = 1.0 / math.sqrt(self.hidden_size)
        for p in self.parameters():
            nn.init.uniform_(p, -bound, bound)

    def _weights(self) -> list[list[Tensor]]:
        return [[getattr(self, n) for n in names] for names in self._flat_names]

    def forward(self, x: Tensor, hx: tuple[Tensor, Tensor] | None = None
                ) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        check_recurrent_input(x, hx, input_size=self.input_size, hidden_size=self.hidden_size,
                              h_out=self.hidden_size, layers=self.num_layers,
                              batch_first=self.batch_first, lstm=True,
                              like=self.weight_ih_l0)
        return F.noisy_lstm(x, hx, self._weights(), self.noise, self.training or self.mc,
                            hidden_size=self.hidden_size, tie_gates=self.tie_gates,
                            batch_first=self.batch_first, **self._kw())

    def extra_repr(self) -> str:
        s = f"{self.input_size}, {self.hidden_size}, tie_gates={self.tie_gates}"
        if self.num_layers != 1:
            s += f", num_layers={self.num_layers}"
        if self.batch_first:
            s += ", batch_first=True"
        if not self.bias:
            s += ", bias=False"
        return f"{s}, " + super().extra_repr()

    def prior(self, sigma0: float = 1.0) -> StructuredPrior:
        n = "1" if self.share_across_batch else "N"
        if self.tie_gates:
            s, groups, shape = ("LSTM tied gates",
                                "input row r of W_i, W_f, W_g, W_o shares xi_r; U has none",
                                (n, "D_in"))
        else:
            s, groups, shape = ("LSTM untied gates",
                                "input row r of gate g's W_g has its own xi_gr; U has none",
                                (n, 4, "D_in"))
        return StructuredPrior(
            s, groups, shape, self._marginal(self.noise, sigma0),
            f"{s}: xi ~ {self.noise!r}, drawn once per sequence (constant over time); "
            + _sampling_words(self.share_across_batch),
            self.noise, sigma0,
        )
