"""``NoisyLSTM``: input noise drawn once per sequence, tied or untied across gates."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .. import functional as F
from .. import noise as _noise
from ._base import NoiseLayer, StructuredPrior, _sampling_words

__all__ = ["NoisyLSTM"]


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
