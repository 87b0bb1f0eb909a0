"""Find the dropout that :func:`shrinkdrop.convert` cannot swap: what a module's ``forward`` (and
the methods and helper functions it calls) does besides calling its dropout submodules.

The forward's bytecode is read, not its text: every name chain it loads (``F.dropout``,
``nn.functional.dropout``, a by-name ``dropout`` imported from ``torch.nn.functional``,
``self.config.layerdrop``, ``self._helper``, ``helper(...)``) is resolved in the function's
globals / closure / the module instance. Found:

* a call of a torch dropout function (any import spelling), or a Bernoulli draw
  (``.bernoulli`` / ``.bernoulli_``), in the forward or in a Python function or method it calls
  (up to :data:`DEPTH` calls deep);
* a rate read in the forward: a float > 0 at ``self.<...>.<name with "drop">`` (LayerDrop read
  from the config, ``self.config.layerdrop``), besides the float rate attributes of the module;
* a scripted or traced module (``torch.jit``) whose graph holds dropout: its code cannot be
  changed from outside.
"""

from __future__ import annotations

import dis
import inspect
import types

import torch
from torch import nn

DEPTH = 3
_FUNCS = {getattr(mod, name) for mod, names in (
    (nn.functional, ("dropout", "dropout1d", "dropout2d", "dropout3d", "feature_alpha_dropout",
                     "alpha_dropout")),
    (torch, ("dropout", "dropout_", "feature_dropout", "feature_dropout_", "alpha_dropout",
             "feature_alpha_dropout", "native_dropout", "bernoulli")),
) for name in names if hasattr(mod, name)}
_NAMES = {"dropout", "dropout_", "dropout1d", "dropout2d", "dropout3d", "feature_dropout",
          "alpha_dropout", "feature_alpha_dropout", "native_dropout"}
_DRAWS = {"bernoulli", "bernoulli_"}
_LOAD_ROOT = {"LOAD_GLOBAL", "LOAD_NAME", "LOAD_DEREF", "LOAD_FAST", "LOAD_CLASSDEREF"}
_LOAD_ATTR = {"LOAD_ATTR", "LOAD_METHOD"}


def _chains(code: types.CodeType) -> list[tuple[str, str, tuple[str, ...]]]:
    """``(root op, root name, attribute names)`` for every name chain ``code`` loads (nested
    functions and comprehensions included)."""
    out, cur = [], None
    for ins in dis.get_instructions(code):
        if ins.opname in _LOAD_ATTR:
            if cur is not None:
                cur[2].append(ins.argval)
            else:  # an attribute of an expression's value: x.new_empty(...).bernoulli_
                out.append(("ATTR", "<expr>", (ins.argval,)))
            continue
        if cur is not None:
            out.append((cur[0], cur[1], tuple(cur[2])))
            cur = None
        if ins.opname in _LOAD_ROOT:
            cur = (ins.opname, ins.argval, [])
    if cur is not None:
        out.append((cur[0], cur[1], tuple(cur[2])))
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            out += _chains(const)
    return out


_MISSING = object()


def _root(fn: types.FunctionType, op: str, name: str, owner):
    if op == "LOAD_FAST":
        return owner if name == "self" and owner is not None else _MISSING
    if op in ("LOAD_DEREF", "LOAD_CLASSDEREF"):
        free = fn.__code__.co_freevars
        if name in free and fn.__closure__:
            try:
                return fn.__closure__[free.index(name)].cell_contents
            except ValueError:
                return _MISSING
        return _MISSING
    g = fn.__globals__
    if name in g:
        return g[name]
    b = g.get("__builtins__", {})
    return (b.get(name, _MISSING) if isinstance(b, dict) else getattr(b, name, _MISSING))


def _ours(fn) -> bool:
    mod = getattr(fn, "__module__", "") or ""
    return mod.startswith(("torch", "shrinkdrop", "builtins", "typing", "functools"))


def _resolve(fn, op, name, attrs, owner):
    """The object at the end of the chain, ``_MISSING`` when unknown or when the chain goes
    through a submodule (the walk over the model handles submodules)."""
    obj = _root(fn, op, name, owner)
    for a in attrs:
        if obj is _MISSING or (isinstance(obj, nn.Module) and obj is not owner):
            return _MISSING
        try:
            obj = getattr(obj, a)
        except Exception:  # noqa: BLE001 - any failure means "not resolvable"
            return _MISSING
    return obj


def find(fn, owner: nn.Module | None, depth: int = DEPTH,
         _seen: set | None = None) -> list[tuple[str, str, float]]:
    """``(kind, what, p)`` findings in ``fn`` (a function or method): kind ``"call"`` (a dropout
    function or Bernoulli draw, p nan), ``"rate"`` (a float rate read from ``self``, p its
    value)."""
    fn = inspect.unwrap(getattr(fn, "__func__", fn))
    if not isinstance(fn, types.FunctionType) or _ours(fn):
        return []
    seen = _seen if _seen is not None else set()
    if fn.__code__ in seen:
        return []
    seen.add(fn.__code__)
    out: list[tuple[str, str, float]] = []
    for op, name, attrs in _chains(fn.__code__):
        dotted = ".".join((name, *attrs))
        if attrs and attrs[-1] in _DRAWS:
            out.append(("call", dotted, float("nan")))
            continue
        obj = _resolve(fn, op, name, attrs, owner)
        if obj is _MISSING:
            if (attrs[-1] if attrs else name) in _NAMES and name != "self" and (
                    attrs or op != "LOAD_FAST"):
                out.append(("call", dotted, float("nan")))  # named like dropout, unknown
            continue
        if any(obj is f for f in _FUNCS):
            out.append(("call", dotted, float("nan")))
        elif name == "self" and len(attrs) > 1 and "drop" in attrs[-1].lower() and isinstance(
                obj, (int, float)) and not isinstance(obj, bool) and obj > 0:
            out.append(("rate", dotted.removeprefix("self."), float(obj)))
        elif depth > 0 and (inspect.isfunction(obj) or inspect.ismethod(obj)):
            inner_owner = owner if name == "self" else None
            out += [f for f in find(obj, inner_owner, depth - 1, seen) if f[0] == "call"]
    return out


def forward_findings(m: nn.Module, exclude: tuple = ()) -> list[tuple[str, str, float]]:
    """:func:`find` on ``type(m).forward``, not looking into the functions in ``exclude``
    (nothing for torch's and shrinkdrop's own modules: those are handled by type)."""
    if type(m).__module__.startswith(("torch.", "shrinkdrop.")):
        return []
    try:
        return find(type(m).forward, m, _seen={f.__code__ for f in exclude})
    except Exception:  # noqa: BLE001 - bytecode we cannot read: say so
        return [("call", "forward (unreadable)", float("nan"))]


def scripted_dropout(m: torch.jit.ScriptModule) -> bool:
    """Whether a scripted / traced module's graph holds dropout or a Bernoulli draw."""
    try:
        text = str(m.inlined_graph)
    except Exception:  # noqa: BLE001 - no graph to read: assume the worst
        return True
    return "dropout" in text or "bernoulli" in text
