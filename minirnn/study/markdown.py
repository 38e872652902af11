"""The small part of Markdown that docs/ uses, as HTML for ``minirnn read``.

Headings, paragraphs, bullet and numbered lists, tables, fenced and indented
code blocks (the equation blocks), inline code, bold, italics and links.  Everything
from the page is escaped before any markup is added, so a page can never inject
HTML or script.  Equation tags of one prefix (``[LSTM-B7]``) become clickable
elements carrying ``data-tag``; a line of a code block that holds such a tag is
wrapped in an element of class ``eq`` so the page can highlight the equation.
Links to other docs pages are shown, not followed (the reader serves one page).
"""
from __future__ import annotations

import html
import re

from .tag_index import TAG

_HEADING = re.compile(r"^(#{1,6})\s+(.*)$")
_LIST = re.compile(r"^(\s*)(?:[-*]|\d+\.)\s+(.*)$")
_CODE = re.compile(r"`([^`]+)`")
_LINK = re.compile(r"\[([^\]]+)\]\(([^()\s]+)\)")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC = re.compile(r"(?<![\w*])\*(?![\s*])([^*]+?)(?<!\s)\*(?![\w*])")


def _tags(escaped: str, prefix: str) -> str:
    def one(m):
        tag = m.group(1)
        if tag.split("-")[0] != prefix:
            return m.group(0)
        return f'<a class="tag" data-tag="{tag}" href="#{tag}">[{tag}]</a>'
    return TAG.sub(one, escaped)


def _link(m) -> str:
    text, url = m.group(1), m.group(2)
    if url.startswith(("https://", "http://")):
        return f'<a href="{url}" rel="noreferrer">{text}</a>'
    return f'<span class="doc-link" title="docs/{url}">{text}</span>'


def inline(text: str, prefix: str) -> str:
    """One line of prose: escaped, with inline code, links, bold, italics and the unit's tags."""
    codes = []                  # code spans are set aside first, so that bold may wrap one

    def keep(m):
        codes.append(f"<code>{_tags(html.escape(m.group(1), quote=True), prefix)}</code>")
        return f"\0{len(codes) - 1}\0"
    part = html.escape(_CODE.sub(keep, text.replace("\0", "")), quote=True)
    # a tag followed by a link target ("[LSTM-F1](lstm.md)") is a tag, not a link
    part = _LINK.sub(lambda m: f"[{m.group(1)}]" if TAG.fullmatch(f"[{m.group(1)}]") else _link(m), part)
    part = _tags(_ITALIC.sub(r"<em>\1</em>", _BOLD.sub(r"<strong>\1</strong>", part)), prefix)
    return re.sub("\0(\\d+)\0", lambda m: codes[int(m.group(1))], part)


def _code_block(lines: list[str], prefix: str) -> str:
    rows = []
    for line in lines:
        escaped = _tags(html.escape(line, quote=True), prefix)
        tags = [t for t in TAG.findall(line) if t.split("-")[0] == prefix]
        rows.append(f'<span class="eq" data-tags="{" ".join(tags)}">{escaped}</span>' if tags else escaped)
    return "<pre><code>" + "\n".join(rows) + "</code></pre>"


def _cells(row: str) -> list[str]:
    row = row.strip()
    row = row[1:] if row.startswith("|") else row
    row = row[:-1] if row.endswith("|") and not row.endswith("\\|") else row
    return [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", row)]


def _table(lines: list[str], prefix: str) -> str:
    head, body = _cells(lines[0]), [_cells(r) for r in lines[2:]]
    out = ["<table><thead><tr>" + "".join(f"<th>{inline(c, prefix)}</th>" for c in head) + "</tr></thead><tbody>"]
    out += ["<tr>" + "".join(f"<td>{inline(c, prefix)}</td>" for c in r) + "</tr>" for r in body]
    return "".join(out) + "</tbody></table>"


def slug(title: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def render(text: str, prefix: str) -> str:
    """A docs page (Markdown) as an HTML fragment; tags with ``prefix`` are clickable."""
    lines = text.splitlines()
    out, i = [], 0
    while i < len(lines):
        line = lines[i]
        if not line.strip():
            i += 1
        elif line.startswith("```"):
            j = i + 1
            while j < len(lines) and not lines[j].startswith("```"):
                j += 1
            out.append(_code_block(lines[i + 1:j], prefix))
            i = j + 1
        elif line.startswith("    "):
            j = i
            while j < len(lines) and (lines[j].startswith("    ") or not lines[j].strip()):
                j += 1
            block = [x[4:] for x in lines[i:j]]
            while block and not block[-1].strip():
                block.pop()
            out.append(_code_block(block, prefix))
            i = j
        elif (m := _HEADING.match(line)):
            level, title = len(m.group(1)), m.group(2).strip()
            out.append(f'<h{level} id="{slug(title)}">{inline(title, prefix)}</h{level}>')
            i += 1
        elif line.startswith("|") and i + 1 < len(lines) and re.match(r"^\|[\s:|-]+\|?$", lines[i + 1]):
            j = i + 2
            while j < len(lines) and lines[j].startswith("|"):
                j += 1
            out.append(_table(lines[i:j], prefix))
            i = j
        elif _LIST.match(line):
            ordered = line.lstrip()[0].isdigit()
            items, j = [], i
            while j < len(lines) and lines[j].strip():
                m = _LIST.match(lines[j])
                if m and len(m.group(1)) == 0:
                    items.append(m.group(2))
                else:
                    items[-1] += " " + lines[j].strip()          # an item's continuation line
                j += 1
            tag = "ol" if ordered else "ul"
            out.append(f"<{tag}>" + "".join(f"<li>{inline(x, prefix)}</li>" for x in items) + f"</{tag}>")
            i = j
        else:
            j = i + 1                   # a paragraph: this line, and the next ones until a blank or a block
            while (j < len(lines) and lines[j].strip() and not lines[j].startswith(("```", "|", "#"))
                   and not _LIST.match(lines[j])):
                j += 1
            out.append("<p>" + inline(" ".join(x.strip() for x in lines[i:j]), prefix) + "</p>")
            i = j
    return "\n".join(out)
