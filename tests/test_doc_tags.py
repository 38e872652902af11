"""Docs and code move together: every equation tag the code cites is defined in docs/."""
from pathlib import Path

from minirnn.study import tag_index as TI
REPO = Path(__file__).resolve().parents[1]
TAG = TI.TAG
CODE_DIRS = ("minirnn", "kernels", "cli")
CODE_SUFFIXES = {".py", ".cu", ".cuh"}


def cited_tags():
    cited = {}
    for d in CODE_DIRS:
        for path in (REPO / d).rglob("*"):
            if path.suffix in CODE_SUFFIXES:
                for tag in TAG.findall(path.read_text(encoding="utf-8")):
                    cited.setdefault(tag, path.relative_to(REPO).as_posix())
    return cited


def defined_tags():
    return {tag for page in (REPO / "docs").glob("*.md") for tag in TAG.findall(page.read_text(encoding="utf-8"))}


def test_every_cited_tag_is_defined_in_docs():
    missing = {t: f for t, f in cited_tags().items() if t not in defined_tags()}
    assert not missing, f"tags cited in code but defined on no docs page: {missing}"


def test_the_code_cites_tags_of_every_unit_and_layer():
    prefixes = {t.split("-")[0] for t in cited_tags()}
    assert {"GRU", "LSTM", "NLSTM", "EMB", "DENSE", "CE", "ADAM", "GC"} <= prefixes


def test_every_backward_equation_of_the_units_is_implemented():
    # Each backward line derived in a unit's page is cited by that unit's code.
    cited = cited_tags()
    for unit in ("gru", "lstm", "nlstm"):
        page = (REPO / "docs" / f"{unit}.md").read_text(encoding="utf-8")
        derived = {t for t in TAG.findall(page) if t.startswith(unit.upper() + "-B")}
        assert derived, unit
        assert derived <= set(cited), f"{unit}: derived but never cited: {sorted(derived - set(cited))}"


# --- every tag of a unit on every path (minirnn/study/tag_index.py), and the reading map (docs/reading-map.md) ---
def _reading_map():
    import importlib.util

    spec = importlib.util.spec_from_file_location("reading_map", REPO / "scripts" / "reading_map.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


RM = _reading_map()

# Tags a path legitimately implements on no line of its own, as
# {(unit, path): {tag: reason}}.  Empty today: every tag of every unit page has
# an explicit citation on the reference, CPU and CUDA paths.  Add an entry only
# with its reason (e.g. a path that folds an equation into another one's
# product); an entry that is no longer needed fails the test below.
EXCEPTIONS: dict[tuple[str, str], dict[str, str]] = {}


def test_every_tag_of_a_unit_is_cited_on_every_path():
    missing = {}
    for unit in TI.MAP_UNITS:
        tags = TI.page_tags(unit)
        assert tags and any("-F" in t for t in tags) and any("-B" in t for t in tags), unit
        for path in TI.PATHS:
            cited = TI.citations(unit, path)
            excused = EXCEPTIONS.get((unit, path), {})
            lacking = [t for t in tags if t not in cited and t not in excused]
            if lacking:
                missing[f"{unit}/{path}"] = lacking
    assert not missing, f"derived on the unit's page but cited on no line of the path: {missing}"


def test_every_exception_is_still_needed_and_explained():
    for (unit, path), tags in EXCEPTIONS.items():
        assert unit in TI.MAP_UNITS and path in TI.PATHS
        cited = TI.citations(unit, path)
        for tag, reason in tags.items():
            assert tag in TI.page_tags(unit), (unit, tag)
            assert tag not in cited, f"{unit}/{path}: {tag} is cited now; remove its exception"
            assert len(reason) > 20, (unit, path, tag)


def test_the_reading_map_is_current():
    current = RM.MAP_PAGE.read_text(encoding="utf-8") if RM.MAP_PAGE.exists() else ""
    assert current == RM.render(), "docs/reading-map.md is out of date: run  python scripts/reading_map.py"


def test_the_map_reader_counts_only_explicit_citations_inside_functions(tmp_path):
    assert TI.explicit_tags("x  # [LSTM-B1]..[LSTM-B6], [LSTM-B8]") == ["LSTM-B8"]
    py = tmp_path / "m.py"
    py.write_text('"""Module docstring [GRU-F1]."""\n# module comment [GRU-F2]\n\n'
                  "class K:\n    def f(self):\n        '''doc [GRU-F3]'''\n"
                  "        a = 1  # [GRU-F4]\n        # [GRU-B1]..[GRU-B4]\n        return a\n")
    sites = [(row, fn, code, TI.explicit_tags(c)) for row, fn, code, c in TI._python_sites(py)]
    assert [s for s in sites if s[3]] == [(7, "K.f", "a = 1", ["GRU-F4"])]
    cu = tmp_path / "k.cuh"
    cu.write_text("// header [GRU-F1]\n#ifndef X\n#define M(i) \\\n    for (i(0)) x\n\n"
                  "// above [GRU-F2]\ntemplate <typename T>\nvoid gru_k(int n)\n{\n"
                  "    y = 1;  // [GRU-F3]\n}\n// after, before nothing [GRU-F4]\n")
    found = [(row, fn, TI.explicit_tags(c)) for row, fn, _code, c in TI._c_sites(cu)]
    assert [f for f in found if f[2]] == [(6, "gru_k", ["GRU-F2"]), (10, "gru_k", ["GRU-F3"])]
