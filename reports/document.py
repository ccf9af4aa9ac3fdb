"""The intermediate structure of a report, and its Markdown and HTML renderers.

A report is a list of blocks (:class:`Heading`, :class:`Paragraph`, :class:`Bullets`,
:class:`Table`, :class:`Image`, :class:`Note`, :class:`KeyValues`) whose text is made of
inline :class:`Span` s. Both outputs are rendered from the same blocks, so REPORT.md and
report.html always say the same thing:

* :func:`render_markdown` — GitHub-flavoured Markdown; images by relative path; every
  plain-text span is escaped, so table data can never be read as markup.
* :func:`render_html` — one self-contained page: inline CSS, images as ``data:`` URIs,
  no scripts, fonts or links to anything outside the file; every text is HTML-escaped.
"""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Block",
    "Bullets",
    "Document",
    "Heading",
    "Image",
    "KeyValues",
    "Note",
    "Paragraph",
    "Span",
    "Table",
    "render_html",
    "render_markdown",
]


@dataclass(frozen=True)
class Span:
    """Inline text. ``style`` ∈ {"", "code", "strong", "em", "status", "link"}.

    For ``status`` the text is the verdict status (pass, fail, n/a, missing, …); for
    ``link`` ``target`` is an in-page anchor (``#...``).
    """

    text: str
    style: str = ""
    target: str = ""


Inline = Sequence[Span]


def spans(*parts: str | Span) -> list[Span]:
    """Build an inline list: plain strings become plain spans."""
    return [p if isinstance(p, Span) else Span(str(p)) for p in parts]


@dataclass
class Heading:
    level: int
    text: str
    anchor: str = ""


@dataclass
class Paragraph:
    content: Inline


@dataclass
class Bullets:
    items: list[Inline]


@dataclass
class Table:
    header: list[str]
    rows: list[list[Inline]]
    align: list[str] = field(default_factory=list)  # "l" | "r" | "c" per column
    css_class: str = ""


@dataclass
class Image:
    file: Path  # the PNG on disk (embedded in HTML)
    rel: str  # relative path used by Markdown
    alt: str
    caption: str


@dataclass
class Note:
    content: Inline
    kind: str = "warning"  # "warning" | "info"


@dataclass
class KeyValues:
    pairs: list[tuple[str, Inline]]


Block = Heading | Paragraph | Bullets | Table | Image | Note | KeyValues


@dataclass
class Document:
    title: str
    blocks: list[Block] = field(default_factory=list)

    def add(self, *blocks: Block) -> None:
        self.blocks.extend(blocks)


# --------------------------------------------------------------------------- status

STATUS_SYMBOL = {"pass": "✅", "fail": "❌", "n/a": "➖", "missing": "⚠️"}
STATUS_HTML_SYMBOL = {"pass": "✔", "fail": "✘", "n/a": "–", "missing": "!"}


def status_class(status: str) -> str:
    return {"pass": "pass", "fail": "fail", "n/a": "na", "missing": "missing"}.get(status, "other")


# --------------------------------------------------------------------------- markdown

_MD_SPECIAL = re.compile(r"([\\`*_\[\]<>|#~])")


def md_escape(text: str) -> str:
    """Escape Markdown (and raw-HTML) metacharacters in plain text; newlines → spaces."""
    out = _MD_SPECIAL.sub(r"\\\1", text.replace("\r", " ").replace("\n", " "))
    return out.replace("&", "&amp;")  # no accidental entities such as "&copy;"


def _md_line_start(text: str) -> str:
    """Escape what would start a list or heading underline at the start of a line."""
    out = re.sub(r"^(\d+)\.", r"\1\\.", text)
    return re.sub(r"^([-+=])", r"\\\1", out)


def _md_wrap(text: str, marker: str) -> str:
    """``**text**`` with surrounding spaces kept outside (CommonMark flanking rules)."""
    core = text.strip()
    if not core:
        return md_escape(text)
    lead = text[: len(text) - len(text.lstrip())]
    trail = text[len(text.rstrip()):]
    return f"{lead}{marker}{md_escape(core)}{marker}{trail}"


def md_code(text: str, in_table: bool = False) -> str:
    """A code span whose fence is longer than any backtick run inside it."""
    text = text.replace("\n", " ")
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    if in_table:
        text = text.replace("|", "\\|")
    return f"{fence}{pad}{text}{pad}{fence}"


def _md_inline(content: Iterable[Span], in_table: bool = False) -> str:
    out: list[str] = []
    for s in content:
        if s.style == "code":
            out.append(md_code(s.text, in_table))
        elif s.style == "strong":
            out.append(_md_wrap(s.text, "**"))
        elif s.style == "em":
            out.append(_md_wrap(s.text, "*"))
        elif s.style == "status":
            sym = STATUS_SYMBOL.get(s.text, "•")
            out.append(f"{sym} {md_escape(s.text)}")
        elif s.style == "link":
            out.append(f"[{md_escape(s.text)}]({s.target})")
        else:
            out.append(md_escape(s.text))
    return "".join(out)


