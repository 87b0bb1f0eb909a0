"""Hugging Face ``transformers`` glue for :func:`shrinkdrop.convert` (imported only when needed).

HF models compute attention in a function chosen by ``config._attn_implementation`` and pass the
attention dropout rate to it as a float (``dropout=self.dropout.p``), so there is no dropout module
to swap. :func:`register` adds an implementation named ``"shrinkdrop"`` that **runs the model's own
eager attention function** (the ``eager_attention_forward`` its attention module falls back to,
found in that module's globals) with every argument the model passes (position bias,
softcapping, sliding window, sinks, scaling, masks: whatever the model sends), and replaces only
its one dropout step: while the eager function runs, a ``TorchFunctionMode`` routes its
``nn.functional.dropout(weights, ...)`` call to the :class:`AttentionNoise` layer the attention
module carries as ``shrinkdrop_attention``. Modules without such a layer run the eager function
unchanged. Its masks are transformers' ``eager_mask`` (what ``"eager"`` uses).

:func:`check_model` refuses (``ConversionError``) a model this cannot honour: an attention module
whose eager fallback convert cannot find, an eager function without exactly one dropout call, or
a forward that branches on ``_attn_implementation == "eager"`` in a way that matters.
"""

from __future__ import annotations

import inspect
import re
from collections.abc import Callable

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from ..errors import ConversionError

IMPLEMENTATION = "shrinkdrop"
ATTR = "shrinkdrop_attention"
LITERAL = "<literal>"  # the attribute of a site whose forward passes a number as dropout=
CONFIG_KEY = "shrinkdrop"  # the conversion spec, stored on configs (survives save_pretrained)

_RATE = re.compile(r"dropout\s*=\s*([^,\n]+)")
_NUMBER = re.compile(r"\s*(\d+(?:\.\d*)?(?:[eE][-+]?\d+)?)\s*(?:\)|$)")
_SELF_ATTR = re.compile(r"self\.(\w+)(\.p\b)?")
_CALLS_INTERFACE = ("ALL_ATTENTION_FUNCTIONS", "attention_interface")
_DEFAULT = re.compile(r"get_interface\(\s*self\.config\._attn_implementation\s*,\s*(\w+)\s*\)")
_DROPOUT_CALL = re.compile(r"(?<![\w])(?:[\w.]+\.)?dropout\s*\(")
_EAGER_CHECK = re.compile(r"_attn_implementation\s*(?:==|!=|\bin\b)[^\n]*[\"']eager[\"']")
_HARMLESS_EAGER = re.compile(r"using_eager\s+and\s+self\.(\w+)")
_source_cache: dict[object, str] = {}


def _source(obj) -> str:
    if obj not in _source_cache:
        try:
            _source_cache[obj] = inspect.getsource(obj)
        except (OSError, TypeError):
            _source_cache[obj] = ""
    return _source_cache[obj]


def _forward_source(cls: type) -> str:
    return _source(cls.forward)


def is_hf_module(module: nn.Module) -> bool:
    return type(module).__module__.startswith("transformers.")


def calls_interface(module: nn.Module) -> bool:
    """Whether ``module`` is an HF module whose forward calls the attention interface."""
    return is_hf_module(module) and any(s in _forward_source(type(module))
                                        for s in _CALLS_INTERFACE)


def attention_rate(module: nn.Module) -> tuple[str, float, bool] | None:
    """For an HF attention module that calls the attention interface: ``(attribute, p,
    is_module)``, the attribute its forward passes as ``dropout=``; ``None`` for other modules;
    ``("", nan, False)`` when it calls the interface but the rate expression is not understood."""
    if not calls_interface(module):
        return None
    m = _RATE.search(_forward_source(type(module)))
    if m is not None:
        literal = _NUMBER.match(m.group(1))  # dropout=0.0: a number
        if literal is not None:
            return LITERAL, float(literal.group(1)), False
        for attr, dot_p in _SELF_ATTR.findall(m.group(1)):
            value = getattr(module, attr, None)
            if dot_p and isinstance(value, nn.Module) and hasattr(value, "p"):
                return attr, float(value.p), True
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return attr, float(value), False
    return "", float("nan"), False


_eager_cache: dict[type, Callable | str] = {}


