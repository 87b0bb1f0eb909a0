"""Check every Sphinx-role reference in shrinkdrop's public docstrings (``make docs`` runs it).

A reference is ``:role:`target``` with role one of func, class, mod, meth, attr, data, exc, obj,
const (``:py:func:`` too; ``title <target>``, a leading ``~`` or ``!`` and a trailing ``()``
are allowed). The public docstrings are those the API reference shows: every module reachable
from ``shrinkdrop.__all__`` through the ``__all__`` of public modules, every object those list,
and the public methods, properties and attributes of the classes among them.

A target resolves when it names an object (by import and attribute look-up) relative to, in
order: the class of the docstring, the module that defines the object, the public module that
exports it, the package ``shrinkdrop``; or absolutely (``torch.Generator``, ``numpy.ndarray``,
any importable package) or as a Python builtin (``ValueError``). An attribute set on instances
counts when the class annotates it or its ``__init__`` assigns ``self.<name>``.

Usage: ``python tools/check_api_refs.py [--all]`` (``--all``: every module of the package,
private ones and the experiments included). Exits 1 listing ``file: object: :role:`target```
for each broken reference.
"""

from __future__ import annotations

import argparse
import builtins
import importlib
import inspect
import pkgutil
import re
import sys
import types
from collections.abc import Iterator
from dataclasses import dataclass

ROLE = re.compile(
    r":(?:py:)?(?P<role>func|class|mod|meth|attr|data|exc|obj|const):`(?P<body>[^`]+)`"
)
PACKAGE = "shrinkdrop"


@dataclass(frozen=True)
class Doc:
    """One docstring and where to resolve its references."""

    file: str
    qualname: str  # what the report names: module.Class.method
    text: str
    contexts: tuple[object, ...]  # objects to look names up in, innermost first


def target_of(body: str) -> str:
    """The dotted target of a role's body: ``title <a.b>`` -> ``a.b``; ``~a.b()`` -> ``a.b``."""
    m = re.search(r"<([^>]+)>\s*$", body)
    t = (m.group(1) if m else body).strip()
    return t.lstrip("~!").removesuffix("()")


def _import_attr(dotted: str) -> tuple[bool, object]:
    """Resolve ``a.b.c`` absolutely: the longest importable module prefix, then attributes."""
    parts = dotted.split(".")
    for i in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:i]))
        except ImportError:
            continue
        except Exception:  # an importable name whose import fails otherwise
            return False, None
        for rest in parts[i:]:
            found, obj = _getattr(obj, rest)
            if not found:
                return False, None
        return True, obj
    return False, None


def _instance_attrs(cls: type) -> set[str]:
    """Names annotated on ``cls`` (and its bases) or assigned as ``self.<name>`` in methods."""
    names: set[str] = set()
    for klass in cls.__mro__:
        names |= set(getattr(klass, "__annotations__", {}))
        try:
            src = inspect.getsource(klass)
        except (OSError, TypeError):
            continue
        names |= set(re.findall(r"\bself\.([A-Za-z_]\w*)\s*(?::[^=\n]*)?=(?!=)", src))
    return names


def _getattr(obj: object, name: str) -> tuple[bool, object]:
    try:
        return True, getattr(obj, name)
    except AttributeError:
        if isinstance(obj, type) and name in _instance_attrs(obj):
            return True, None
        if isinstance(obj, types.ModuleType):  # a submodule not imported yet
            try:
                return True, importlib.import_module(f"{obj.__name__}.{name}")
            except ImportError:
                pass
        return False, None
    except Exception:
        return False, None


def _lookup(context: object, dotted: str) -> bool:
    obj = context
    for part in dotted.split("."):
        found, obj = _getattr(obj, part)
        if not found:
            return False
    return True


def resolves(target: str, contexts: tuple[object, ...]) -> bool:
    """Whether ``target`` names an object (see the module docstring for the search order)."""
    if not target or not re.fullmatch(r"[A-Za-z_][\w.]*", target.lstrip(".")):
        return False
    if target.startswith("."):  # relative to the innermost module
        mod = next((c for c in contexts if isinstance(c, types.ModuleType)), None)
        if mod is None:
            return False
        base = mod.__name__ if hasattr(mod, "__path__") else mod.__name__.rpartition(".")[0]
        rel = target[1:]
        while rel.startswith("."):
            rel, base = rel[1:], base.rpartition(".")[0]
        return _import_attr(f"{base}.{rel}")[0]
    if any(_lookup(c, target) for c in contexts):
        return True
    if "." not in target and hasattr(builtins, target):
        return True
    return _import_attr(target)[0]


