"""Compaction: a model with noise layers, run at given scales, as a smaller plain model.

:func:`compact` walks the model's layers in order (nested ``nn.Sequential`` flattened) and
keeps, per feature of the tensor between two layers (channels of a 4-d tensor, else the last
dimension), the factor ``s`` by which the masked model's tensor differs from the compacted
one's. A noise layer multiplies ``s`` by its scales; ``s`` passes through the layers that
commute with a non-negative per-feature factor (ReLU, LeakyReLU, pooling, Flatten); the next
``Linear`` / ``Conv2d`` takes it into its input columns, and a column whose factor is 0 goes.
A backward pass then removes the output rows (and BatchNorm channels) nothing downstream uses.
Before a layer that does not commute (Tanh, GELU, ...) and at the end, the factor is written
into the last affine layer's output rows. A residual block whose ADD scale is 0 goes (its
block must map 0 to 0, as the library's bias-free ReLU blocks do); a kept one takes its ADD
and ARD scales into its first layer. Attention heads: :mod:`shrinkdrop.compress.heads`.

Why not ``torch-pruning`` for this: its dependency graph removes channels and units, but not
single positions of a flattened feature map (SBP's ``800 -> c`` input units of LeNet-5's first
dense layer), and it does not fold the kept scales of a continuous posterior into the weights;
the chains here are simple enough to walk directly. ``torch-pruning`` is the magnitude-pruning
baseline of ``shrinkdrop compress`` instead.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from ..errors import CompactionError
from ..nn import ChannelNoise, LayerNoise, NoiseLayer, NoisyResidual, UnitNoise
from .spec import Residual, Select

__all__ = ["compact"]

_HOMOGENEOUS = (nn.ReLU, nn.LeakyReLU, nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d,
                nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d, nn.Identity,
                nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)
_DROP = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.AlphaDropout)


@dataclass
class _Node:
    """One layer of the walk: ``kind`` in weight / bn / flatten / free (parameter-free) /
    noise / residual / attention."""

    kind: str
    path: str
    module: nn.Module
    shape_in: tuple[int, ...]
    shape_out: tuple[int, ...]
    in_scale: Tensor | None = None  # weight layers: the factor of each input column
    row_scale: Tensor | None = None  # weight / bn: a factor written into the output rows
    keep: Tensor | None = None  # weight / bn: output rows kept (bool, original indexing)
    need_in: Tensor | None = None
    sub: list[_Node] = field(default_factory=list)  # residual: the block's nodes
    removed: bool = False


def _fdim(shape: tuple[int, ...]) -> int:
    return 1 if len(shape) == 4 else len(shape) - 1


def _nfeat(shape: tuple[int, ...]) -> int:
    return shape[_fdim(shape)]


def _leaves(module: nn.Module, prefix: str = "") -> list[tuple[str, nn.Module]]:
    if isinstance(module, nn.Sequential):
        out = []
        for name, m in module.named_children():
            out += _leaves(m, f"{prefix}.{name}" if prefix else name)
        return out
    return [(prefix, module)]


def _site_scale(scales: Mapping[str, Tensor], path: str, role: str) -> Tensor | None:
    key = f"{path}.{role}" if path else role
    v = scales.get(key)
    return None if v is None else torch.as_tensor(v).detach().double()


def _noise_factor(node: _Node, scales: Mapping[str, Tensor]) -> Tensor:
    """The factor a noise layer applies to the features of its input."""
    m, n = node.module, _nfeat(node.shape_in)
    if isinstance(m, UnitNoise):
        if len(node.shape_in) == 4:
            raise CompactionError(f"UnitNoise at {node.path!r} acts on the last dimension of a "
                                  "4-d tensor; compaction needs it on dense features")
        v = _site_scale(scales, node.path, "xi")
    elif isinstance(m, ChannelNoise):
        v = _site_scale(scales, node.path, "tau")
    elif isinstance(m, LayerNoise):
        v = _site_scale(scales, node.path, "tau")
        v = None if v is None else v.expand(n)
    else:
        raise CompactionError(f"compaction does not know the noise layer {type(m).__name__} "
                              f"at {node.path!r}")
    return torch.ones(n, dtype=torch.float64) if v is None else v.reshape(n)


class _Walk:
    """The forward pass of :func:`compact` over one chain (nested for residual blocks)."""

    def __init__(self, shapes: dict[str, tuple], scales: Mapping[str, Tensor]) -> None:
        self.shapes, self.scales = shapes, scales

    def plan(self, leaves: list[tuple[str, nn.Module]], s: Tensor) -> tuple[list[_Node], Tensor]:
        nodes: list[_Node] = []
        last: list[_Node] = []  # the affine nodes ``s`` can still be written into
        for path, m in leaves:
            if path not in self.shapes:
                raise CompactionError(f"layer {path!r} ({type(m).__name__}) is not used by the "
                                      "model's forward pass on the example")
            sin, sout = self.shapes[path]
            node = _Node(self._kind(path, m), path, m, sin, sout)
            nodes.append(node)
            s = self._step(node, s, last)
        return nodes, s

    def _kind(self, path: str, m: nn.Module) -> str:
        from .heads import HeadNoiseAttention

        if isinstance(m, (nn.Linear, nn.Conv2d)):
            if isinstance(m, nn.Conv2d) and m.groups != 1:
                raise CompactionError(f"Conv2d at {path!r} has groups={m.groups}; compaction "
                                      "supports groups=1")
            return "weight"
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            return "bn"
        if isinstance(m, nn.Flatten):
            return "flatten"
        if isinstance(m, NoisyResidual):
            return "residual"
        if isinstance(m, HeadNoiseAttention):
            return "attention"
        if isinstance(m, NoiseLayer):
            return "noise"
        if not any(True for _ in m.parameters()) and type(m).__module__.startswith("torch.nn"):
            return "free"
        raise CompactionError(f"compaction does not know the layer {type(m).__name__} at "
                              f"{path!r} (Linear, Conv2d, BatchNorm, parameter-free torch.nn "
                              "layers, shrinkdrop noise layers, NoisyResidual, "
                              "HeadNoiseAttention; nested nn.Sequential)")

    def _step(self, node: _Node, s: Tensor, last: list[_Node]) -> Tensor:
        k, m = node.kind, node.module
        if k == "weight":
            node.in_scale = s
            node.row_scale = torch.ones(_nfeat(node.shape_out), dtype=torch.float64)
            last[:] = [node]
            return torch.ones_like(node.row_scale)
        if k == "bn":
            node.in_scale = s  # folded into the BN's affine form (a 0 leaves its bias)
            node.row_scale = torch.ones_like(s)
            last.append(node)
            return torch.ones_like(s)
        if k == "noise":
            return s * _noise_factor(node, self.scales)
        if k == "flatten":
            if len(node.shape_in) == len(node.shape_out):
                return s
            if m.start_dim != 1 or len(node.shape_out) != 2:
                raise CompactionError(f"Flatten at {node.path!r}: compaction needs "
                                      "Flatten(start_dim=1) to a 2-d tensor")
            return s.repeat_interleave(math.prod(node.shape_in[2:]))
        if k in ("residual", "attention"):
            _materialize(s, last, node.path, zeros=True)
            last.clear()
            return self._composite(node, torch.ones_like(s))
        # parameter-free
        if isinstance(m, _HOMOGENEOUS):
            if (s < 0).any() and not isinstance(m, (nn.AvgPool1d, nn.AvgPool2d, *_DROP)):
                raise CompactionError(f"{type(m).__name__} at {node.path!r} does not commute "
                                      "with a negative scale")
            return s
        if len(node.shape_in) != len(node.shape_out) or _nfeat(node.shape_in) != len(s):
            _materialize(s, last, node.path, zeros=True)
            last.clear()
            return torch.ones(_nfeat(node.shape_out), dtype=torch.float64)
        zero = s == 0
        _materialize(s, last, node.path, zeros=False)
        if zero.any():
            x = torch.zeros(1, dtype=torch.get_default_dtype())
            if m(x).abs().max() != 0:
                raise CompactionError(f"{type(m).__name__} at {node.path!r} does not map 0 "
                                      "to 0, so switched-off units cannot pass it")
        last.clear()
        return (~zero).double()

    def _composite(self, node: _Node, s: Tensor) -> Tensor:
        if node.kind == "attention":
            return s
        m = node.module
        n = _nfeat(node.shape_in)
        tau = _site_scale(self.scales, node.path, "tau") if m.layer_noise is not None else None
        xi = _site_scale(self.scales, node.path, "xi") if m.unit_noise is not None else None
        f = torch.ones(n, dtype=torch.float64)
        f = f * (tau.reshape(()) if tau is not None else 1.0)
        f = f * (xi.reshape(n) if xi is not None else 1.0)
        if (f == 0).all():
            zero = torch.zeros((1, *node.shape_in[1:]), dtype=torch.get_default_dtype())
            with torch.no_grad():
                if m.block(zero).abs().max() > 0:
                    raise CompactionError(f"the residual block at {node.path!r} is switched "
                                          "off but does not map 0 to 0 (a bias?): it cannot "
                                          "be removed")
            node.removed = True
            return s
        node.sub, s_end = self.plan(_leaves(m.block, f"{node.path}.block"), f)
        _materialize(s_end, _tail_affine(node.sub), node.path, zeros=True)
        return s


def _tail_affine(nodes: list[_Node]) -> list[_Node]:
    """The affine nodes after the last non-commuting layer (where an end factor can go)."""
    out: list[_Node] = []
    for n in nodes:
        if n.kind == "weight":
            out = [n]
        elif n.kind == "bn":
            out.append(n)
        elif n.kind in ("residual", "attention") or (
                n.kind == "free" and not isinstance(n.module, _HOMOGENEOUS)):
            out = []
    return out


def _materialize(s: Tensor, last: list[_Node], where: str, *, zeros: bool) -> None:
    """Write ``s`` (its zeros too if ``zeros``) into the output rows of the last affine node."""
    r = s.clone()
    if not zeros:
        r[r == 0] = 1.0
    if (r == 1).all():
        return
    if not last:
        raise CompactionError(f"a scale other than 0 or 1 reaches {where!r} with no Linear, "
                              "Conv2d or BatchNorm before it to take it")
    target = last[-1]
    target.row_scale = target.row_scale * r


def _need(nodes: list[_Node], need: Tensor) -> Tensor:
    """Backward: which output rows each node keeps; returns what the chain's input needs."""
    for node in reversed(nodes):
        k = node.kind
        if k == "weight":
            node.keep = need.clone()
            need = (node.in_scale != 0) & bool(need.any())
        elif k == "bn":
            node.keep = need.clone()
        elif k == "flatten" and len(node.shape_in) != len(node.shape_out):
            need = need.reshape(node.shape_in[1], -1).any(1)
        elif k == "residual":
            if not node.removed:
                node.need_in = _need(node.sub, torch.ones(len(need), dtype=torch.bool))
            need = torch.ones(len(need), dtype=torch.bool)
        elif k == "attention":
            need = torch.ones(_nfeat(node.shape_in), dtype=torch.bool)
    return need


