"""Build the HTML API reference of shrinkdrop with pdoc (``make docs``; output ``build/api``).

The docstrings are Google style (``Args:``, ``Returns:``, ``Shape:``, ``Example:``) with reST
markup and Sphinx roles (:func:`x`, :class:`torch.Generator`, :mod:`shrinkdrop.noise`). pdoc
reads the Google sections and the reST; the roles it does not know are turned into code spans
(``:func:`~a.b``` -> `` `a.b` ``) before it renders, so pdoc links them like any identifier.
The documented modules are those of ``shrinkdrop.__all__`` and, below them, the modules the
public ``__all__`` lists (pdoc's rule); :mod:`check_api_refs` checks the same docstrings.

Usage: ``python tools/build_api_docs.py [--out build/api]``. pdoc's warnings are printed; any
warning fails the build (exit 1) unless ``--allow-warnings``.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from check_api_refs import ROLE, target_of


def roles_to_code(docstring: str) -> str:
    """``:role:`target``` -> `` `target` `` (``~``, ``!`` and a ``title <...>`` dropped)."""
    return ROLE.sub(lambda m: f"`{target_of(m.group('body'))}`", docstring)


def build(out: Path) -> list[str]:
    """Render the reference into ``out``; return pdoc's warnings."""
    import pdoc
    import pdoc.docstrings
    import pdoc.render

    convert = pdoc.docstrings.convert

    def convert_with_roles(docstring: str, docformat: str, source_file: Path | None) -> str:
        return convert(roles_to_code(docstring), docformat, source_file)

    pdoc.docstrings.convert = convert_with_roles
    pdoc.render.configure(docformat="google", show_source=True, search=True,
                          footer_text="shrinkdrop API reference (tools/build_api_docs.py)")
    out.mkdir(parents=True, exist_ok=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        pdoc.pdoc("shrinkdrop", output_directory=out)
    return [f"{w.category.__name__}: {w.message}" for w in caught]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("build/api"))
    p.add_argument("--allow-warnings", action="store_true")
    args = p.parse_args(argv)
    found = build(args.out)
    for w in found:
        print(w, file=sys.stderr)
    pages = sorted(args.out.rglob("*.html"))
    print(f"API reference: {len(pages)} pages in {args.out} ({len(found)} warnings)",
          file=sys.stderr)
    return 1 if found and not args.allow_warnings else 0


if __name__ == "__main__":
    sys.exit(main())