# --------------------------------------------------------------------------- public docstrings

def public_modules() -> list[types.ModuleType]:
    """``shrinkdrop`` and every module reachable through the ``__all__`` of public modules."""
    root = importlib.import_module(PACKAGE)
    seen: dict[str, types.ModuleType] = {}
    todo = [root]
    while todo:
        mod = todo.pop()
        if mod.__name__ in seen:
            continue
        seen[mod.__name__] = mod
        for name in getattr(mod, "__all__", ()):
            obj = getattr(mod, name)
            if isinstance(obj, types.ModuleType) and obj.__name__.startswith(PACKAGE):
                todo.append(obj)
    return list(seen.values())


def all_modules() -> list[types.ModuleType]:
    """Every module of the package (``--all``), ``__main__`` excepted."""
    root = importlib.import_module(PACKAGE)
    mods = [root]
    for info in pkgutil.walk_packages(root.__path__, prefix=f"{PACKAGE}."):
        if not info.name.endswith("__main__"):
            mods.append(importlib.import_module(info.name))
    return mods


def _file_of(obj: object) -> str:
    try:
        return inspect.getsourcefile(obj) or "?"
    except TypeError:
        return "?"


def _members(cls: type) -> Iterator[tuple[str, object]]:
    """Public members of ``cls`` defined in the package (methods, properties, nested classes)."""
    for klass in cls.__mro__:
        if not klass.__module__.startswith(PACKAGE):
            continue
        for name, member in list(vars(klass).items()):
            if name.startswith("_") and name not in ("__init__", "__call__"):
                continue
            if isinstance(member, (staticmethod, classmethod)):
                member = member.__func__
            if isinstance(member, property):
                member = member.fget
            if inspect.isfunction(member) or inspect.isclass(member):
                yield f"{klass.__qualname__}.{name}", member


def docstrings(modules: list[types.ModuleType], every_name: bool = False) -> Iterator[Doc]:
    """The docstrings to check: each module's, its public objects' and their members'.

    A module's public objects are those of its ``__all__`` (every top-level name defined in it
    with ``every_name``)."""
    root = importlib.import_module(PACKAGE)
    done: set[int] = set()
    for mod in modules:
        yield Doc(_file_of(mod), mod.__name__, inspect.getdoc(mod) or "", (mod, root))
        names = list(getattr(mod, "__all__", ()))
        if every_name:
            names += [n for n, o in vars(mod).items()
                      if getattr(o, "__module__", None) == mod.__name__]
        for name in names:
            obj = getattr(mod, name, None)
            if not (inspect.isclass(obj) or inspect.isfunction(obj)) or id(obj) in done:
                continue
            if not getattr(obj, "__module__", "").startswith(PACKAGE):
                continue
            done.add(id(obj))
            home = sys.modules.get(obj.__module__, mod)
            ctx = (home, mod, root)
            if inspect.isclass(obj):
                yield Doc(_file_of(obj), f"{obj.__module__}.{obj.__qualname__}",
                          inspect.getdoc(obj) or "", (obj, *ctx))
                for qual, member in _members(obj):
                    doc = member.__doc__ or ""
                    if doc and id(member) not in done:
                        done.add(id(member))
                        yield Doc(_file_of(obj), f"{obj.__module__}.{qual}",
                                  inspect.cleandoc(doc), (obj, *ctx))
            else:
                yield Doc(_file_of(obj), f"{obj.__module__}.{obj.__qualname__}",
                          inspect.getdoc(obj) or "", ctx)


def broken_references(docs: Iterator[Doc]) -> tuple[int, list[tuple[str, str, str]]]:
    """(references checked, [(file, object, reference)] of those that do not resolve)."""
    count, bad = 0, []
    for d in docs:
        for m in ROLE.finditer(d.text):
            count += 1
            if not resolves(target_of(m.group("body")), d.contexts):
                bad.append((d.file, d.qualname, m.group(0)))
    return count, bad


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--all", action="store_true",
                   help="every module of the package, not just the public API")
    args = p.parse_args(argv)
    mods = all_modules() if args.all else public_modules()
    count, bad = broken_references(docstrings(mods, every_name=args.all))
    for file, obj, ref in bad:
        print(f"{file}: {obj}: {ref}")
    where = "all modules" if args.all else "public docstrings"
    print(f"{count} references checked in {len(mods)} modules ({where}); {len(bad)} broken",
          file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
