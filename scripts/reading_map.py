"""The reading map: where each equation tag of a unit is implemented on every path.

For each unit (GRU, LSTM, Nested LSTM) and each tag its page derives
([GRU-F1] ... [GRU-B13]), this finds the code lines whose comment cites the tag
explicitly, inside a function, in each of four places:

    reference   minirnn/units/<unit>.py        (impl='reference')
    loop        kernels/units.py, the unit's class: the one time loop of the fast
                path, on both devices (products, input parts, weight gradients)
    cpu         kernels/cpu/gates.py           (the Numba kernels)
    cuda        kernels/cuda/gates.cuh         (the CUDA bodies)

So a tag is read in at most five files: its page, the reference, the loop and one
kernel file per device.  A range such as ``[LSTM-B1]..[LSTM-B6]`` at a call site
is a summary, not an implementation, and does not count; nor does a tag in a
docstring or a module header. tests/test_doc_tags.py uses ``citations`` to require
every tag on the reference and on each device (the loop or that device's kernels),
with an explicit list of exceptions, and checks that docs/reading-map.md is what
``render`` writes.

    python scripts/reading_map.py            # rewrite docs/reading-map.md
    python scripts/reading_map.py --check    # exit 1 if it is out of date
"""
from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
MAP_PAGE = REPO / "docs" / "reading-map.md"
UNITS = {"lstm": ("LSTM", "LSTM", "FastLSTM"), "gru": ("GRU", "GRU", "FastGRU"),
         "nlstm": ("NLSTM", "Nested LSTM", "FastNestedLSTM")}
PATHS = ("reference", "loop", "cpu", "cuda")
DEVICES = ("cpu", "cuda")   # a device runs the loop and its own kernels
PATH_TITLES = {"reference": "reference (`minirnn/units/`)", "loop": "the loop (`kernels/units.py`)",
               "cpu": "Numba kernel (`kernels/cpu/gates.py`)", "cuda": "CUDA body (`kernels/cuda/gates.cuh`)"}
FILES = {"loop": "kernels/units.py", "cpu": "kernels/cpu/gates.py", "cuda": "kernels/cuda/gates.cuh"}
TAG = re.compile(r"\[([A-Z]{2,6}-[FB]\d{1,2}[a-z]?)\]")
RANGE = re.compile(r"\[[A-Z]{2,6}-[FB]\d{1,2}[a-z]?\]\s*\.\.\s*\[[A-Z]{2,6}-[FB]\d{1,2}[a-z]?\]")
C_FUNCTION = re.compile(r"\b([A-Za-z_]\w*)\s*\(")
C_NOT_FUNCTIONS = {"if", "for", "while", "switch", "return", "sizeof", "defined"}


def path_files(unit: str, path: str) -> list[Path]:
    if path == "reference":
        return [REPO / "minirnn" / "units" / f"{unit}.py"]
    return [REPO / FILES[path]]


def tag_key(tag: str):
    prefix, rest = tag.split("-")
    return prefix, rest[0] != "F", int(re.sub(r"\D", "", rest)), rest


def page_tags(unit: str) -> list[str]:
    """Every tag defined on the unit's page (docs/<unit>.md), in order F0.., B1.."""
    prefix = UNITS[unit][0]
    text = (REPO / "docs" / f"{unit}.md").read_text(encoding="utf-8")
    return sorted({t for t in TAG.findall(text) if t.split("-")[0] == prefix}, key=tag_key)


def explicit_tags(comment: str) -> list[str]:
    return TAG.findall(RANGE.sub(" ", comment))


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
    prefix, _, fast_class = UNITS[unit]
    found: dict[str, list] = {}
    for file in path_files(unit, path):
        sites = _python_sites(file) if file.suffix == ".py" else _c_sites(file)
        rel = file.relative_to(REPO).as_posix()
        for row, function, code, comment in sites:
            if path == "loop" and not function.startswith(fast_class + "."):
                continue
            for tag in explicit_tags(comment):
                if tag.split("-")[0] == prefix:
                    found.setdefault(tag, []).append((rel, row, function, code))
    return found


def _cell(sites, show_code: bool) -> str:
    if not sites:
        return "—"
    seen, parts = set(), []
    for file, _row, function, code in sites:
        key = (file, function) if not show_code else (file, function, code)
        if key in seen:
            continue
        seen.add(key)
        if show_code:
            shown = f"`{code[:60] + ('…' if len(code) > 60 else '')}`" if code else "(comment)"
            parts.append(f"`{function}`: {shown}")
        else:
            parts.append(f"`{Path(file).name}` `{function}`")
    return "<br>".join(parts).replace("|", "\\|")


def render() -> str:
    out = ["# Reading map: each equation on every path", "",
           "Generated by `python scripts/reading_map.py` from the code's comments; "
           "`tests/test_doc_tags.py` fails when this page is out of date or when a tag of a "
           "unit's page is cited neither on the reference nor, for a device, in the loop or that "
           "device's kernels (except the few listed, with their reasons, in that test).", "",
           "For each tag: the reference line (`impl='reference'`, `minirnn/units/`); the fast "
           "path's one time loop per unit (`kernels/units.py`, the same code on the CPU and the "
           "GPU: products, input parts, weight gradients); the Numba kernel it launches on the "
           "CPU (`kernels/cpu/gates.py`) and the CUDA body it launches on the GPU "
           "(`kernels/cuda/gates.cuh`, behind the thin `__global__` wrapper of the same name). "
           "A reference cell shows the function and the line itself; search for the tag in the "
           "named function to land on the line. Only explicit citations count: a range such as "
           "`[LSTM-B1]..[LSTM-B6]` at a call site is a summary and is not listed.", ""]
    for unit, (prefix, title, _) in UNITS.items():
        cites = {p: citations(unit, p) for p in PATHS}
        out += [f"## {title}", "", f"Derivation: [{unit}.md]({unit}.md).", "",
                "| tag | " + " | ".join(PATH_TITLES[p] for p in PATHS) + " |",
                "|---|---|---|---|---|"]
        for tag in page_tags(unit):
            cells = [_cell(cites["reference"].get(tag), True)] + \
                    [_cell(cites[p].get(tag), False) for p in PATHS[1:]]
            out.append(f"| [{tag}]({unit}.md) | " + " | ".join(cells) + " |")
        out.append("")
    return "\n".join(out)


def main(argv: list[str]) -> int:
    text = render()
    if "--check" in argv:
        current = MAP_PAGE.read_text(encoding="utf-8") if MAP_PAGE.exists() else ""
        if current != text:
            print(f"{MAP_PAGE.relative_to(REPO)} is out of date: run python scripts/reading_map.py")
            return 1
        return 0
    MAP_PAGE.write_text(text, encoding="utf-8")
    print(f"wrote {MAP_PAGE.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
