"""One scale per attention head: :class:`HeadNoise` and the attention modules that carry it.

The scale multiplies head ``h``'s output (its slice of the input of the output projection), so
it is the tied-group prior on the output projection's columns of that head: switched off, the
head's query, key and value rows and its output columns go (:mod:`shrinkdrop.compress`).

* ``nn.MultiheadAttention``: its fused functional path never calls ``out_proj`` as a module, so
  :class:`HeadNoiseAttention` re-implements self-attention with the same parameters
  (:meth:`HeadNoiseAttention.from_module`) and the head scales before ``out_proj``.
* ``transformers`` attention (any module with ``q_proj, k_proj, v_proj, o_proj`` and
  ``head_dim``): :func:`add_head_noise` attaches a :class:`HeadNoise` to each such module and
  a forward pre-hook on its ``o_proj`` that applies it, which leaves the attention function
  untouched.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor, nn

from .. import functional as F
from .. import noise as _noise
from ._base import NoiseLayer, StructuredPrior, _sampling_words
from .sites import SiteMeaning, SVISite

__all__ = ["HeadNoise", "HeadNoiseAttention", "add_head_noise"]


class HeadNoise(NoiseLayer):
    """Noise with one scale per attention head on a ``(..., heads * head_dim)`` tensor (the
    concatenated head outputs).

    Args:
        noise: the noise family of the head scales.
        heads: the number of heads (the last dimension must be a multiple).
        share_across_batch, normalize, generator: as :class:`~shrinkdrop.nn.UnitNoise`.
    """

    pairs_with_next_weight = False
    _MEANINGS = {"xi": SiteMeaning("per attention head",
                                   "the output-projection columns of head h share xi_h")}

    def __init__(self, noise: _noise.NoiseDistribution, heads: int, *,
                 share_across_batch: bool = False, normalize: bool = True,
                 generator: torch.Generator | None = None) -> None:
        super().__init__(noise, share_across_batch=share_across_batch, normalize=normalize,
                         generator=generator)
        if not isinstance(heads, int) or heads < 1:
            raise ValueError(f"heads has to be an integer >= 1, but got {heads!r}")
        self.heads = heads

    def _split(self, x: Tensor) -> Tensor:
        if x.shape[-1] % self.heads:
            raise ValueError(f"HeadNoise: the last dimension ({x.shape[-1]}) is not a multiple "
                             f"of heads={self.heads}")
        return x.reshape(*x.shape[:-1], self.heads, x.shape[-1] // self.heads)

    def forward(self, x: Tensor) -> Tensor:
        if self._given_scales is not None:
            return self._at_given_scales(x)
        if not (self.training or self.mc):
            return x
        h = self._split(x)
        shape = (1,) * (h.dim() - 2) if self.share_across_batch else h.shape[:-2]
        xi = F.draw_noise(self.noise, (*shape, self.heads, 1), normalize=self.normalize,
                          generator=self.generator, dtype=x.dtype, device=x.device)
        return (h * xi).reshape(x.shape)

    def scale_roles(self) -> tuple[str, ...]:
        return ("xi",)

    def scale_sites(self, input_shape: Sequence[int]) -> list[SVISite]:
        """One ``xi`` per head."""
        return [self._site("xi", (self.heads,))]

    def forward_at_scales(self, x: Tensor, scales: Mapping[str, Tensor]) -> Tensor:
        """``xi`` of shape ``(heads,)``, or ``(N, heads)`` (one draw per example)."""
        h, xi = self._split(x), scales["xi"]
        if xi.dim():
            xi = xi.reshape(*xi.shape[:-1], *([1] * (h.dim() - 1 - xi.dim())), xi.shape[-1], 1)
        return (h * xi).reshape(x.shape)

    def prior(self, sigma0: float = 1.0) -> StructuredPrior:
        """The per-head prior on the output projection's columns."""
        return StructuredPrior(
            "per head", self._MEANINGS["xi"].groups,
            ("1" if self.share_across_batch else "N", "heads"),
            self._marginal(self.noise, sigma0),
            f"per head: w_(.,h) ~ N(0, sigma0^2 xi_h^2), xi ~ {self.noise!r}; "
            + _sampling_words(self.share_across_batch), self.noise, sigma0)

    def extra_repr(self) -> str:
        return f"heads={self.heads}, " + super().extra_repr()


