"""Where each equation tag of a unit is implemented, on every path (one source for
docs/reading-map.md and for ``minirnn read``).

For a unit (LSTM, GRU, Nested LSTM, or any unit registered later) and each tag
its derivation page defines ([LSTM-F1] ... [LSTM-B9]), this finds the code lines
whose comment cites the tag explicitly, inside a function, on each path.  A path
is a list of folders or files (``PATHS``), scanned at run time, so kernel files
can be added or split within a folder without touching this module; a fourth path
is one more entry.  A registered unit's reference path also holds the file of its own
``backward``, wherever that lives (the Elman example of docs/units.md).

A range such as ``[LSTM-B1]..[LSTM-B6]`` at a call site is a summary, not an
implementation, and does not count; nor does a tag in a docstring or a module
header.
"""
from __future__ import annotations

import ast
import inspect
import io
import re
import tokenize
from pathlib import Path
from ..units import REGISTRY

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs"
#: path name -> the folders or files (relative to the repository) that implement it.  The fast
#: path's one time loop per unit (kernels/units.py) runs on both devices, so it belongs to both.
PATHS = {"reference": ("minirnn/units",), "cpu": ("kernels/units.py", "kernels/cpu/gates.py"),
         "cuda": ("kernels/units.py", "kernels/cuda/gates.cuh")}
PATH_LABELS = {"reference": "reference", "cpu": "CPU kernels", "cuda": "CUDA"}
SUFFIXES = {".py", ".cu", ".cuh"}
#: The units of docs/reading-map.md, in the reading order of docs/index.md.
MAP_UNITS = ("lstm", "gru", "nlstm")
TAG = re.compile(r"\[([A-Z]{2,6}-[FB]\d{1,2}[a-z]?)\]")
RANGE = re.compile(r"\[[A-Z]{2,6}-[FB]\d{1,2}[a-z]?\]\s*\.\.\s*\[[A-Z]{2,6}-[FB]\d{1,2}[a-z]?\]")
C_FUNCTION = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
C_NOT_FUNCTIONS = {"if", "for", "while", "switch", "return", "sizeof", "defined"}


def prefix_of(unit: str) -> str:
    """The tag prefix of a unit: its name in capitals ([LSTM-..], [NLSTM-..], [ELMAN-..])."""
    return unit.upper()


def tag_key(tag: str):
    """Derivation order: forward tags before backward ones, then by number."""
    prefix, rest = tag.split("-")
    return prefix, rest[0] != "F", int(re.sub(r"\D", "", rest)), rest


def _prefixed(text: str, prefix: str) -> set[str]:
    return {t for t in TAG.findall(text) if t.split("-")[0] == prefix}


def derivation_page(unit: str) -> Path | None:
    """docs/<unit>.md, else the docs page that defines the most of the unit's tags (None: none does)."""
    page = DOCS / f"{unit}.md"
    if page.is_file():
        return page
    counts = [(len(_prefixed(p.read_text(encoding="utf-8"), prefix_of(unit))), p.name, p)
              for p in sorted(DOCS.glob("*.md"))]
    best = max(counts, default=(0, "", None))
    return best[2] if best[0] else None


def page_tags(unit: str) -> list[str]:
    """Every tag of the unit defined on its derivation page, in derivation order (F1.., B1..)."""
    page = derivation_page(unit)
    if page is None:
        return []
    return sorted(_prefixed(page.read_text(encoding="utf-8"), prefix_of(unit)), key=tag_key)


def explicit_tags(comment: str) -> list[str]:
    return TAG.findall(RANGE.sub(" ", comment))


def path_files(unit: str, path: str) -> list[Path]:
    """The files of one path, found at run time under its folders (plus, for the reference path,
    the file of a registered unit's reference class, which may live elsewhere)."""
    roots = [REPO / root for root in PATHS[path]]
    files = {f for root in roots for f in ([root] if root.is_file() else root.rglob("*"))
             if f.suffix in SUFFIXES and f.is_file()}
    if path == "reference":
        spec = REGISTRY.get(unit)
        if spec is not None:
            # the file of its hand-derived backward (found even for a class loaded from a file path)
            files.add(Path(inspect.getsourcefile(spec.reference.backward)).resolve())
    return sorted(files)


def relative(file: Path) -> str:
    """A file's path relative to the repository (absolute when it lies outside)."""
    try:
        return file.relative_to(REPO).as_posix()
    except ValueError:
        return file.as_posix()


def _python_sites(path: Path):
    """(line, function, code, comment) for every comment inside a function of a Python file."""
    source = path.read_text(encoding="utf-8")
    spans = []

    def visit(node, prefix=""):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                name = prefix + child.name
                spans.append((child.lineno, child.end_lineno, name))
                visit(child, name + ".")
            elif isinstance(child, ast.ClassDef):
                visit(child, prefix + child.name + ".")
            else:
                visit(child, prefix)

    visit(ast.parse(source))
    lines = source.splitlines()
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type != tokenize.COMMENT:
            continue
        row = tok.start[0]
        inside = [s for s in spans if s[0] <= row <= s[1]]
        if not inside:
            continue
        function = max(inside, key=lambda s: s[0])[2]
        code = lines[row - 1][:tok.start[1]].strip()
        yield row, function, code, tok.string


def _c_sites(path: Path):
    """(line, function, code, comment) for comments in C/CUDA functions and in the comment
    block directly above a function (attributed to that function)."""
    lines = path.read_text(encoding="utf-8").splitlines()
    depth, function, pending, continued = 0, None, [], False
    for row, line in enumerate(lines, 1):
        code, _, comment = line.partition("//")
        stripped = code.strip()
        if continued or stripped.startswith("#"):
            continued = line.rstrip().endswith("\\")
            pending = []
            continue
        if depth == 0:
            if not stripped and not comment:
                pending = []                       # a blank line ends a comment block
                continue
            if comment and not stripped:
                pending.append((row, comment))
                continue
            names = [n for n in C_FUNCTION.findall(stripped) if n not in C_NOT_FUNCTIONS]
            if names:
                function = names[0]
                for prow, pcomment in pending:
                    yield prow, function, "", pcomment
                pending = []
        if depth > 0 and comment and function:
            yield row, function, stripped, comment
        depth += code.count("{") - code.count("}")
        if depth == 0 and "}" in code:
            function = None


def citations(unit: str, path: str) -> dict[str, list[tuple[str, int, str, str]]]:
    """tag -> [(file, line, function, code)] for the unit's tags cited explicitly on a path."""
    prefix = prefix_of(unit)
    found: dict[str, list] = {}
    for file in path_files(unit, path):
        sites = _python_sites(file) if file.suffix == ".py" else _c_sites(file)
        rel = relative(file)
        for row, function, code, comment in sites:
            for tag in explicit_tags(comment):
                if tag.split("-")[0] == prefix:
                    found.setdefault(tag, []).append((rel, row, function, code))
    return found
