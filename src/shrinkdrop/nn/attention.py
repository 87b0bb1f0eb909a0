"""Noise on attention probabilities: ``AttentionNoise`` and ``NoisyMultiheadAttention``.

Dropout inside attention (``nn.MultiheadAttention(dropout=p)``, Hugging Face ``attn_pdrop``) is
applied to the attention probabilities ``a_{n,h,i,j}`` (example n, head h, query i, key j) after the
softmax, before they mix the values: ``out_i = sum_j a_ij xi_ij v_j``. With the paper's reading
this is DropConnect (one scale per entry) on the value-mixing matrix ``A`` of each head; ``A`` is
computed from the data, so no learned weight shares a scale and there is no marginal prior on
parameters (``prior().marginal`` is ``None``).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from .. import functional as F
from .. import noise as _noise
from ._base import NoiseLayer, StructuredPrior, _sampling_words

__all__ = ["AttentionNoise", "NoisyMultiheadAttention"]

_ATTENTION_GROUPS = ("none among the parameters: each attention probability a_nhij (example n, "
                     "head h, query i, key j) has its own scale xi_nhij (DropConnect on the "
                     "value-mixing matrix A of head h: out_i = sum_j a_ij xi_ij v_j)")


class AttentionNoise(NoiseLayer):
    """Elementwise noise on attention probabilities ``(N, H, L_q, L_k)``: attention dropout.

    ``AttentionNoise(Bernoulli(1 - p))`` has the law of the dropout that
    ``nn.MultiheadAttention(dropout=p)`` and Hugging Face models apply to the attention weights
    (each entry 0 or ``a / keep``). ``share_across_batch=True`` draws one ``(H, L_q, L_k)`` noise
    tensor per forward pass (per sample group) for all examples.

    Args:
        noise, share_across_batch, normalize, generator: as :class:`UnitNoise`.

    Shape:
        input and output ``(N, *)`` (any shape; dimension 0 is the batch); noise the input's
        shape (``(1, *)`` when shared).
    """

    #: the noise scales data-dependent mixing weights (attention) or several layers' input
    #: weights: train.noisy_weights / log_prior_hp leave it out
    pairs_with_next_weight = False

    def __init__(self, noise: _noise.NoiseDistribution, share_across_batch: bool = False, *,
                 normalize: bool = True, generator: torch.Generator | None = None) -> None:
        super().__init__(noise, share_across_batch=share_across_batch, normalize=normalize,
                         generator=generator)

    def forward(self, a: Tensor) -> Tensor:
        noisy = self.training or self.mc
        if not noisy or not self.share_across_batch:
            return F.unit_noise(a, self.noise, noisy, normalize=self.normalize,
                                generator=self.generator)
        xi = F.draw_noise(self.noise, a.shape, share_across_batch=True, normalize=self.normalize,
                          generator=self.generator, dtype=a.dtype, device=a.device)
        return a * xi

    def prior(self, sigma0: float = 1.0) -> StructuredPrior:
        shape = ("1" if self.share_across_batch else "N", "H", "L_q", "L_k")
        return StructuredPrior(
            "attention probabilities", _ATTENTION_GROUPS, shape, None,
            f"attention dropout: a_ij -> a_ij xi_ij, xi ~ {self.noise!r}; the mixing weights are "
            "computed from the data, so this is not a prior on learned weights; "
            + _sampling_words(self.share_across_batch),
            self.noise, sigma0,
        )


def _additive(mask: Tensor | None, name: str, dtype: torch.dtype) -> Tensor | None:
    if mask is None:
        return None
    if mask.dtype == torch.bool:
        return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
            mask, float("-inf"))
    if not torch.is_floating_point(mask):
        raise TypeError(f"{name} has to be a bool or floating-point tensor, but got {mask.dtype}")
    return mask.to(dtype)


class NoisyMultiheadAttention(nn.MultiheadAttention):
    """``nn.MultiheadAttention`` with structured noise as its attention dropout.

    The noise is an :class:`AttentionNoise` on the attention probabilities.

    The parameters, their names and the call signature are ``nn.MultiheadAttention``'s (state
    dicts interchange); ``dropout`` is 0 and the noise lives in the child ``attn_noise``. With the
    noise off (``eval()`` outside :func:`mc_mode`) the forward pass is torch's own. With it on the
    attention is computed here: ``softmax(q k^T / sqrt(d) + masks)``, times the noise, times the
    values, so the returned attention weights are the noisy ones (as torch returns the dropped
    ones). ``add_bias_kv`` and ``add_zero_attn`` are not supported (``ValueError``).

    Args:
        embed_dim, num_heads, bias, kdim, vdim, batch_first, device, dtype: as
            ``nn.MultiheadAttention``.
        noise: a :mod:`shrinkdrop.noise` family for the attention probabilities.
        share_across_batch, normalize, generator: passed to :class:`AttentionNoise`.

    Example:
        >>> mha = NoisyMultiheadAttention(16, 4, shrinkdrop.noise.Bernoulli(0.9), batch_first=True)
        >>> out, weights = mha(x, x, x)
    """

    def __init__(self, embed_dim: int, num_heads: int, noise: _noise.NoiseDistribution, *,
                 bias: bool = True, kdim: int | None = None, vdim: int | None = None,
                 batch_first: bool = False, share_across_batch: bool = False,
                 normalize: bool = True, generator: torch.Generator | None = None,
                 device: torch.device | str | None = None,
                 dtype: torch.dtype | None = None) -> None:
        if (isinstance(embed_dim, int) and isinstance(num_heads, int) and num_heads > 0
                and embed_dim % num_heads):
            raise ValueError(f"num_heads has to divide embed_dim, but got num_heads={num_heads} "
                             f"for embed_dim={embed_dim}")
        super().__init__(embed_dim, num_heads, dropout=0.0, bias=bias, kdim=kdim, vdim=vdim,
                         batch_first=batch_first, device=device, dtype=dtype)
        self.attn_noise = AttentionNoise(noise, share_across_batch, normalize=normalize,
                                         generator=generator)

    @classmethod
    def from_module(cls, mha: nn.MultiheadAttention, noise: _noise.NoiseDistribution,
                    **kw: Any) -> NoisyMultiheadAttention:
        """The noisy twin of ``mha``, sharing its parameter tensors (not copies)."""
        if not isinstance(mha, nn.MultiheadAttention):
            raise TypeError(f"mha has to be an nn.MultiheadAttention, but got {type(mha).__name__}")
        if mha.bias_k is not None or mha.add_zero_attn:
            raise ValueError("NoisyMultiheadAttention does not support add_bias_kv=True or "
                             "add_zero_attn=True, but the module has "
                             f"add_bias_kv={mha.bias_k is not None}, "
                             f"add_zero_attn={mha.add_zero_attn}")
        new = cls(mha.embed_dim, mha.num_heads, noise, bias=mha.in_proj_bias is not None,
                  kdim=mha.kdim, vdim=mha.vdim, batch_first=mha.batch_first, device="meta", **kw)
        for name in list(new._parameters):
            new._parameters[name] = mha._parameters[name]
        new.out_proj = mha.out_proj
        new.train(mha.training)
        return new

    def forward(self, query: Tensor, key: Tensor, value: Tensor,
                key_padding_mask: Tensor | None = None, need_weights: bool = True,
                attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False) -> tuple[Tensor, Tensor | None]:
        if not (self.attn_noise.training or self.attn_noise.mc):
            return super().forward(query, key, value, key_padding_mask=key_padding_mask,
                                   need_weights=need_weights, attn_mask=attn_mask,
                                   average_attn_weights=average_attn_weights,
                                   is_causal=is_causal)
        return self._noisy_forward(query, key, value, key_padding_mask, need_weights, attn_mask,
                                   average_attn_weights, is_causal)

    def _noisy_forward(self, query, key, value, key_padding_mask, need_weights, attn_mask,
                       average_attn_weights, is_causal):
        if is_causal and attn_mask is None:
            raise RuntimeError("Need attn_mask if specifying the is_causal hint")
        batched = query.dim() == 3
        if not batched:
            query, key, value = query.unsqueeze(1), key.unsqueeze(1), value.unsqueeze(1)
            if key_padding_mask is not None:
                key_padding_mask = key_padding_mask.unsqueeze(0)
        elif self.batch_first:
            query, key, value = (t.transpose(0, 1) for t in (query, key, value))
        L, N, E = query.shape
        S = key.shape[0]
        H, hd = self.num_heads, self.head_dim
        if self._qkv_same_embed_dim:
            w_q, w_k, w_v = self.in_proj_weight.chunk(3)
        else:
            w_q, w_k, w_v = self.q_proj_weight, self.k_proj_weight, self.v_proj_weight
        b_q, b_k, b_v = (self.in_proj_bias.chunk(3) if self.in_proj_bias is not None
                         else (None, None, None))
        q = nn.functional.linear(query, w_q, b_q).view(L, N, H, hd).permute(1, 2, 0, 3)
        k = nn.functional.linear(key, w_k, b_k).view(S, N, H, hd).permute(1, 2, 0, 3)
        v = nn.functional.linear(value, w_v, b_v).view(S, N, H, hd).permute(1, 2, 0, 3)
        scores = torch.matmul(q * (1.0 / math.sqrt(hd)), k.transpose(-2, -1))  # (N, H, L, S)
        am = _additive(attn_mask, "attn_mask", scores.dtype)
        if am is not None:
            if am.dim() == 2:
                if tuple(am.shape) != (L, S):
                    raise RuntimeError(f"The shape of the 2D attn_mask is {tuple(am.shape)}, "
                                       f"but should be {(L, S)}.")
                scores = scores + am
            elif am.dim() == 3:
                if tuple(am.shape) != (N * H, L, S):
                    raise RuntimeError(f"The shape of the 3D attn_mask is {tuple(am.shape)}, "
                                       f"but should be {(N * H, L, S)}.")
                scores = scores + am.view(N, H, L, S)
            else:
                raise RuntimeError(f"attn_mask's dimension {am.dim()} is not supported")
        kpm = _additive(key_padding_mask, "key_padding_mask", scores.dtype)
        if kpm is not None:
            scores = scores + kpm.view(N, 1, 1, S)
        probs = self.attn_noise(scores.softmax(-1))
        out = torch.matmul(probs, v).permute(2, 0, 1, 3).reshape(L, N, E)
        out = nn.functional.linear(out, self.out_proj.weight, self.out_proj.bias)
        if not batched:
            out = out.squeeze(1)
        elif self.batch_first:
            out = out.transpose(0, 1)
        if not need_weights:
            return out, None
        w = probs.mean(1) if average_attn_weights else probs
        return out, (w if batched else w.squeeze(0))

    def prior(self, sigma0: float = 1.0) -> StructuredPrior:
        """The structure of the attention noise (see :class:`AttentionNoise`)."""
        return self.attn_noise.prior(sigma0)