def _find_eager(cls: type) -> Callable | str:
    """The eager attention function ``cls.forward`` falls back to, or why there is none."""
    forward = inspect.unwrap(cls.forward)
    m = _DEFAULT.search(_forward_source(cls))
    if m is None:
        return ("its forward does not pick the attention function by "
                "ALL_ATTENTION_FUNCTIONS.get_interface(self.config._attn_implementation, <eager>)")
    fn = getattr(forward, "__globals__", {}).get(m.group(1))
    if not inspect.isfunction(fn):
        return f"its eager attention function {m.group(1)!r} is not a Python function"
    calls = len(_DROPOUT_CALL.findall(_source(fn)))
    if calls != 1:
        return (f"its eager attention function {fn.__module__}.{fn.__name__} has {calls} dropout "
                "calls, not exactly one")
    return fn


def eager_function(cls: type) -> Callable | str:
    """Cached :func:`_find_eager`."""
    if cls not in _eager_cache:
        _eager_cache[cls] = _find_eager(cls)
    return _eager_cache[cls]


def _eager_branch(module: nn.Module) -> str:
    """A reason to refuse when ``module``'s forward does something else under ``"eager"``."""
    src = _forward_source(type(module))
    if not _EAGER_CHECK.search(src):
        return ""
    guards = _HARMLESS_EAGER.findall(src)
    if guards and all(not getattr(module, g, True) for g in guards):
        return ""  # GPT-2's reorder_and_upcast_attn branch, switched off on this module
    return (f"its forward ({type(module).__name__}) takes another path when the implementation "
            "is 'eager'" + (f" (self.{', self.'.join(guards)} is set)" if guards else ""))


def check_model(model: nn.Module) -> None:
    """Refuse (``ConversionError``) a model whose attention the ``"shrinkdrop"`` implementation
    cannot run exactly as its eager attention."""
    for name, m in model.named_modules():
        if not is_hf_module(m):
            continue
        why = _eager_branch(m)
        if not why and calls_interface(m):
            fn = eager_function(type(m))
            why = fn if isinstance(fn, str) else ""
        if why:
            raise ConversionError(
                f"convert cannot run the attention of {name or '<model>'} "
                f"({type(m).__name__}) as the model's eager attention: {why}; convert "
                "refuses the model and leaves it unchanged")


_DROPOUTS = (nn.functional.dropout, torch.dropout)


class _NoiseOnDropout(TorchFunctionMode):
    """Routes ``nn.functional.dropout`` / ``torch.dropout`` calls to ``layer`` (and counts them)."""

    def __init__(self, layer: nn.Module) -> None:
        super().__init__()
        self.layer, self.calls = layer, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in _DROPOUTS:
            self.calls += 1
            return self.layer(args[0] if args else kwargs["input"])
        return func(*args, **kwargs)


def _attention(module, query, key, value, attention_mask, **kwargs):
    """The model's own eager attention, with its dropout step replaced by the module's noise."""
    eager = eager_function(type(module))
    if isinstance(eager, str):
        raise ConversionError(f"the {IMPLEMENTATION!r} attention cannot run "
                              f"{type(module).__name__}: {eager}")
    layer = getattr(module, ATTR, None)
    if layer is None:
        return eager(module, query, key, value, attention_mask, **kwargs)
    mode = _NoiseOnDropout(layer)
    with mode:
        out = eager(module, query, key, value, attention_mask, **kwargs)
    if mode.calls != 1 and (layer.training or layer.mc):  # off, the noise is 1 anyway
        raise RuntimeError(f"{eager.__qualname__} called dropout {mode.calls} times (expected "
                           "once): the attention noise was not applied as the eager code does")
    return out


def register() -> None:
    """Register the ``"shrinkdrop"`` attention (and mask) implementation with transformers."""
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, eager_mask

    AttentionInterface.register(IMPLEMENTATION, _attention)
    AttentionMaskInterface.register(IMPLEMENTATION, eager_mask)


def configs(model: nn.Module) -> list:
    """The distinct HF configs held by ``model``'s modules (sub-configs included)."""
    out, seen = [], set()

    def add(cfg):
        if cfg is None or id(cfg) in seen or not hasattr(cfg, "to_dict"):
            return
        seen.add(id(cfg))
        out.append(cfg)
        for key in getattr(cfg, "sub_configs", {}) or {}:
            add(getattr(cfg, key, None))

    for m in model.modules():
        add(getattr(m, "config", None))
    return out


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
