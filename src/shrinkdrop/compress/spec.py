"""A compacted model as a plain description: a JSON-able *spec* and :func:`build`.

The compacted model is made of plain layers (``nn.Linear``, ``nn.Conv2d``, ``nn.BatchNorm*``,
the parameter-free ``torch.nn`` modules) plus three small modules of this package:
:class:`Select` (keep some features: a switched-off unit that other units of its channel
outlive), :class:`Residual` (``h + block(h)``) and :class:`HeadAttention` (self-attention with
any number of heads of a given width). Every shape they need is in the spec, so

    model = build(spec); model.load_state_dict(torch.load(path, weights_only=True))

restores a saved compacted model without pickling code (:func:`save` / :func:`load`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch
from torch import Tensor, nn

__all__ = ["Select", "Residual", "HeadAttention", "build", "spec_of", "save", "load"]

Spec = list[dict]


class Select(nn.Module):
    """Keep the features ``index`` along ``dim`` (a buffer: saved with the state dict)."""

    def __init__(self, index: Tensor | list[int], dim: int = -1) -> None:
        super().__init__()
        self.dim = int(dim)
        self.register_buffer("index", torch.as_tensor(index, dtype=torch.long).clone())

    def forward(self, x: Tensor) -> Tensor:
        return x.index_select(self.dim, self.index)

    def extra_repr(self) -> str:
        return f"{self.index.numel()} features, dim={self.dim}"


class Residual(nn.Module):
    """``h + block(h)``."""

    def __init__(self, block: nn.Module) -> None:
        super().__init__()
        self.block = block

    def forward(self, h: Tensor) -> Tensor:
        return h + self.block(h)


class HeadAttention(nn.Module):
    """Self-attention with ``heads`` heads of width ``head_dim`` on ``embed_dim`` features
    (``heads * head_dim`` need not be ``embed_dim``: what is left when heads are removed).

    ``x`` is ``(N, L, E)`` (``batch_first``) or ``(L, N, E)``; returns a tensor of its shape.
    ``heads = 0`` is a valid (constant) layer: the output projection's bias.
    """

    def __init__(self, embed_dim: int, heads: int, head_dim: int, *, bias: bool = True,
                 batch_first: bool = True) -> None:
        super().__init__()
        self.embed_dim, self.heads, self.head_dim = int(embed_dim), int(heads), int(head_dim)
        self.batch_first = bool(batch_first)
        inner = self.heads * self.head_dim
        self.q_proj = nn.Linear(embed_dim, inner, bias=bias)
        self.k_proj = nn.Linear(embed_dim, inner, bias=bias)
        self.v_proj = nn.Linear(embed_dim, inner, bias=bias)
        self.out_proj = nn.Linear(inner, embed_dim, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        if not self.batch_first:
            x = x.transpose(0, 1)
        n, L, _ = x.shape

        def split(t: Tensor) -> Tensor:
            return t.reshape(n, L, self.heads, self.head_dim).transpose(1, 2)

        if self.heads == 0:
            out = self.out_proj(x.new_zeros(n, L, 0))
        else:
            a = nn.functional.scaled_dot_product_attention(
                split(self.q_proj(x)), split(self.k_proj(x)), split(self.v_proj(x)))
            out = self.out_proj(a.transpose(1, 2).reshape(n, L, -1))
        return out if self.batch_first else out.transpose(0, 1)


def _constants(m: nn.Module) -> dict:
    out = {}
    for c in getattr(type(m), "__constants__", []):
        v = getattr(m, c)
        out[c] = list(v) if isinstance(v, tuple) else v
    return out


def _entry(m: nn.Module) -> dict:
    """One module's description (raises ``TypeError`` for a module with no plain one)."""
    if isinstance(m, nn.Linear):
        return {"type": "Linear", "in": m.in_features, "out": m.out_features,
                "bias": m.bias is not None}
    if isinstance(m, nn.Conv2d):
        return {"type": "Conv2d", "in": m.in_channels, "out": m.out_channels,
                "kernel": list(m.kernel_size), "stride": list(m.stride),
                "padding": list(m.padding) if not isinstance(m.padding, str) else m.padding,
                "dilation": list(m.dilation), "groups": m.groups, "bias": m.bias is not None}
    if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
        return {"type": type(m).__name__, "num": m.num_features, "eps": m.eps,
                "momentum": m.momentum, "affine": m.affine}
    if isinstance(m, Select):
        return {"type": "Select", "n": m.index.numel(), "dim": m.dim}
    if isinstance(m, Residual):
        return {"type": "Residual", "block": spec_of(m.block)}
    if isinstance(m, HeadAttention):
        return {"type": "HeadAttention", "embed": m.embed_dim, "heads": m.heads,
                "head_dim": m.head_dim, "bias": m.q_proj.bias is not None,
                "batch_first": m.batch_first}
    if isinstance(m, nn.Sequential):
        return {"type": "Sequential", "layers": spec_of(m)}
    if (type(m).__module__.startswith("torch.nn") and not any(True for _ in m.parameters())
            and getattr(nn, type(m).__name__, None) is type(m)):
        return {"type": "module", "name": type(m).__name__, "kwargs": _constants(m)}
    raise TypeError(f"no plain description of {type(m).__name__}")