def _md_table(header: list[str], rows: list[list[Inline]], align: list[str]) -> list[str]:
    sep = {"l": ":---", "r": "---:", "c": ":---:"}
    aligns = [sep.get(a, "---") for a in (align or ["l"] * len(header))]
    lines = ["| " + " | ".join(md_escape(h) for h in header) + " |",
             "| " + " | ".join(aligns) + " |"]
    for row in rows:
        lines.append("| " + " | ".join(_md_inline(c, in_table=True) or " " for c in row) + " |")
    return lines


def render_markdown(doc: Document) -> str:
    """GitHub-flavoured Markdown for ``doc``."""
    lines: list[str] = [f"# {md_escape(doc.title)}", ""]
    for b in doc.blocks:
        if isinstance(b, Heading):
            if b.anchor:
                lines.append(f'<a id="{html.escape(b.anchor, quote=True)}"></a>')
                lines.append("")
            lines += ["#" * b.level + " " + md_escape(b.text), ""]
        elif isinstance(b, Paragraph):
            lines += [_md_line_start(_md_inline(b.content)), ""]
        elif isinstance(b, Bullets):
            lines += [f"- {_md_line_start(_md_inline(item))}" for item in b.items] + [""]
        elif isinstance(b, Table):
            lines += _md_table(b.header, b.rows, b.align) + [""]
        elif isinstance(b, KeyValues):
            lines += _md_table(["", ""], [[spans(Span(k, "strong")), v] for k, v in b.pairs],
                               ["l", "l"])
            lines.append("")
        elif isinstance(b, Image):
            lines += [f"![{md_escape(b.alt)}]({b.rel})", "", _md_wrap(b.caption, "*"), ""]
        elif isinstance(b, Note):
            label = "Warning" if b.kind == "warning" else "Note"
            lines += [f"> **{label}:** {_md_inline(b.content)}", ""]
        else:  # pragma: no cover - exhaustive over Block
            raise TypeError(f"unknown block {type(b).__name__}")
    return "\n".join(lines).rstrip() + "\n"


# --------------------------------------------------------------------------- html

CSS = """
:root { --fg:#1d2433; --muted:#5b6475; --line:#d9dee7; --bg:#ffffff; --soft:#f5f7fa;
  --pass:#1a7f37; --pass-bg:#dafbe1; --fail:#b3261e; --fail-bg:#ffe1de; --na:#59636e;
  --na-bg:#eef1f4; --warn:#8a5a00; --warn-bg:#fff4d6; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--fg);
  font: 15px/1.55 -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
main { max-width: 1180px; margin: 0 auto; padding: 28px 32px 64px; }
h1 { font-size: 1.9em; margin: 0 0 .6em; }
h2 { font-size: 1.45em; margin: 2.2em 0 .5em; padding-top: .6em;
  border-top: 1px solid var(--line); }
h3 { font-size: 1.1em; margin: 1.6em 0 .4em; }
p, ul { margin: .5em 0 .9em; }
code { font: 0.9em/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace;
  background: var(--soft); padding: .1em .35em; border-radius: 4px; }
table { border-collapse: collapse; margin: .6em 0 1.2em; font-size: .92em; width: auto;
  max-width: 100%; display: block; overflow-x: auto; }
th, td { border: 1px solid var(--line); padding: .32em .6em; vertical-align: top; }
th { background: var(--soft); text-align: left; font-weight: 600; }
td.r, th.r { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.c, th.c { text-align: center; }
table.kv td:first-child { white-space: nowrap; }
tr.row-fail td { background: #fff7f6; }
.status { display: inline-block; min-width: 4.2em; padding: .05em .5em; border-radius: 999px;
  font-weight: 600; font-size: .88em; white-space: nowrap; }
.status.pass { color: var(--pass); background: var(--pass-bg); }
.status.fail { color: var(--fail); background: var(--fail-bg); }
.status.na { color: var(--na); background: var(--na-bg); }
.status.missing, .status.other { color: var(--warn); background: var(--warn-bg); }
figure { margin: 1em 0 1.6em; }
figure img { max-width: 100%; height: auto; border: 1px solid var(--line); border-radius: 4px; }
figcaption { color: var(--muted); font-size: .9em; margin-top: .3em; }
.note { border-left: 4px solid #d4a72c; background: var(--warn-bg); padding: .6em .9em;
  margin: .8em 0 1.2em; border-radius: 0 4px 4px 0; }
.note.info { border-left-color: #0969da; background: #ddf4ff; }
nav.toc { background: var(--soft); border: 1px solid var(--line); border-radius: 6px;
  padding: .4em 1.2em; margin: 1em 0 1.4em; }
nav.toc ul { margin: .3em 0; padding-left: 1.2em; }
a { color: #0969da; text-decoration: none; } a:hover { text-decoration: underline; }
"""


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _html_inline(content: Iterable[Span]) -> str:
    out: list[str] = []
    for s in content:
        t = _esc(s.text)
        if s.style == "code":
            out.append(f"<code>{t}</code>")
        elif s.style == "strong":
            out.append(f"<strong>{t}</strong>")
        elif s.style == "em":
            out.append(f"<em>{t}</em>")
        elif s.style == "status":
            cls = status_class(s.text)
            sym = STATUS_HTML_SYMBOL.get(s.text, "•")
            out.append(f'<span class="status {cls}">{sym} {t}</span>')
        elif s.style == "link":
            target = s.target if s.target.startswith("#") else "#"
            out.append(f'<a href="{_esc(target)}">{t}</a>')
        else:
            out.append(t.replace("\n", "<br>"))
    return "".join(out)


