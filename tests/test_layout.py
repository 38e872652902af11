"""The package's shape (docs/index.md, map of the code): every module imports, no import circle, few top modules."""
import ast
import importlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Source folder -> its import name (setup.cfg installs kernels/ and cli/ inside minirnn).
ROOTS = {"minirnn": "minirnn", "kernels": "minirnn.kernels", "cli": "minirnn.cli"}


def modules() -> dict:
    """Import name -> source file, for every module of the package."""
    out = {}
    for folder, name in ROOTS.items():
        for path in sorted((REPO / folder).rglob("*.py")):
            parts = list(path.relative_to(REPO / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join([name, *parts])] = path
    return out


def imports(name: str, path: Path, known: dict) -> set:
    """The package's modules that ``name`` imports anywhere in its text (inside functions too)."""
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[:len(package) - node.level + 1] if node.level else []
            target = ".".join(base + ([node.module] if node.module else []))
            for alias in node.names:  # `from . import x` names a module, `from .x import y` a value
                sub = f"{target}.{alias.name}"
                found.add(sub if sub in known else target)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m in known and m != name}


def cycle(graph: dict):
    """One import circle of ``graph`` as a list of modules, or None."""
    state = {}  # module -> "open" while on the current path, "done" once all it reaches is explored

    def visit(m, path):
        state[m] = "open"
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                return path[path.index(d):] + [d]
            if d not in state and (found := visit(d, path + [d])):
                return found
        state[m] = "done"
        return None

    for m in sorted(graph):
        if m not in state and (found := visit(m, [m])):
            return found
    return None


def test_every_module_imports():
    for name in modules():
        importlib.import_module(name)


def test_no_import_circle_among_the_package_modules():
    known = modules()
    graph = {name: imports(name, path, known) for name, path in known.items()}
    assert cycle(graph) is None, " -> ".join(cycle(graph))


def test_the_cycle_finder_finds_a_circle():
    assert cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


def test_few_modules_sit_directly_in_the_package():
    top = [p.name for p in (REPO / "minirnn").glob("*.py")]
    assert len(top) <= 12, sorted(top)


# Loading these costs time or needs an optional install, so they are imported where used (docs/index.md).
HEAVY = ("numba", "cupy", "cupyx", "cupy_backends", "matplotlib", "mpi4py", "safetensors", "torch",
         "minirnn.kernels.cpu", "minirnn.kernels.cuda")   # the kernels load Numba / CuPy


def local_imports(name: str, path: Path, known: dict) -> list:
    """(line, module) of each import inside a function that is neither heavy nor guarded by ImportError."""
    tree = ast.parse(path.read_text())
    out = []
    for func in ast.walk(tree):
        if not isinstance(func, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        guarded = {id(n) for t in ast.walk(func) if isinstance(t, ast.Try)
                   and any(ast.unparse(h.type or ast.Name("")).endswith("ImportError") for h in t.handlers)
                   for n in ast.walk(t)}
        for node in ast.walk(func):
            if isinstance(node, (ast.Import, ast.ImportFrom)) and id(node) not in guarded:
                targets = resolve(name, path, node, known)
                if not all(any(t == h or t.startswith(h + ".") for h in HEAVY) for t in targets):
                    out.append((node.lineno, ast.unparse(node)))
    return out


def resolve(name: str, path: Path, node, known: dict) -> list:
    """The absolute names an import statement loads."""
    if isinstance(node, ast.Import):
        return [a.name for a in node.names]
    if not node.level:
        return [node.module]
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    base = ".".join(package[:len(package) - node.level + 1] + ([node.module] if node.module else []))
    return [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]


def test_imports_inside_functions_are_only_of_heavy_optional_packages():
    known = modules()
    found = {name: local_imports(name, path, known) for name, path in known.items()}
    assert not {k: v for k, v in found.items() if v}


def test_the_local_import_check_sees_a_light_one(tmp_path):
    path = tmp_path / "m.py"
    path.write_text("def f():\n    import json\n    import numba\n")
    assert local_imports("m", path, {}) == [(2, "import json")]