def spec_of(model: nn.Module) -> Spec:
    """The description of a compacted model (an ``nn.Sequential`` of plain layers)."""
    mods = list(model) if isinstance(model, nn.Sequential) else [model]
    return [_entry(m) for m in mods]


def _module(e: dict) -> nn.Module:
    t = e["type"]
    if t == "Linear":
        return nn.Linear(e["in"], e["out"], bias=e["bias"])
    if t == "Conv2d":
        pad = e["padding"] if isinstance(e["padding"], str) else tuple(e["padding"])
        return nn.Conv2d(e["in"], e["out"], tuple(e["kernel"]), stride=tuple(e["stride"]),
                         padding=pad, dilation=tuple(e["dilation"]), groups=e["groups"],
                         bias=e["bias"])
    if t in ("BatchNorm1d", "BatchNorm2d"):
        return getattr(nn, t)(e["num"], eps=e["eps"], momentum=e["momentum"],
                              affine=e["affine"])
    if t == "Select":
        return Select(torch.zeros(e["n"], dtype=torch.long), e["dim"])
    if t == "Residual":
        return Residual(build(e["block"]))
    if t == "HeadAttention":
        return HeadAttention(e["embed"], e["heads"], e["head_dim"], bias=e["bias"],
                             batch_first=e["batch_first"])
    if t == "Sequential":
        return build(e["layers"])
    if t == "module":
        kw = {k: tuple(v) if isinstance(v, list) else v for k, v in e["kwargs"].items()}
        return getattr(nn, e["name"])(**kw)
    raise ValueError(f"spec: unknown layer type {t!r}")


def build(spec: Spec) -> nn.Sequential:
    """A compacted model's modules from its description, with fresh parameters (load its state
    dict next)."""
    if not isinstance(spec, list):
        raise TypeError(f"spec has to be a list of layer descriptions, but got "
                        f"{type(spec).__name__}")
    return nn.Sequential(*[_module(e) for e in spec])


def save(model: nn.Sequential, folder: str | os.PathLike) -> Path:
    """Write ``spec.json`` and ``state_dict.pt`` (``torch.save`` of the state dict) to
    ``folder``; returns the folder."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "spec.json").write_text(json.dumps(spec_of(model), indent=1))
    torch.save(model.state_dict(), folder / "state_dict.pt")
    return folder


def load(folder: str | os.PathLike) -> nn.Sequential:
    """The model :func:`save` wrote: :func:`build` of its spec and its state dict read with
    ``torch.load(weights_only=True)``."""
    folder = Path(folder)
    model = build(json.loads((folder / "spec.json").read_text()))
    model.load_state_dict(torch.load(folder / "state_dict.pt", weights_only=True))
    return model.eval()
