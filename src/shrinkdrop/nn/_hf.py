"""Hugging Face ``transformers`` glue for :func:`shrinkdrop.convert` (imported only when needed).

HF models compute attention in a function chosen by ``config._attn_implementation`` and pass the
attention dropout rate to it as a float (``dropout=self.dropout.p``), so there is no dropout module
to swap. :func:`register` adds an implementation named ``"shrinkdrop"``: eager attention whose
probabilities go through the :class:`AttentionNoise` layer the attention module carries as
``shrinkdrop_attention`` (modules without one get the rate they pass, as the eager code does).
Its masks are made by transformers' ``eager_mask`` (additive float masks).
"""

from __future__ import annotations

import inspect
import re

import torch
from torch import nn

IMPLEMENTATION = "shrinkdrop"
ATTR = "shrinkdrop_attention"

_RATE = re.compile(r"dropout\s*=\s*([^,\n]+)")
_SELF_ATTR = re.compile(r"self\.(\w+)(\.p\b)?")
_CALLS_INTERFACE = ("ALL_ATTENTION_FUNCTIONS", "attention_interface")
_source_cache: dict[type, str] = {}


def _forward_source(cls: type) -> str:
    if cls not in _source_cache:
        try:
            _source_cache[cls] = inspect.getsource(cls.forward)
        except (OSError, TypeError):
            _source_cache[cls] = ""
    return _source_cache[cls]


def is_hf_module(module: nn.Module) -> bool:
    return type(module).__module__.startswith("transformers.")


def attention_rate(module: nn.Module) -> tuple[str, float, bool] | None:
    """For an HF attention module that calls the attention interface: ``(attribute, p,
    is_module)``, the attribute its forward passes as ``dropout=``; ``None`` for other modules;
    ``("", nan, False)`` when it calls the interface but the rate expression is not understood."""
    if not is_hf_module(module):
        return None
    src = _forward_source(type(module))
    if not any(s in src for s in _CALLS_INTERFACE):
        return None
    m = _RATE.search(src)
    if m is not None:
        for attr, dot_p in _SELF_ATTR.findall(m.group(1)):
            value = getattr(module, attr, None)
            if dot_p and isinstance(value, nn.Module) and hasattr(value, "p"):
                return attr, float(value.p), True
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return attr, float(value), False
    return "", float("nan"), False


def _attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Eager attention (as BERT's / GPT-2's / ViT's ``eager_attention_forward``) with the
    module's noise layer on the probabilities."""
    if key.shape[1] != query.shape[1]:  # grouped-query attention: repeat the key/value heads
        rep = query.shape[1] // key.shape[1]
        key, value = key.repeat_interleave(rep, 1), value.repeat_interleave(rep, 1)
    if scaling is None:
        scaling = query.size(-1) ** -0.5
    w = torch.matmul(query, key.transpose(-1, -2)) * scaling
    if attention_mask is not None:
        w = w + attention_mask[..., : key.shape[-2]]
    w = nn.functional.softmax(w, dim=-1, dtype=torch.float32).to(value.dtype)
    layer = getattr(module, ATTR, None)
    if layer is not None:
        w = layer(w)
    else:
        w = nn.functional.dropout(w, p=dropout, training=module.training)
    out = torch.matmul(w, value).transpose(1, 2).contiguous()
    return out, w


def register() -> None:
    """Register the ``"shrinkdrop"`` attention (and mask) implementation with transformers."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(IMPLEMENTATION, _attention)
    AttentionMaskInterface.register(IMPLEMENTATION, eager_mask)


def use_implementation(model: nn.Module) -> list[str]:
    """Switch every outermost HF ``PreTrainedModel`` in ``model`` (and the configs of attention
    modules outside one) to the ``"shrinkdrop"`` implementation; return what was switched."""
    register()
    done, seen = [], set()
    for name, m in model.named_modules():
        if hasattr(m, "set_attn_implementation") and hasattr(m, "config"):
            if any(name == s or name.startswith(f"{s}.") for s in seen if s) or "" in seen:
                continue
            m.set_attn_implementation(IMPLEMENTATION)
            seen.add(name)
            done.append(name or "<model>")
    for m in model.modules():
        cfg = getattr(m, "config", None)
        if hasattr(m, ATTR) and cfg is not None and cfg._attn_implementation != IMPLEMENTATION:
            cfg._attn_implementation_internal = IMPLEMENTATION
    return done
