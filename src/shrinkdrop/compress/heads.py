"""Removing attention heads: :class:`~shrinkdrop.nn.HeadNoiseAttention` to a
:class:`~shrinkdrop.compress.HeadAttention`, and ``transformers`` attention in place."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import torch
from torch import Tensor, nn

from ..errors import CompactionError
from ..nn.heads import HeadNoiseAttention, _hf_attention_modules
from .spec import HeadAttention

__all__ = ["compact_attention", "compact_hf_heads", "shrink_hf_heads"]


def _head_scale(scales: Mapping[str, Tensor], key: str, heads: int) -> Tensor:
    v = scales.get(key)
    if v is None:
        return torch.ones(heads, dtype=torch.float64)
    return torch.as_tensor(v).detach().double().reshape(heads)


def compact_attention(m: HeadNoiseAttention, scales: Mapping[str, Tensor], path: str
                      ) -> HeadAttention:
    """``m`` at the head scales ``scales[f"{path}.head_noise.xi"]`` as a
    :class:`~shrinkdrop.compress.HeadAttention` with the switched-off heads removed and the
    kept heads' scales folded into the output projection."""
    xi = _head_scale(scales, f"{path}.head_noise.xi" if path else "head_noise.xi",
                     m.num_heads)
    kept = (xi != 0).nonzero().reshape(-1)
    d, E = m.head_dim, m.embed_dim
    rows = (kept[:, None] * d + torch.arange(d)).reshape(-1)
    bias = m.in_proj_bias is not None
    new = HeadAttention(E, len(kept), d, bias=bias, batch_first=m.batch_first)
    dt = m.in_proj_weight.dtype
    new = new.to(dt)
    W = m.in_proj_weight.detach()
    b = m.in_proj_bias.detach() if bias else None
    col = xi.repeat_interleave(d)[rows]
    with torch.no_grad():
        for i, proj in enumerate((new.q_proj, new.k_proj, new.v_proj)):
            proj.weight.copy_(W[i * E:(i + 1) * E][rows])
            if bias:
                proj.bias.copy_(b[i * E:(i + 1) * E][rows])
        new.out_proj.weight.copy_((m.out_proj.weight.detach().double()[:, rows] * col).to(dt))
        if bias:
            new.out_proj.bias.copy_(m.out_proj.bias.detach())
    return new.eval()


def _slice_rows(lin: nn.Linear, rows: Tensor, scale: Tensor | None = None) -> nn.Linear:
    new = nn.Linear(lin.in_features, len(rows), bias=lin.bias is not None).to(lin.weight.dtype)
    with torch.no_grad():
        new.weight.copy_(lin.weight.detach()[rows])
        if lin.bias is not None:
            new.bias.copy_(lin.bias.detach()[rows])
    return new


def _slice_cols(lin: nn.Linear, cols: Tensor, scale: Tensor) -> nn.Linear:
    new = nn.Linear(len(cols), lin.out_features, bias=lin.bias is not None).to(
        lin.weight.dtype)
    with torch.no_grad():
        new.weight.copy_((lin.weight.detach().double()[:, cols] * scale).to(lin.weight.dtype))
        if lin.bias is not None:
            new.bias.copy_(lin.bias.detach())
    return new


def _shrink_one(path: str, m: nn.Module, xi: Tensor) -> int:
    d = m.head_dim
    heads = m.o_proj.in_features // d
    kv_heads = m.k_proj.out_features // d
    if kv_heads != heads:
        raise CompactionError(f"attention at {path!r} has {kv_heads} key/value heads for "
                              f"{heads} query heads; head removal needs as many (no GQA)")
    kept = (xi != 0).nonzero().reshape(-1)
    rows = (kept[:, None] * d + torch.arange(d)).reshape(-1)
    m.q_proj = _slice_rows(m.q_proj, rows)
    m.k_proj = _slice_rows(m.k_proj, rows)
    m.v_proj = _slice_rows(m.v_proj, rows)
    m.o_proj = _slice_cols(m.o_proj, rows, xi.repeat_interleave(d)[rows])
    for attr in ("num_heads", "num_attention_heads", "num_key_value_heads"):
        if isinstance(getattr(m, attr, None), int):
            setattr(m, attr, len(kept))
    if hasattr(m, "head_noise"):
        del m.head_noise
    return len(kept)


def compact_hf_heads(model: nn.Module, scales: Mapping[str, Tensor] | None = None
                     ) -> tuple[nn.Module, dict[str, int]]:
    """A copy of a ``transformers`` model with the heads whose scale (site
    ``f"{path}.head_noise.xi"``, :func:`~shrinkdrop.nn.add_head_noise`) is 0 removed, the
    others folded into ``o_proj`` and the head noise gone.

    Returns the model and ``{path: heads kept}``: the plain description
    :func:`shrink_hf_heads` rebuilds the shapes from (so a fresh model of the same config,
    shrunk by it, loads the compacted state dict with ``weights_only=True``)."""
    new = copy.deepcopy(model)
    scales = dict(scales or {})
    kept = {}
    for path, m in _hf_attention_modules(new):
        if not hasattr(m, "head_noise"):
            continue
        heads = m.head_noise.heads
        kept[path] = _shrink_one(path, m, _head_scale(scales, f"{path}.head_noise.xi", heads))
    return new.eval(), kept


def shrink_hf_heads(model: nn.Module, kept: Mapping[str, int]) -> nn.Module:
    """Give the attention modules at ``kept``'s paths ``kept[path]`` heads (the first ones,
    weights to be loaded next), in place; returns ``model``."""
    mods = dict(_hf_attention_modules(model))
    for path, k in kept.items():
        if path not in mods:
            raise CompactionError(f"no attention module at {path!r}")
        m = mods[path]
        heads = m.o_proj.in_features // m.head_dim
        xi = torch.zeros(heads, dtype=torch.float64)
        xi[:k] = 1.0
        _shrink_one(path, m, xi)
    return model