def _html_table(b: Table) -> str:
    align = b.align or ["l"] * len(b.header)
    cls = f' class="{_esc(b.css_class)}"' if b.css_class else ""
    head = "".join(f'<th class="{a}">{_esc(h)}</th>' for h, a in zip(b.header, align,
                                                                  strict=True))
    body = []
    for row in b.rows:
        fail = any(s.style == "status" and s.text == "fail" for c in row for s in c)
        tr = ' class="row-fail"' if fail else ""
        cells = "".join(f'<td class="{a}">{_html_inline(c)}</td>'
                        for c, a in zip(row, align, strict=True))
        body.append(f"<tr{tr}>{cells}</tr>")
    return (f"<table{cls}><thead><tr>{head}</tr></thead>"
            f"<tbody>{''.join(body)}</tbody></table>")


def data_uri(path: Path) -> str:
    """``data:image/png;base64,…`` for a PNG (or SVG) file."""
    mime = "image/svg+xml" if path.suffix.lower() == ".svg" else "image/png"
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"


def render_html(doc: Document, toc: bool = True) -> str:
    """One self-contained HTML page for ``doc`` (inline CSS, images as data URIs)."""
    parts: list[str] = []
    headings = [b for b in doc.blocks if isinstance(b, Heading) and b.level == 2 and b.anchor]
    toc_done = False
    for b in doc.blocks:
        if isinstance(b, Heading):
            if toc and not toc_done and b.level == 2 and headings:
                items = "".join(f'<li><a href="#{_esc(h.anchor)}">{_esc(h.text)}</a></li>'
                                for h in headings)
                parts.append(f'<nav class="toc"><strong>Contents</strong><ul>{items}</ul></nav>')
                toc_done = True
            anchor = f' id="{_esc(b.anchor)}"' if b.anchor else ""
            level = min(max(b.level, 1), 6)
            parts.append(f"<h{level}{anchor}>{_esc(b.text)}</h{level}>")
        elif isinstance(b, Paragraph):
            parts.append(f"<p>{_html_inline(b.content)}</p>")
        elif isinstance(b, Bullets):
            items = "".join(f"<li>{_html_inline(i)}</li>" for i in b.items)
            parts.append(f"<ul>{items}</ul>")
        elif isinstance(b, Table):
            parts.append(_html_table(b))
        elif isinstance(b, KeyValues):
            rows = "".join(f"<tr><td><strong>{_esc(k)}</strong></td><td>{_html_inline(v)}</td>"
                           "</tr>" for k, v in b.pairs)
            parts.append(f'<table class="kv"><tbody>{rows}</tbody></table>')
        elif isinstance(b, Image):
            parts.append(
                f'<figure><img src="{data_uri(b.file)}" alt="{_esc(b.alt)}">'
                f"<figcaption>{_esc(b.caption)}</figcaption></figure>"
            )
        elif isinstance(b, Note):
            kind = "info" if b.kind == "info" else "warning"
            label = "Note" if kind == "info" else "Warning"
            parts.append(f'<div class="note {kind}"><strong>{label}:</strong> '
                         f"{_html_inline(b.content)}</div>")
        else:  # pragma: no cover
            raise TypeError(f"unknown block {type(b).__name__}")
    body = "\n".join(parts)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{_esc(doc.title)}</title>\n<style>{CSS}</style>\n</head>\n<body>\n<main>\n"
        f"<h1>{_esc(doc.title)}</h1>\n{body}\n</main>\n</body>\n</html>\n"
    )