def _bn(node: _Node, rows: Tensor) -> nn.Module:
    m = node.module
    new = copy.deepcopy(m)
    s_in = node.in_scale if node.in_scale is not None else torch.ones(m.num_features,
                                                                      dtype=torch.float64)
    r = node.row_scale
    sel = rows.nonzero().reshape(-1)
    with torch.no_grad():
        if (s_in == 1).all() and (r == 1).all():
            new.num_features = len(sel)
            for name in ("weight", "bias", "running_mean", "running_var"):
                t = getattr(m, name)
                if t is not None:
                    getattr(new, name).data = t.data[sel].clone()
            return new
        std = (m.running_var.double() + m.eps).sqrt()
        gamma = m.weight.double() if m.weight is not None else torch.ones_like(std)
        beta = m.bias.double() if m.bias is not None else torch.zeros_like(std)
        a = gamma / std * s_in * r
        b = (beta - gamma / std * m.running_mean.double()) * r
        out = type(m)(len(sel), eps=m.eps, momentum=m.momentum, affine=True)
        dt = m.running_var.dtype
        out.weight.data = a[sel].to(dt)
        out.bias.data = b[sel].to(dt)
        out.running_mean.zero_()
        out.running_var.fill_(1.0 - m.eps)
        return out


def _weight(node: _Node, cols: Tensor, rows: Tensor) -> nn.Module:
    m = node.module
    ci, ri = cols.nonzero().reshape(-1), rows.nonzero().reshape(-1)
    w = m.weight.detach().double()
    shape = (1, -1) + (1,) * (w.ndim - 2)
    w = (w * node.in_scale.reshape(shape))[ri][:, ci] * node.row_scale[ri].reshape(
        (-1,) + (1,) * (w.ndim - 1))
    dt = m.weight.dtype
    if isinstance(m, nn.Linear):
        new = nn.Linear(len(ci), len(ri), bias=m.bias is not None)
    else:
        new = nn.Conv2d(len(ci), len(ri), m.kernel_size, stride=m.stride, padding=m.padding,
                        dilation=m.dilation, bias=m.bias is not None,
                        padding_mode=m.padding_mode)
    new = new.to(dt)
    with torch.no_grad():
        new.weight.copy_(w.to(dt))
        if m.bias is not None:
            new.bias.copy_((m.bias.detach().double()[ri] * node.row_scale[ri]).to(dt))
    return new


