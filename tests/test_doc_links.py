"""Docs and code cite only what a user of the repository has.

No page and no source file may point at a file outside the repository (such as
the notes the project was started from) or at an absolute path of one machine;
every relative link of the docs and every ``docs/<page>.md`` named in the code
must exist.
"""
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEXT_DIRS = ("docs", "minirnn", "kernels", "cli", "scripts", "tests", "benchmarks")
SUFFIXES = {".md", ".py", ".cu", ".cuh", ".sh", ".txt", ".cfg", ".toml"}
# Names of files that live outside the repository, and absolute paths of a machine.
# Tests may hold made-up absolute paths as data (e.g. a fake /proc/self/maps), so
# in tests only the workspace root of the development machines is refused.
OUTSIDE = re.compile(r"REFERENCE\.md|DESIGN\.md|(?<![\w.~])/(?:work|home|Users|root|mnt|opt|srv|tmp)/")
OUTSIDE_IN_TESTS = re.compile(r"REFERENCE\.md|DESIGN\.md|(?<![\w.~])/work/")
LINK = re.compile(r"\]\(([^)\s#]+)(?:#[^)\s]*)?\)")
DOC_NAME = re.compile(r"\bdocs/([\w.-]+\.md)\b")


def text_files():
    files = [REPO / "README.md"]
    for d in TEXT_DIRS:
        root = REPO / d
        if root.is_dir():
            files += [p for p in root.rglob("*") if p.suffix in SUFFIXES and p.is_file()]
    return [p for p in files if p.name != Path(__file__).name]


def test_nothing_cites_a_file_outside_the_repository_or_an_absolute_path():
    bad = []
    for path in text_files():
        pattern = OUTSIDE_IN_TESTS if path.relative_to(REPO).parts[0] == "tests" else OUTSIDE
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                bad.append(f"{path.relative_to(REPO)}:{n}: {line.strip()}")
    assert not bad, "cites a file outside the repository or an absolute path:\n" + "\n".join(bad)


def test_the_pattern_catches_what_it_should():
    assert OUTSIDE.search("see REFERENCE.md §4")
    assert OUTSIDE.search("read /work/shared/data/x.txt")
    assert not OUTSIDE.search("docs/study.md §4, minirnn/scratch.py, a/b")


def test_every_relative_link_of_the_docs_resolves():
    broken = []
    for page in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        for target in LINK.findall(page.read_text(encoding="utf-8")):
            if re.match(r"[a-z][a-z0-9+.-]*:", target):      # http:, https:, mailto:
                continue
            if not (page.parent / target).exists():
                broken.append(f"{page.relative_to(REPO)} -> {target}")
    assert not broken, broken


def test_every_docs_page_the_code_names_exists():
    missing = set()
    for path in text_files():
        if path.suffix == ".md":
            continue
        for name in DOC_NAME.findall(path.read_text(encoding="utf-8")):
            if not (REPO / "docs" / name).is_file():
                missing.add(f"{path.relative_to(REPO)}: docs/{name}")
    assert not missing, sorted(missing)


def test_the_study_page_carries_the_published_numbers():
    page = (REPO / "docs" / "study.md").read_text(encoding="utf-8")
    from minirnn.study.plotting import PUBLISHED_TOP1_BY_LETTERS
    from minirnn.study.comparison import PUBLISHED, PUBLISHED_ONE_EPOCH

    for table in (PUBLISHED, PUBLISHED_ONE_EPOCH):
        for ce, acc in table.values():
            assert f"{ce:.4f}" in page and f"{100 * acc:.2f}%" in page
    for row in PUBLISHED_TOP1_BY_LETTERS.values():
        assert " | ".join(f"{v:.3f}" for v in row) in page
    for count in ("16,200", "4,323,600", "5,764,800", "9,847,986", "456,896", "14,278"):
        assert count in page
    assert "## Bibliography" in page
