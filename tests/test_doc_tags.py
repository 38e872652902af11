"""Docs and code move together: every equation tag the code cites is defined in docs/."""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TAG = re.compile(r"\[([A-Z]{2,6}-[FB]\d{1,2}[a-z]?)\]")
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