def _emit(nodes: list[_Node], alive: Tensor, scales: Mapping[str, Tensor]
          ) -> tuple[list[nn.Module], Tensor]:
    """Forward: the compacted modules; ``alive`` marks the features the tensor carries."""
    out: list[nn.Module] = []
    for node in nodes:
        k, m = node.kind, node.module
        if k == "weight":
            cols = node.in_scale != 0
            if node.keep is not None and not node.keep.any():
                cols = torch.zeros_like(cols)
            if not torch.equal(cols, alive):
                if (cols & ~alive).any():  # pragma: no cover - the backward pass prevents it
                    raise CompactionError(f"{node.path!r} needs a removed feature")
                pos = torch.cumsum(alive.long(), 0) - 1
                out.append(Select(pos[cols], dim=_fdim(node.shape_in)))
            out.append(_weight(node, cols, node.keep))
            alive = node.keep
        elif k == "bn":
            out.append(_bn(node, node.keep & alive))
            alive = node.keep & alive
        elif k == "flatten":
            out.append(copy.deepcopy(m))
            if len(node.shape_in) != len(node.shape_out):
                alive = alive.repeat_interleave(math.prod(node.shape_in[2:]))
        elif k == "free":
            if not isinstance(m, _DROP):
                out.append(copy.deepcopy(m))
        elif k == "residual" and not node.removed:
            block, _ = _emit(node.sub, torch.ones(len(alive), dtype=torch.bool), scales)
            out.append(Residual(nn.Sequential(*block)))
        elif k == "attention":
            from .heads import compact_attention

            out.append(compact_attention(m, scales, node.path))
    return out, alive


