"""``convert``: replace dropout / stochastic-depth modules of a model by structured noise layers."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import nn

from .. import functional as F
from .. import noise as _noise
from . import _hf, _record, _scan
from ._base import NoiseLayer
from .attention import AttentionNoise, NoisyMultiheadAttention
from .residual import NoisyResidual
from .stacked_rnn import NoisyStackedRNN
from .unit import ChannelNoise, LayerNoise, UnitNoise

__all__ = ["convert", "ConversionReport", "Replacement", "NotConverted", "converted_with",
           "reconvert"]


@dataclass(frozen=True)
class Replacement:
    """One converted dropout site: its qualified name, the old module and the new layer (as text),
    and the prior structure the site implies (which weights share a scale)."""

    name: str
    old: str
    new: str
    structure: str = ""


@dataclass(frozen=True)
class NotConverted:
    """A dropout site :func:`convert` left as it was (still Bernoulli dropout): its module path,
    the attribute holding the rate, the rate, and why."""

    name: str
    attribute: str
    p: float
    why: str
    structure: str = ""


@dataclass
class ConversionReport:
    """What :func:`convert` replaced, what it left alone and why, and what it could not convert.

    ``replaced``: converted sites; ``skipped``: ``(name, reason)`` of sites without Bernoulli
    noise to replace (rate 0, alpha dropout); ``not_converted``: Bernoulli dropout that is still
    in the model; ``notes``: changes besides the swaps (fast paths switched off, the attention
    implementation of Hugging Face models). ``complete`` is True when ``not_converted`` is empty.
    """

    replaced: list[Replacement] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)
    not_converted: list[NotConverted] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.replaced)

    @property
    def complete(self) -> bool:
        return not self.not_converted

    def __str__(self) -> str:
        lines = [f"replaced {len(self.replaced)} site(s), {len(self.not_converted)} dropout "
                 f"site(s) NOT converted, {len(self.skipped)} skipped"]
        for r in self.replaced:
            lines.append(f"  {r.name}: {r.old} -> {r.new}")
            if r.structure:
                lines.append(f"      structure: {r.structure}")
        for n in self.not_converted:
            lines.append(f"  NOT converted {n.name}.{n.attribute} (p={n.p:g}): {n.why}")
            if n.structure:
                lines.append(f"      structure: {n.structure}")
        lines += [f"  skipped {name}: {why}" for name, why in self.skipped]
        lines += [f"  note: {note}" for note in self.notes]
        return "\n".join(lines)


_DROP_PATH = re.compile(r"(?i)drop_?path|stochastic_?depth")
_PATH_RATES = ("drop_prob", "p", "drop_rate", "drop_path_rate", "prob")


def _drop_rate(module: nn.Module) -> tuple[str, float] | None:
    """(kind, p) for modules convert understands, else None."""
    if isinstance(module, (nn.AlphaDropout, nn.FeatureAlphaDropout)):
        return None
    if isinstance(module, (nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)):
        return "channel", float(module.p)
    if isinstance(module, nn.Dropout):
        return "unit", float(module.p)
    if isinstance(module, torch.jit.ScriptModule) or \
            not _DROP_PATH.search(type(module).__name__):
        return None
    # drop path / stochastic depth of any naming: torchvision StochasticDepth(p, mode), timm
    # DropPath(drop_prob), transformers' SwinDropPath, ConvNextDropPath, BeitDropPath, ...
    for attr in _PATH_RATES:
        v = getattr(module, attr, None)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            mode = getattr(module, "mode", "row")
            return ("layer_batch" if mode == "batch" else "layer"), float(v)
    return None


def _check_noise_argument(noise) -> None:
    if isinstance(noise, type):
        raise TypeError(
            f"noise has to be a noise family instance (e.g. {noise.__name__}(...)), "
            "'bernoulli' / 'gaussian' (matched to each site's rate) or a callable p -> family, "
            f"but got the class {noise.__name__} itself (called with the rate p it would read p "
            "as its first parameter)")


def _family(noise, p: float) -> _noise.NoiseDistribution:
    if isinstance(noise, _noise.NoiseDistribution):
        return noise
    if isinstance(noise, str):
        if noise == "bernoulli":
            return _noise.Bernoulli(1.0 - p)
        if noise == "gaussian":
            return _noise.Gaussian.dropout(p)
        raise ValueError(
            f"noise has to be a noise family, a callable p -> family, 'bernoulli' or 'gaussian' "
            f"(matched to each module's drop rate p), but got {noise!r}"
        )
    if callable(noise):
        fam = noise(p)
        return F.check_noise(fam, "noise(p)")
    raise TypeError(
        "noise has to be a shrinkdrop.noise family, a callable p -> family, 'bernoulli' or "
        f"'gaussian', but got {type(noise).__name__}"
    )


def _short(m: nn.Module) -> str:
    """One line: the class and its settings (no children)."""
    if isinstance(m, NoisyMultiheadAttention):
        return (f"NoisyMultiheadAttention(embed_dim={m.embed_dim}, num_heads={m.num_heads}, "
                f"attn_noise={m.attn_noise!r})")
    if isinstance(m, nn.MultiheadAttention):
        return (f"MultiheadAttention(embed_dim={m.embed_dim}, num_heads={m.num_heads}, "
                f"dropout={m.dropout:g})")
    return f"{type(m).__name__}({m.extra_repr()})"


# ------------------------------------------------------------------ structure of each site
_ATTENTION = ("attention probabilities: one scale per (example, head, query i, key j); "
              "DropConnect on the value-mixing matrix A (out_i = sum_j a_ij xi_ij v_j); no "
              "learned weight shares it")
_RNN = ("between RNN layers: input column r of weight_ih_l{l+1} (all gates, both directions) "
        "shares xi per (sequence, time step, input dim r), not per sequence; recurrent weights "
        "none")
_FFN = "unit (ARD) on the feed-forward hidden layer: column r of {w}.weight shares xi per " \
       "(example, position, hidden unit r)"
_ROWS = "output units of {w}: row o of its weight and bias o share xi per (example, position), " \
        "before the residual sum"
_EMB = "unit noise on the embedding output: xi per (example, token, feature r), shared by " \
       "column r of the first layer's query/key/value weights and the residual stream"
_CONV1D = "output units of {w} (transformers Conv1D, weight (in, out)): column o of its weight " \
          "and bias o share xi per (example, position), before the residual sum"

# (parent class, attribute) -> structure, for the layers of torch and of transformers' BERT,
# GPT-2 and ViT (the consumer of each dropout is fixed by their forward code)
_KNOWN = {
    ("TransformerEncoderLayer", "dropout"): _FFN.format(w="linear2"),
    ("TransformerEncoderLayer", "dropout1"): _ROWS.format(w="self_attn.out_proj"),
    ("TransformerEncoderLayer", "dropout2"): _ROWS.format(w="linear2"),
    ("TransformerDecoderLayer", "dropout"): _FFN.format(w="linear2"),
    ("TransformerDecoderLayer", "dropout1"): _ROWS.format(w="self_attn.out_proj"),
    ("TransformerDecoderLayer", "dropout2"): _ROWS.format(w="multihead_attn.out_proj"),
    ("TransformerDecoderLayer", "dropout3"): _ROWS.format(w="linear2"),
    ("BertEmbeddings", "dropout"): _EMB,
    ("BertSelfOutput", "dropout"): _ROWS.format(w="dense"),
    ("BertOutput", "dropout"): _ROWS.format(w="dense"),
    ("ViTEmbeddings", "dropout"): _EMB,
    ("ViTSelfOutput", "dropout"): _ROWS.format(w="dense"),  # transformers < 5
    ("ViTOutput", "dropout"): _ROWS.format(w="dense"),
    ("ViTLayer", "dropout"): "one module called twice (independent draws): "
                             + _ROWS.format(w="attention.o_proj") + "; and "
                             + _ROWS.format(w="mlp.fc2"),
    ("GPT2Model", "drop"): _EMB,
    ("GPT2Attention", "resid_dropout"): _CONV1D.format(w="c_proj"),
    ("GPT2MLP", "dropout"): _CONV1D.format(w="c_proj"),
}


def _weighted(m) -> bool:
    w = getattr(m, "weight", None)
    return w is not None and getattr(w, "ndim", 0) >= 2


def _structure(parent: nn.Module, child_name: str, kind: str) -> str:
    known = _KNOWN.get((type(parent).__name__, child_name))
    if known is not None:
        return known
    if kind == "channel":
        return ("tied filters: all weights of the conv filter producing channel c share xi per "
                "(example, channel), when the input is a conv's output")
    if kind in ("layer", "layer_batch"):
        return "ADD: all weights of the residual branch share tau per example"
    if child_name == "dropout" and _weighted(getattr(parent, "classifier", None)):
        return "unit (ARD): column r of classifier.weight shares xi per (example, feature r)"
    if isinstance(parent, nn.Sequential):
        names = list(parent._modules)
        i = names.index(child_name)
        for nxt in names[i + 1:]:
            if _weighted(parent._modules[nxt]):
                return (f"unit (ARD): column r of {nxt}.weight (all weights leaving input unit "
                        "r) shares xi per (example, feature r)")
            if any(p.requires_grad for p in parent._modules[nxt].parameters()):
                break
    return ("unit noise, one scale per element of the tensor the module receives; which "
            "weights share it depends on where forward uses it (not inferred)")


# ------------------------------------------------------------------ leftovers
def _rate_attributes(m: nn.Module) -> list[tuple[str, float]]:
    """Float attributes named like a dropout rate, > 0 (a functional dropout's p)."""
    out = []
    for k, v in vars(m).items():
        if "drop" in k.lower() and isinstance(v, (int, float)) and not isinstance(v, bool) \
                and v > 0:
            out.append((k, float(v)))
    return out


# ------------------------------------------------------------------ convert
def convert(model: nn.Module,
            noise: _noise.NoiseDistribution | str | Callable[[float], _noise.NoiseDistribution],
            *, share_across_batch: bool = False, normalize: bool = True,
            generator: torch.Generator | None = None) -> ConversionReport:
    """Replace the dropout sites of ``model`` in place by structured noise and report each one.

    * ``nn.Dropout`` -> :class:`UnitNoise`; ``nn.Dropout1d/2d/3d`` -> :class:`ChannelNoise`;
      drop path / stochastic depth of any naming (torchvision ``StochasticDepth``, timm
      ``DropPath``, transformers ``SwinDropPath``, ``ConvNextDropPath``, ...: a class name matching
      ``drop_?path`` / ``stochastic_?depth`` with a float rate) -> :class:`LayerNoise` ("batch"
      mode becomes ``share_across_batch``);
    * ``nn.MultiheadAttention(dropout=p)`` (also inside ``nn.Transformer*`` layers) ->
      :class:`NoisyMultiheadAttention` (noise on the attention probabilities; same parameters);
    * ``nn.LSTM / nn.GRU / nn.RNN(dropout=p, num_layers > 1)`` -> :class:`NoisyStackedRNN`
      (noise between the layers, per time step, as torch's; same parameters);
    * Hugging Face ``transformers`` attention modules that pass their rate to the attention
      interface (BERT, GPT-2, Llama, Gemma2, T5, BART, ViT, Whisper, ...): an
      :class:`AttentionNoise` is attached as ``shrinkdrop_attention`` and the model is switched
      to the ``"shrinkdrop"`` attention implementation, which runs the model's own eager
      attention function with every argument the model passes and replaces only its dropout
      step by that noise; the ``nn.Dropout`` that only holds their rate is left in place (its
      ``.p`` is read there) and reported with the site.

    ``nn.TransformerEncoderLayer`` / ``nn.TransformerEncoder`` that now hold noise get their
    eval fast paths switched off (they bypass the submodules, so noise would be skipped under
    :func:`mc_mode`). Sites with rate 0 (when the family is derived from the rate) and alpha
    dropout are skipped. Dropout convert cannot reach is listed in ``report.not_converted`` by
    module path, attribute and rate, so that ``report.complete`` is True only when no Bernoulli
    dropout is left: float rate attributes; functional dropout and Bernoulli draws in a forward
    or in the functions and methods it calls (found in the bytecode, any import spelling); rates
    such as LayerDrop read from the config in forward; ``torch.jit`` scripted or traced modules
    holding dropout; ``add_bias_kv`` attention. Every report entry says the structure the site
    implies (which weights share a scale).

    Atomic: a ``convert`` that raises leaves the model as it was. What was done is recorded
    (:func:`converted_with`; for transformers models in the config, so it survives
    ``save_pretrained``) and :func:`reconvert` re-applies it after loading.

    Args:
        model: the model, modified in place (``convert`` on a bare dropout module raises: wrap it).
        noise: a family used for every site, or ``"bernoulli"`` / ``"gaussian"``
            (``Bernoulli(1 - p)`` / ``Gaussian.dropout(p)`` matched to each site's rate p), or a
            callable ``p -> family``.
        share_across_batch, normalize, generator: passed to the new layers.

    Returns:
        a :class:`ConversionReport`.

    Raises:
        TypeError: ``noise`` is a family class, not an instance (or another wrong type).
        shrinkdrop.errors.ConversionError: a transformers model whose attention convert cannot
            run exactly as its eager attention (no eager fallback it can find, a forward that
            branches on ``"eager"``); the model is left unchanged.

    Example:
        >>> report = shrinkdrop.convert(model, shrinkdrop.noise.Rayleigh(0.5))
        >>> print(report)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model has to be an nn.Module, but got {type(model).__name__}")
    _check_noise_argument(noise)
    if _drop_rate(model) is not None or isinstance(model, (nn.MultiheadAttention, nn.RNNBase)):
        raise ValueError("convert replaces submodules in place; wrap a bare dropout, attention or "
                         "RNN module (e.g. nn.Sequential(module)) before converting")
    configs = _hf.configs(model)
    saved = _record.snapshot(model, configs)
    try:
        return _convert(model, noise, share_across_batch, normalize, generator, configs)
    except BaseException:
        _record.restore(saved)  # atomic: a convert that raises leaves the model as it was
        raise


def _convert(model, noise, share_across_batch, normalize, generator, configs):
    conv = _Converter(noise, share_across_batch, dict(normalize=normalize, generator=generator))
    if isinstance(model, torch.jit.ScriptModule):
        conv.scripted("", model)
        return conv.report
    conv.leftovers("", model)
    conv.visit(model, "")
    conv.switch_fast_paths(model)
    if conv.hf_sites:
        _hf.check_model(model)
        switched = _hf.use_implementation(model)
        conv.report.notes.append(
            f"transformers attention implementation set to {_hf.IMPLEMENTATION!r} on "
            f"{', '.join(switched) or 'the configs'} (the model's own eager attention with its "
            "dropout step replaced by the noise); setting another one afterwards turns the "
            "attention noise off")
    if conv.report.replaced:
        _record.record(model, _record.spec(noise, share_across_batch, normalize, generator),
                       configs)
    return conv.report


def converted_with(model: nn.Module) -> dict | None:
    """What ``model`` was converted with, or ``None`` if :func:`convert` never replaced anything
    in it.

    The spec is recorded by :func:`convert` on the model object and, for Hugging Face models, on
    their configs (key ``"shrinkdrop"``, so it is written to ``config.json`` by
    ``save_pretrained`` and read back by ``from_pretrained``). A loaded model holds plain dropout
    again until :func:`reconvert` re-applies the conversion.

    Returns:
        ``{"noise": ..., "share_across_batch": ..., "normalize": ..., "generator": ...,
        "version": 1, "active": bool}``: ``noise`` is ``"bernoulli"`` / ``"gaussian"``, a family
        ``{"family": "Rayleigh", "parameters": {"scale": 0.5}}``, a per-rate constructor
        ``{"family": "Gaussian", "per_rate": "dropout"}`` or ``{"callable": name}``;
        ``generator`` says whether one was given (it is not recorded); ``active`` whether the
        model holds shrinkdrop noise layers now.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model has to be an nn.Module, but got {type(model).__name__}")
    found = getattr(model, _record.MODEL_ATTR, None)
    if found is None:
        found = next((c.shrinkdrop for c in _hf.configs(model)
                      if isinstance(getattr(c, "shrinkdrop", None), dict)), None)
    if found is None:
        return None
    return {**found, "active": _noisy_inside(model)}


def reconvert(model: nn.Module, *, generator: torch.Generator | None = None) -> ConversionReport:
    """Re-apply the recorded conversion (see :func:`converted_with`) to ``model``: the one line
    after ``from_pretrained`` of a converted Hugging Face model, or after loading a state dict
    into a fresh copy of a converted model.

    Raises:
        ConversionError: nothing is recorded on the model, or the noise was a callable of your
            own (call :func:`convert` with it instead).
    """
    spec = converted_with(model)
    if spec is None:
        raise _record.ConversionError(
            "model has no recorded conversion (shrinkdrop.convert never replaced anything in "
            "it, and no config holds a 'shrinkdrop' entry): call shrinkdrop.convert(model, noise)")
    return convert(model, _record.rebuild_noise(spec["noise"]),
                   share_across_batch=spec["share_across_batch"], normalize=spec["normalize"],
                   generator=generator)


def _noisy_inside(m: nn.Module) -> bool:
    return any(isinstance(x, NoiseLayer) for x in m.modules())


class _Converter:
    """One :func:`convert` run: the settings, the report, and the walk over the model."""

    def __init__(self, noise, share_across_batch: bool, kw: dict) -> None:
        self.noise = noise
        self.derived = not isinstance(noise, _noise.NoiseDistribution)
        self.share = share_across_batch
        self.kw = kw
        self.report = ConversionReport()
        self.rate_holders: dict[int, str] = {}  # id of an HF attention's rate-holding Dropout
        self.hf_sites = 0

    def attention_site(self, name: str, m: nn.Module) -> None:
        """A Hugging Face attention module: attach an :class:`AttentionNoise` to it."""
        report = self.report
        attr, p, is_module = _hf.attention_rate(m)
        if not attr:
            report.not_converted.append(NotConverted(
                name, "dropout=", math.nan, "transformers attention whose rate expression "
                "convert does not understand", _ATTENTION))
            return
        if is_module:
            self.rate_holders[id(getattr(m, attr))] = name
        if hasattr(m, _hf.ATTR):
            return
        if self.derived and p == 0:
            report.skipped.append((f"{name}.{attr}", "drop rate 0: no noise"))
            return
        layer = AttentionNoise(_family(self.noise, p), self.share, **self.kw)
        layer.train(m.training)
        setattr(m, _hf.ATTR, layer)
        self.hf_sites += 1
        report.replaced.append(Replacement(
            name, f"{type(m).__name__}: attention dropout p={p:g} (functional, rate .{attr})",
            f"{_hf.ATTR} = {layer!r} (attention implementation {_hf.IMPLEMENTATION!r})",
            _ATTENTION))

    def leftovers(self, name: str, m: nn.Module) -> None:
        """Report the dropout of ``m`` that convert cannot reach: float rate attributes, and
        what its forward (and the functions it calls) does besides calling submodules."""
        if isinstance(m, (NoiseLayer, nn.MultiheadAttention, nn.RNNBase)) or \
                _drop_rate(m) is not None:
            return
        where, site, exclude = name or "<model>", _hf.attention_rate(m), ()
        if site is not None:  # an HF attention site: its rate and its eager function are known
            eager = _hf.eager_function(type(m))
            exclude = (eager,) if callable(eager) else ()
        rates = [(a, p) for a, p in _rate_attributes(m) if site is None or a != site[0]]
        for attr, p in rates:
            self.report.not_converted.append(NotConverted(
                where, attr, p, "a float dropout rate read by this module's forward "
                "(functional dropout or LayerDrop): convert cannot reach it"))
        found = _scan.forward_findings(m, exclude)
        for attr, p in sorted({(what, p) for kind, what, p in found if kind == "rate"}):
            if attr.rsplit(".", 1)[-1] not in {a for a, _ in rates}:
                self.report.not_converted.append(NotConverted(
                    where, attr, p, "a dropout / LayerDrop rate read from the config by this "
                    "module's forward: convert cannot reach it"))
        calls = sorted({what for kind, what, _ in found if kind == "call"})
        zero = [k for k, v in vars(m).items() if "drop" in k.lower() and v == 0
                and isinstance(v, (int, float)) and not isinstance(v, bool)
                and (site is None or k != site[0])]  # not the attention site's own rate
        if calls and not rates and zero and not any("bernoulli" in c for c in calls):
            self.report.skipped.append((where, f"forward calls {', '.join(calls)} and every "
                                               f"rate attribute ({', '.join(zero)}) is 0: no "
                                               "noise (convert again if they change)"))
        elif calls and not rates:
            self.report.not_converted.append(NotConverted(
                where, "forward", math.nan, f"forward calls {', '.join(calls)} (functional "
                "dropout or a Bernoulli draw, directly or in a function it calls): convert "
                "cannot reach it"))
        if _DROP_PATH.search(type(m).__name__) and not (rates or calls):
            self.report.not_converted.append(NotConverted(
                where, "forward", math.nan, "a drop-path module whose rate attribute convert "
                f"does not know (looked for {', '.join(_PATH_RATES)})"))

    def scripted(self, name: str, m: torch.jit.ScriptModule) -> None:
        """A scripted or traced module: its compiled code cannot be changed from outside."""
        if _scan.scripted_dropout(m):
            self.report.not_converted.append(NotConverted(
                name or "<model>", "graph", math.nan, "a torch.jit scripted / traced module "
                "whose graph holds dropout: convert cannot change compiled code; convert the "
                "Python module before scripting it"))

    def visit(self, parent: nn.Module, prefix: str) -> None:
        """Convert the children of ``parent`` (qualified names start with ``prefix``)."""
        if _hf.attention_rate(parent) is not None:
            self.attention_site(prefix[:-1], parent)
        for child_name, child in list(parent.named_children()):
            name = f"{prefix}{child_name}"
            if isinstance(child, torch.jit.ScriptModule):
                self.scripted(name, child)
            elif isinstance(child, (nn.AlphaDropout, nn.FeatureAlphaDropout)):
                # a Bernoulli mask with an affine correction (SELU nets): not multiplicative
                # noise, so it stays; with p > 0 its Bernoulli draws still act (complete=False)
                why = f"{type(child).__name__} is not multiplicative (an affine Bernoulli mask)"
                if float(child.p) > 0:
                    self.report.not_converted.append(NotConverted(
                        name, "p", float(child.p), why + ": left in place, still dropping"))
                else:
                    self.report.skipped.append((name, why + ", rate 0"))
            elif id(child) in self.rate_holders:
                site = self.rate_holders[id(child)]
                self.report.skipped.append((name, f"holds the rate of the attention site {site} "
                                                  "(its .p is read there; the site is converted)"))
            elif isinstance(child, NoisyMultiheadAttention) or isinstance(child, NoiseLayer) \
                    and not isinstance(child, NoisyResidual):
                continue
            elif isinstance(child, nn.MultiheadAttention):
                self._attention(parent, child_name, name, child)
            elif isinstance(child, (nn.LSTM, nn.GRU, nn.RNN)):
                self._rnn(parent, child_name, name, child)
            elif _drop_rate(child) is None:
                self.leftovers(name, child)
                self.visit(child, f"{name}.")
            else:
                self._dropout(parent, child_name, name, child)

    def _attention(self, parent: nn.Module, child_name: str, name: str,
                   child: nn.MultiheadAttention) -> None:
        p = float(child.dropout)
        if self.derived and p == 0:
            self.report.skipped.append((name, "attention drop rate 0: no noise"))
            return
        try:
            new = NoisyMultiheadAttention.from_module(
                child, _family(self.noise, p), share_across_batch=self.share, **self.kw)
        except ValueError as e:
            if p > 0:
                self.report.not_converted.append(NotConverted(name, "dropout", p, str(e),
                                                              _ATTENTION))
            return
        setattr(parent, child_name, new)
        self.report.replaced.append(Replacement(name, _short(child), _short(new), _ATTENTION))

    def _rnn(self, parent: nn.Module, child_name: str, name: str, child: nn.RNNBase) -> None:
        p = float(child.dropout)
        if p == 0:
            return
        if child.num_layers == 1:
            self.report.skipped.append((name, f"dropout={p:g} with num_layers=1: torch "
                                              "applies none"))
            return
        new = NoisyStackedRNN.from_module(child, _family(self.noise, p),
                                          share_across_batch=self.share, **self.kw)
        setattr(parent, child_name, new)
        self.report.replaced.append(Replacement(name, _short(child), _short(new), _RNN))

    def _dropout(self, parent: nn.Module, child_name: str, name: str, child: nn.Module) -> None:
        kind, p = _drop_rate(child)
        if self.derived and p == 0:
            self.report.skipped.append((name, "drop rate 0: no noise"))
            return
        fam = _family(self.noise, p)
        if kind == "unit":
            new = UnitNoise(fam, self.share, **self.kw)
        elif kind == "channel":
            # Dropout1d / Dropout3d know their rank (unbatched (C, L) and (C, D, H, W) inputs
            # included); Dropout2d reads any (N, C, *) as torch does (docs/layers.md)
            dims = {nn.Dropout1d: 1, nn.Dropout3d: 3}.get(type(child))
            new = ChannelNoise(fam, self.share, spatial_dims=dims, **self.kw)
        else:
            new = LayerNoise(fam, self.share or kind == "layer_batch", **self.kw)
        new.train(child.training)
        setattr(parent, child_name, new)
        self.report.replaced.append(Replacement(name, repr(child), repr(new),
                                                _structure(parent, child_name, kind)))

    def switch_fast_paths(self, model: nn.Module) -> None:
        """Switch off the torch transformer fast paths that would skip the new noise."""
        for name, m in model.named_modules():
            if isinstance(m, nn.TransformerEncoderLayer) and m.activation_relu_or_gelu \
                    and _noisy_inside(m):
                # its eval fast path (torch._transformer_encoder_layer_fwd) reads the weights and
                # skips every submodule, noise included; this flag is only read by that check
                m.activation_relu_or_gelu = 0
                self.report.notes.append(f"{name}: eval fast path switched off "
                                         "(activation_relu_or_gelu = 0) so that mc_mode noise "
                                         "runs")
            elif isinstance(m, nn.TransformerEncoder) and getattr(m, "use_nested_tensor", False) \
                    and _noisy_inside(m):
                m.use_nested_tensor = False
                self.report.notes.append(f"{name}: nested-tensor fast path switched off")
