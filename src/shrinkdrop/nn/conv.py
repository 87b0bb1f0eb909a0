"""``NoisyConv2d``: the three CNN priors of section 5.3."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .. import functional as F
from .. import noise as _noise
from .._validation import check_choice, check_int
from ._base import NoiseLayer, StructuredPrior, _sampling_words
from .sites import SiteMeaning, SVISite

__all__ = ["NoisyConv2d"]


class NoisyConv2d(NoiseLayer):
    """2-d convolution with tied-filter, tied-channel or joint scale noise, per example.

    Nalisnick & Smyth, section 5.3. Scales are tied across the spatial dimensions (translation
    invariance); ``tie`` chooses which of the remaining weights share one:

    * ``"filter"`` (Eq. 23): ``tau_f`` per filter; output map ``f`` times ``tau_f``. Bernoulli is
      ``nn.Dropout2d`` applied to the conv's output (before the bias).
    * ``"channel"`` (Eq. 21-22): ``xi_{c,f}`` per (input channel, filter):
      ``a_{c,f} = (X_c * W_{c,f}) xi_{c,f}``; per example this is a grouped convolution with one
      weight tensor per example (``N`` times the weight memory).
    * ``"both"`` (Eq. 24-25): ``tau_f xi_{c,f}``, both drawn from ``noise``.

    The bias carries no noise. Parameters are ``nn.Conv2d``'s (``weight``, ``bias``), so state
    dicts interchange.

    Args:
        in_channels, out_channels, kernel_size: as ``nn.Conv2d``.
        noise: a :mod:`shrinkdrop.noise` family.
        tie: ``"filter"`` (default), ``"channel"`` or ``"both"``.
        share_across_batch: one draw per forward pass (default False: per example).
        normalize, generator: as :class:`UnitNoise`.
        **conv_kwargs: stride, padding, dilation, groups, bias, padding_mode ("zeros" only),
            device, dtype, as ``nn.Conv2d``.

    Shape:
        input ``(N, C_in, H, W)``; output ``(N, F, H', W')``; noise ``(N, F)`` (filter),
        ``(N, C_in / groups, F)`` (channel), both for "both"; leading 1 when shared.

    Example:
        >>> conv = NoisyConv2d(3, 16, 3, shrinkdrop.noise.Bernoulli(0.9), tie="channel", padding=1)
        >>> y = conv(torch.randn(8, 3, 32, 32))
    """

    _MEANINGS = {
        "xi": SiteMeaning("tied channels (per input channel, filter)",
                          "the kH x kW weights of (channel c, filter f) share xi_cf"),
        "tau": SiteMeaning("tied filters (per filter)",
                           "all weights of filter f share tau_f"),
    }

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int | tuple[int, int],
                 noise: _noise.NoiseDistribution, tie: F.Tie | str = F.Tie.FILTER, *,
                 share_across_batch: bool = False, normalize: bool = True,
                 generator: torch.Generator | None = None, **conv_kwargs: Any) -> None:
        super().__init__(noise, share_across_batch=share_across_batch, normalize=normalize,
                         generator=generator)
        self.tie = check_choice("tie", tie, F.Tie)
        check_int("in_channels", in_channels)
        check_int("out_channels", out_channels)
        for k in (kernel_size if isinstance(kernel_size, tuple) else (kernel_size,)):
            check_int("kernel_size", k)
        mode = conv_kwargs.get("padding_mode", "zeros")
        if mode != "zeros":
            raise ValueError(f"padding_mode has to be 'zeros', but got {mode!r}")
        # an ordinary conv holds (and initialises) the parameters; we call conv2d ourselves
        conv = nn.Conv2d(in_channels, out_channels, kernel_size, **conv_kwargs)
        self.in_channels, self.out_channels = conv.in_channels, conv.out_channels
        self.kernel_size, self.stride, self.padding = conv.kernel_size, conv.stride, conv.padding
        self.dilation, self.groups = conv.dilation, conv.groups
        if isinstance(self.padding, str):
            raise ValueError(f"padding has to be an int or tuple, but got {self.padding!r}")
        self.weight = conv.weight
        self.bias = conv.bias

    def forward(self, x: Tensor) -> Tensor:
        if self._given_scales is not None:
            return self._at_given_scales(x)
        return F.noisy_conv2d(x, self.weight, self.bias, self.noise, self.training or self.mc,
                              tie=self.tie, stride=self.stride, padding=self.padding,
                              dilation=self.dilation, groups=self.groups, **self._kw())

    def scale_roles(self) -> tuple[str, ...]:
        return {"filter": ("tau",), "channel": ("xi",), "both": ("xi", "tau")}[self.tie.value]

    def scale_sites(self, input_shape: Sequence[int]) -> list[SVISite]:
        """``xi`` per (input channel of a group, filter) and / or ``tau`` per filter."""
        f_out, c_g = self.weight.shape[:2]
        shapes = {"xi": (c_g, f_out), "tau": (f_out,)}
        return [self._site(r, shapes[r]) for r in self.scale_roles()]

    def forward_at_scales(self, x: Tensor, scales: Mapping[str, Tensor]) -> Tensor:
        w = self.weight
        if "xi" in scales:  # (C_in/g, F) -> (F, C_in/g, 1, 1)
            w = w * scales["xi"].transpose(-1, -2)[..., None, None]
        y = nn.functional.conv2d(x, w, None, self.stride, self.padding, self.dilation,
                                 self.groups)
        if "tau" in scales:
            y = y * scales["tau"][:, None, None]
        return y if self.bias is None else y + self.bias[:, None, None]

    def extra_repr(self) -> str:
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}, padding={self.padding}")
        if self.dilation != (1, 1):
            s += f", dilation={self.dilation}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        return f"{s}, tie={self.tie.value!r}, " + super().extra_repr()

    def prior(self, sigma0: float = 1.0) -> StructuredPrior:
        n = "1" if self.share_across_batch else "N"
        marginal = self._marginal(self.noise, sigma0)
        if self.tie is F.Tie.FILTER:
            s, groups, shape = ("tied filters", self._MEANINGS["tau"].groups, (n, "F"))
        elif self.tie is F.Tie.CHANNEL:
            s, groups, shape = ("tied channels", self._MEANINGS["xi"].groups,
                                (n, "C_in/groups", "F"))
        else:
            s, groups = "tied filters x tied channels", "w_hwcf has scale tau_f * xi_cf"
            shape = ((n, "F"), (n, "C_in/groups", "F"))
            marginal = None  # the product of two draws of noise: not one family's marginal
        return StructuredPrior(
            s, groups, shape, marginal,
            f"conv {s}: scales ~ {self.noise!r}, tied across space; "
            + _sampling_words(self.share_across_batch),
            self.noise, sigma0,
        )