def compact(model: nn.Module, scales: Mapping[str, Tensor] | None, example: Tensor
            ) -> nn.Sequential:
    """The model ``model`` run at ``scales``, as a smaller plain ``nn.Sequential``.

    Args:
        model: an ``nn.Sequential`` (nested ones are flattened) of ``Linear``, ``Conv2d``
            (groups 1), ``BatchNorm1d/2d``, parameter-free ``torch.nn`` layers, the noise layers
            ``UnitNoise`` (on dense features), ``ChannelNoise``, ``LayerNoise``,
            ``NoisyResidual`` and :class:`~shrinkdrop.nn.HeadNoiseAttention`.
        scales: site name -> scales (``SVISite.name``: ``"3.tau"``), as
            :func:`shrinkdrop.inference.given_scales` takes them; 0 switches a unit, channel,
            block or head off, other values are folded into the weights; a site not given is
            at 1. ``None``: every scale at 1 (the dense model without its noise layers).
        example: one input batch (the shapes are read from a forward pass on it).

    Returns:
        an ``nn.Sequential`` in eval mode whose output equals ``model``'s in eval mode under
        ``given_scales(model, scales)`` (to float rounding), with the switched-off units,
        channels, blocks and heads removed. :func:`shrinkdrop.compress.save` stores it.
    """
    from ..inference import given_scales

    if not isinstance(model, nn.Module):
        raise TypeError(f"model has to be an nn.Module, but got {type(model).__name__}")
    scales = dict(scales or {})
    leaves = _leaves(model)
    shapes: dict[str, tuple] = {}
    hooks = [m.register_forward_hook(
        lambda mod, args, out, _p=p: shapes.__setitem__(_p, (_shape(args[0]), _shape(out))))
        for p, m in _all_modules(model)]
    was = model.training
    model.eval()
    try:
        with torch.no_grad(), given_scales(model, scales):
            model(example)
    finally:
        for h in hooks:
            h.remove()
        model.train(was)
    walk = _Walk(shapes, scales)
    first = shapes[leaves[0][0]][0]
    nodes, s_end = walk.plan(leaves, torch.ones(_nfeat(first), dtype=torch.float64))
    _materialize(s_end, _tail_affine(nodes), "the output", zeros=True)
    last_shape = shapes[leaves[-1][0]][1]
    _need(nodes, torch.ones(_nfeat(last_shape), dtype=torch.bool))
    mods, _ = _emit(nodes, torch.ones(_nfeat(first), dtype=torch.bool), scales)
    return nn.Sequential(*mods).eval()


def _shape(t: object) -> tuple[int, ...]:
    while isinstance(t, (tuple, list)) and t:
        t = t[0]
    return tuple(t.shape) if isinstance(t, Tensor) else ()


def _all_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Every leaf of the walk, the blocks of residual layers too."""
    out = []
    for p, m in _leaves(model):
        out.append((p, m))
        if isinstance(m, NoisyResidual):
            out += _all_modules_under(m.block, f"{p}.block")
    return out


def _all_modules_under(block: nn.Module, prefix: str) -> list[tuple[str, nn.Module]]:
    out = []
    for p, m in _leaves(block, prefix):
        out.append((p, m))
        if isinstance(m, NoisyResidual):
            out += _all_modules_under(m.block, f"{p}.block")
    return out
