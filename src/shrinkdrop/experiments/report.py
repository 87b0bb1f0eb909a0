"""The report: sections written by each experiment, assembled into Markdown and HTML.

An experiment writes its results into its own folder and, beside them, ``section.json``: a
title, the command that reproduces it, the seconds it took, and a list of blocks (paragraphs,
tables, figures, notes, preformatted text). :func:`build_report` turns a list of such folders into
``index.md`` and a self-contained ``index.html`` (figures are linked relative to the report).

Every write goes through a temporary file and :func:`os.replace`, so an interrupted run never
leaves a half-written file behind.
"""

from __future__ import annotations

import html
import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from .runner import atomic_write_text

__all__ = ["Section", "atomic_write_text", "write_section", "read_section", "build_report"]


@dataclass
class Section:
    """One section of the report.

    ``blocks`` is a list of dicts, each with a ``kind``:
    ``{"kind": "p", "text": ...}``, ``{"kind": "note", "text": ...}`` (a highlighted remark, e.g.
    where the paper is loose), ``{"kind": "table", "header": [...], "rows": [[...], ...]}``,
    ``{"kind": "figure", "path": "relative/file.png", "caption": ...}``,
    ``{"kind": "pre", "text": ...}``.
    """

    title: str
    command: str
    seconds: float
    blocks: list[dict] = field(default_factory=list)

    def p(self, text: str) -> Section:
        self.blocks.append({"kind": "p", "text": text})
        return self

    def note(self, text: str) -> Section:
        self.blocks.append({"kind": "note", "text": text})
        return self

    def table(self, header: list[str], rows: list[list]) -> Section:
        self.blocks.append({"kind": "table", "header": list(header),
                            "rows": [[_fmt(v) for v in r] for r in rows]})
        return self

    def figure(self, path: str, caption: str) -> Section:
        self.blocks.append({"kind": "figure", "path": str(path), "caption": caption})
        return self

    def pre(self, text: str) -> Section:
        self.blocks.append({"kind": "pre", "text": text})
        return self


def _fmt(v) -> str:
    if isinstance(v, float):
        if v != v:
            return "nan"
        if v in (float("inf"), float("-inf")):
            return "inf" if v > 0 else "-inf"
        if v != 0 and (abs(v) >= 1e4 or abs(v) < 1e-3):
            return f"{v:.3e}"
        return f"{v:.4g}"
    return str(v)


def write_section(out_dir: str | os.PathLike, section: Section) -> Path:
    path = Path(out_dir) / "section.json"
    atomic_write_text(path, json.dumps(asdict(section), indent=1))
    return path


def read_section(folder: str | os.PathLike) -> Section:
    data = json.loads((Path(folder) / "section.json").read_text(encoding="utf-8"))
    return Section(**data)


def _md_blocks(section: Section, prefix: str) -> list[str]:
    out = [f"## {section.title}", "",
           f"Reproduce: `{section.command}` (took {section.seconds:.1f} s)", ""]
    for b in section.blocks:
        k = b["kind"]
        if k == "p":
            out += [b["text"], ""]
        elif k == "note":
            out += [f"> **Note.** {b['text']}", ""]
        elif k == "pre":
            out += ["```", b["text"], "```", ""]
        elif k == "table":
            out.append("| " + " | ".join(b["header"]) + " |")
            out.append("|" + "---|" * len(b["header"]))
            out += ["| " + " | ".join(r) + " |" for r in b["rows"]]
            out.append("")
        elif k == "figure":
            out += [f"![{b['caption']}]({prefix}{b['path']})", "", f"*{b['caption']}*", ""]
    return out


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;
margin:2em auto;padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #444}h2{margin-top:2.2em;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:1em 0;font-size:.92em}
th,td{border:1px solid #bbb;padding:.3em .6em;text-align:right}th{background:#f0f0f0}
td:first-child,th:first-child{text-align:left}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #ddd}
figcaption{font-style:italic;color:#555}
.note{background:#fff6dd;border-left:4px solid #e0a800;padding:.5em 1em;margin:1em 0}
.cmd{font-family:monospace;background:#f4f4f4;padding:.2em .4em}
code{font-family:monospace;background:#f4f4f4;padding:0 .2em}
pre{background:#f4f4f4;padding:.8em;overflow-x:auto}
nav ul{columns:2}
"""


_BOLD = re.compile(r"\*\*(.+?)\*\*")
_CODE = re.compile(r"`([^`]+)`")


def _inline(text: str) -> str:
    """Escape ``text`` for HTML and render the Markdown inline marks the sections use:
    ``**bold**`` and ```code```."""
    out = html.escape(text)
    out = _CODE.sub(r"<code>\1</code>", out)
    return _BOLD.sub(r"<strong>\1</strong>", out)


def _html_section(section: Section, prefix: str, anchor: str) -> str:
    e = html.escape
    parts = [f'<section id="{anchor}"><h2>{e(section.title)}</h2>',
             f'<p>Reproduce: <span class="cmd">{e(section.command)}</span> '
             f"(took {section.seconds:.1f} s)</p>"]
    for b in section.blocks:
        k = b["kind"]
        if k == "p":
            parts.append(f"<p>{_inline(b['text'])}</p>")
        elif k == "note":
            parts.append(f'<div class="note"><b>Note.</b> {_inline(b["text"])}</div>')
        elif k == "pre":
            parts.append(f"<pre>{e(b['text'])}</pre>")
        elif k == "table":
            head = "".join(f"<th>{e(h)}</th>" for h in b["header"])
            rows = "".join("<tr>" + "".join(f"<td>{e(c)}</td>" for c in r) + "</tr>"
                           for r in b["rows"])
            parts.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
        elif k == "figure":
            src = e(prefix + b["path"])
            parts.append(f'<figure><img src="{src}" alt="{e(b["caption"])}">'
                         f"<figcaption>{e(b['caption'])}</figcaption></figure>")
    parts.append("</section>")
    return "\n".join(parts)


def build_report(report_dir: str | os.PathLike, folders: list[str | os.PathLike],
                 title: str = "shrinkdrop report", intro: str = "") -> tuple[Path, Path]:
    """Assemble ``index.md`` and ``index.html`` in ``report_dir`` from section folders.

    Folders without ``section.json`` are skipped with a line saying so (an experiment that failed
    must not take the whole report down; the line makes the gap visible).
    """
    report_dir = Path(report_dir)
    md = [f"# {title}", ""]
    if intro:
        md += [intro, ""]
    body, toc, missing = [], [], []
    for i, folder in enumerate(folders):
        folder = Path(folder)
        if not (folder / "section.json").exists():
            missing.append(folder.name)
            continue
        sec = read_section(folder)
        prefix = os.path.relpath(folder, report_dir).replace(os.sep, "/") + "/"
        anchor = f"s{i}"
        toc.append(f'<li><a href="#{anchor}">{html.escape(sec.title)}</a></li>')
        md += _md_blocks(sec, prefix)
        body.append(_html_section(sec, prefix, anchor))
    if missing:
        line = "Sections that did not produce results: " + ", ".join(missing)
        md += [f"> {line}", ""]
        body.append(f'<div class="note">{html.escape(line)}</div>')
    md_path = report_dir / "index.md"
    html_path = report_dir / "index.html"
    atomic_write_text(md_path, "\n".join(md))
    page = (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
        f"<h1>{html.escape(title)}</h1>"
        + (f"<p>{html.escape(intro)}</p>" if intro else "")
        + f"<nav><ul>{''.join(toc)}</ul></nav>"
        + "\n".join(body)
        + "</body></html>\n"
    )
    atomic_write_text(html_path, page)
    return md_path, html_path