class HeadNoiseAttention(nn.Module):
    """Self-attention with a :class:`HeadNoise` on the head outputs.

    The parameters are ``nn.MultiheadAttention``'s (``in_proj_weight`` / ``in_proj_bias`` of
    shape ``(3 E, E)``, ``out_proj``), so :meth:`from_module` copies a trained one. Unlike
    ``nn.MultiheadAttention`` it is self-attention only and returns the output tensor alone
    (so it can sit in an ``nn.Sequential``).

    Args:
        embed_dim, num_heads: as ``nn.MultiheadAttention``.
        noise: the family of the head scales.
        bias, batch_first: as ``nn.MultiheadAttention``.
        share_across_batch, normalize, generator: passed to :class:`HeadNoise`.
    """

    def __init__(self, embed_dim: int, num_heads: int, noise: _noise.NoiseDistribution, *,
                 bias: bool = True, batch_first: bool = True, share_across_batch: bool = False,
                 normalize: bool = True, generator: torch.Generator | None = None) -> None:
        super().__init__()
        if embed_dim % num_heads:
            raise ValueError(f"embed_dim ({embed_dim}) has to be a multiple of num_heads "
                             f"({num_heads})")
        self.embed_dim, self.num_heads = embed_dim, num_heads
        self.head_dim = embed_dim // num_heads
        self.batch_first = batch_first
        ref = nn.MultiheadAttention(embed_dim, num_heads, bias=bias, batch_first=batch_first)
        self.in_proj_weight = ref.in_proj_weight
        self.in_proj_bias = ref.in_proj_bias
        self.out_proj = nn.Linear(embed_dim, embed_dim, bias=bias)
        with torch.no_grad():
            self.out_proj.weight.copy_(ref.out_proj.weight)
            if bias:
                self.out_proj.bias.copy_(ref.out_proj.bias)
        self.head_noise = HeadNoise(noise, num_heads, share_across_batch=share_across_batch,
                                    normalize=normalize, generator=generator)

    @classmethod
    def from_module(cls, mha: nn.MultiheadAttention, noise: _noise.NoiseDistribution,
                    **kwargs: object) -> HeadNoiseAttention:
        """A copy of ``mha``'s parameters with head noise (``mha`` has to have ``kdim = vdim =
        embed_dim``)."""
        if not mha._qkv_same_embed_dim:
            raise ValueError("HeadNoiseAttention.from_module needs kdim = vdim = embed_dim")
        new = cls(mha.embed_dim, mha.num_heads, noise, bias=mha.in_proj_bias is not None,
                  batch_first=mha.batch_first, **kwargs)
        new.load_state_dict(mha.state_dict(), strict=False)
        return new.to(mha.in_proj_weight.dtype)

    def forward(self, x: Tensor) -> Tensor:
        if not self.batch_first:
            x = x.transpose(0, 1)
        n, L, E = x.shape
        qkv = nn.functional.linear(x, self.in_proj_weight, self.in_proj_bias)
        q, k, v = (t.reshape(n, L, self.num_heads, self.head_dim).transpose(1, 2)
                   for t in qkv.chunk(3, -1))
        a = nn.functional.scaled_dot_product_attention(q, k, v)
        out = self.out_proj(self.head_noise(a.transpose(1, 2).reshape(n, L, E)))
        return out if self.batch_first else out.transpose(0, 1)


def _hf_attention_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(p, m) for p, m in model.named_modules()
            if all(hasattr(m, a) for a in ("q_proj", "k_proj", "v_proj", "o_proj", "head_dim"))]


def _apply_head_noise(module: nn.Module, args: tuple) -> tuple:
    return (module._shrinkdrop_heads[0](args[0]), *args[1:])


def add_head_noise(model: nn.Module, noise: _noise.NoiseDistribution, *,
                   normalize: bool = True, share_across_batch: bool = False) -> list[str]:
    """Attach a :class:`HeadNoise` (attribute ``head_noise``) to every ``transformers``
    attention module of ``model`` (one with ``q_proj, k_proj, v_proj, o_proj`` and
    ``head_dim``), applied to ``o_proj``'s input by a forward pre-hook. Returns their paths.

    The site of the heads of the module at ``path`` is ``f"{path}.head_noise.xi"``."""
    paths = []
    for path, m in _hf_attention_modules(model):
        if hasattr(m, "head_noise"):
            continue
        heads = m.o_proj.in_features // m.head_dim
        m.head_noise = HeadNoise(noise, heads, normalize=normalize,
                                 share_across_batch=share_across_batch)
        # a plain list: not a second registration of the layer (deepcopy keeps them one)
        m.o_proj.__dict__["_shrinkdrop_heads"] = [m.head_noise]
        m.o_proj.register_forward_pre_hook(_apply_head_noise)
        paths.append(path)
    if not paths:
        raise ValueError("add_head_noise: model has no attention module with q_proj, k_proj, "
                         "v_proj, o_proj and head_dim")
    return paths
