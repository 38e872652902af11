"""`minirnn read`: a unit's derivation beside the code that computes it (docs/read.md).

The page (``minirnn/study/read_page/``) shows the unit's docs page on the left and, for
the selected tag, every line that cites it on every path, with a few lines of
context: found by :mod:`minirnn.study.tag_index` and read from the code at run time,
so the page cannot go stale.  A backward tag has a check: a float64 gradient
check of the tensors that tag's line computes, on the unit's reference code and
its fast CPU kernels, as ``minirnn gradcheck`` does it (central differences
[GC-F1], error [GC-F2]).

    GET  /                      the page (and /read.js, /read.css)
    GET  /api/units             the units that have a derivation page
    GET  /api/unit?name=lstm    one unit: its page as HTML, its tags in derivation order, their code
    POST /api/check {"tag": "LSTM-B7"}   the gradient check of one backward tag

It runs on ``minirnn serve``'s HTTP server and JSON conventions (errors are
``{"error": ...}``); ``write_static`` writes the same page as a folder instead.
"""
from __future__ import annotations

import json
from fnmatch import fnmatch
from pathlib import Path

from . import markdown

from . import tag_index
from ..errors import MinirnnError
from .serve import RequestError, _only, dispatch, page_files
import os
import shutil
import tempfile
from ..units import REGISTRY
from ..gradcheck import DEFAULT_STEP, DEFAULT_TOLERANCE, FLOOR, check_unit
from ..kernels import accelerate
from ..training.atomic import _umask

CONTEXT = 3                      # lines shown above and below each cited line
CHECK_SIZES = {"input_size": 4, "hidden_size": 3, "T": 5, "B": 3}   # a tiny unit: a check takes under a second
PAGE_FILES = {
    "/": ("read_page/index.html", "text/html; charset=utf-8"),
    "/index.html": ("read_page/index.html", "text/html; charset=utf-8"),
    "/page.js": ("page.js", "text/javascript; charset=utf-8"),     # shared with minirnn serve's page
    "/read.js": ("read_page/read.js", "text/javascript; charset=utf-8"),
    "/read.css": ("read_page/read.css", "text/css; charset=utf-8"),
}
STATIC_DATA = "data.js"          # the static folder's units, loaded by index.html before read.js


def _units():
    return REGISTRY


def unit_names() -> list[str]:
    """The registered units that have a derivation page: the reading order first, then the others."""
    names = [u for u in tag_index.MAP_UNITS if u in _units()] + [u for u in _units() if u not in tag_index.MAP_UNITS]
    if not tag_index.DOCS.is_dir():
        raise MinirnnError(f"the docs folder {tag_index.DOCS} is missing: minirnn read needs a source checkout "
                           "(git clone, then pip install -e .)")
    return [u for u in names if tag_index.derivation_page(u) is not None]


def units_summary() -> list[dict]:
    return [{"name": u, "label": _units()[u].label, "page": tag_index.relative(tag_index.derivation_page(u))}
            for u in unit_names()]


def _unit_or_error(name: str) -> str:
    names = unit_names()
    if name not in names:
        raise MinirnnError(f"no derivation to read for unit {name!r}; choose one of {', '.join(names)}")
    return name


def _snippets(found, cache: dict) -> list[dict]:
    """Cited lines of one path as snippets: lines of one file close enough to share their context are
    one snippet, shown with ``CONTEXT`` lines above the first and below the last."""
    out: list[dict] = []
    for file, row, function, _code in sorted(found, key=lambda s: (s[0], s[1])):
        last = out[-1] if out else None
        if last and last["file"] == file and row - last["lines"][-1] <= 2 * CONTEXT + 1:
            if row != last["lines"][-1]:
                last["lines"].append(row)
            if function not in last["functions"]:
                last["functions"].append(function)
        else:
            out.append({"file": file, "lines": [row], "functions": [function]})
    for snip in out:
        file = snip["file"]
        if file not in cache:
            path = Path(file) if Path(file).is_absolute() else tag_index.REPO / file
            cache[file] = path.read_text(encoding="utf-8").splitlines()
        lines = cache[file]
        lo, hi = max(1, snip["lines"][0] - CONTEXT), min(len(lines), snip["lines"][-1] + CONTEXT)
        snip["context"] = [[n, lines[n - 1]] for n in range(lo, hi + 1)]
    return out


def _reference_unit(name: str):
    return _units()[name].build(CHECK_SIZES["input_size"], CHECK_SIZES["hidden_size"])


def check_plan(tag: str) -> dict | None:
    """What the check of a backward tag compares (None for a forward tag): tensor name patterns and why."""
    unit = _unit_of_tag(tag)
    if "-B" not in tag:
        return None
    own = getattr(_reference_unit(unit), "tag_gradients", {}).get(tag)
    if own:
        return {"tensors": list(own), "kind": "computes",
                "note": f"this line computes the returned gradient of {', '.join(own)} (for a carried gradient: "
                        "its value at step 0, which backward returns as the initial state's)"}
    return {"tensors": ["*"], "kind": "feeds",
            "note": "this line computes an intermediate of one step that backward never returns; the check "
                    "covers every gradient backward returns (parameters, x, initial state), which it feeds "
                    "through this step or, by the carried gradients, the earlier ones"}


def unit_view(name: str) -> dict:
    """Everything the page shows for one unit, read from the docs and the code now."""
    name = _unit_or_error(name)
    prefix = tag_index.prefix_of(name)
    page = tag_index.derivation_page(name)
    tags = tag_index.page_tags(name)
    files: dict = {}
    sites = {tag: {} for tag in tags}
    for path in tag_index.PATHS:
        for tag, found in tag_index.citations(name, path).items():
            if tag in sites:
                sites[tag][path] = _snippets(found, files)
    return {"name": name, "label": _units()[name].label, "prefix": prefix, "page": tag_index.relative(page),
            "html": markdown.render(page.read_text(encoding="utf-8"), prefix), "tags": tags,
            "paths": [{"name": p, "label": tag_index.PATH_LABELS.get(p, p), "roots": list(r)}
                      for p, r in tag_index.PATHS.items()],
            "sites": sites, "checks": {t: check_plan(t) for t in tags if "-B" in t}}


def _unit_of_tag(tag: str) -> str:
    if not isinstance(tag, str) or not tag_index.TAG.fullmatch(f"[{tag}]"):
        raise MinirnnError(f"{str(tag)[:40]!r} is not an equation tag (e.g. LSTM-B7)")
    for name in unit_names():
        if tag_index.prefix_of(name) == tag.split("-")[0]:
            if tag not in tag_index.page_tags(name):
                raise MinirnnError(f"{tag} is not derived on {tag_index.derivation_page(name).name}")
            return name
    raise MinirnnError(f"no unit has tags {tag.split('-')[0]}-..; the units are {', '.join(unit_names())}")


def check_tag(tag: str, seed: int = 0) -> dict:
    """The float64 gradient check of one backward tag on a tiny unit (minirnn.gradcheck), on the reference
    code and, where the unit has them, on the fast CPU kernels (the same random problem for both)."""
    plan = check_plan(tag)
    if plan is None:
        raise MinirnnError(f"{tag} is a forward equation: there is no gradient to check (pick a backward tag, -B)")
    reference = _reference_unit(_unit_of_tag(tag))
    fast = accelerate(reference, "cpu")
    units = {"reference": reference, **({"cpu": fast} if fast is not reference else {})}
    rows = []
    for path, unit in units.items():
        report = check_unit(unit, T=CHECK_SIZES["T"], B=CHECK_SIZES["B"], seed=seed)
        rows += [{"path": path, "name": r.name, "shape": list(r.shape), "checked": r.checked,
                  "max_abs_grad": r.max_abs_grad, "error": r.error, "passed": r.passed()}
                 for r in report if any(fnmatch(r.name, p) for p in plan["tensors"])]
    return {"tag": tag, **plan, "tolerance": DEFAULT_TOLERANCE, "floor": FLOOR, "step": DEFAULT_STEP,
            "paths": list(units),
            "setup": (f"{reference.name} unit, {CHECK_SIZES['input_size']} inputs, {CHECK_SIZES['hidden_size']} units, "
                      f"{CHECK_SIZES['T']} steps x batch {CHECK_SIZES['B']}, float64, loss a random linear function "
                      "of every output and the final state, 4th-order central differences "
                      f"h={DEFAULT_STEP:g}, every entry; paths: {', '.join(units)}"),
            "tensors": rows, "worst": max(r["error"] for r in rows), "passed": all(r["passed"] for r in rows)}


class ReaderApp:
    """The reader's endpoints, independent of HTTP: ``route(method, path, query, body)`` as serve's App."""

    def __init__(self):
        unit_names()                                   # a missing docs folder is said at start
        self.files = page_files(PAGE_FILES)
        self.routes = {("GET", "/api/units"): self.api_units, ("GET", "/api/unit"): self.api_unit,
                       ("POST", "/api/check"): self.api_check}

    def route(self, method: str, path: str, query: str = "", body: bytes = b"") -> tuple[int, str, bytes]:
        try:
            return dispatch(self.files, self.routes, method, path, query, body)
        except MinirnnError as exc:                    # a unit or tag that does not exist: the request is wrong
            raise RequestError(400, str(exc)) from None

    def api_units(self, query: dict) -> dict:
        _only(query, (), "GET /api/units")
        return {"units": units_summary()}

    def api_unit(self, query: dict) -> dict:
        _only(query, ("name",), "GET /api/unit")
        if "name" not in query:
            raise RequestError(400, "give ?name=UNIT, e.g. /api/unit?name=lstm")
        return unit_view(query["name"])

    def api_check(self, req: dict) -> dict:
        _only(req, ("tag",), "POST /api/check")
        if "tag" not in req:
            raise RequestError(400, "'tag' is required, e.g. {\"tag\": \"LSTM-B7\"}")
        return check_tag(req["tag"])


def write_static(folder, units: list[str]) -> list[Path]:
    """The page as a folder (index.html, page.js, read.js, read.css, data.js) that opens from disk, for ``units``.

    The checks need the live server; the page says so.  The folder is built under a temporary
    name beside it and renamed into place at the end, so a failure leaves nothing half-written;
    an existing non-empty folder is refused."""
    views = [unit_view(u) for u in units]              # every unit name is checked before anything is written
    folder = Path(folder)
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise MinirnnError(f"{folder} exists and is not an empty folder; choose a new --out folder")
    files = page_files(PAGE_FILES)
    data = {"units": [u for u in units_summary() if u["name"] in units], "views": {v["name"]: v for v in views}}
    contents = {name: files["/" + name][0] for name in ("index.html", "page.js", "read.js", "read.css")}
    script = b'<script src="read.js"></script>'
    contents["index.html"] = contents["index.html"].replace(script, f'<script src="{STATIC_DATA}"></script>\n'.encode()
                                                            + script)
    contents[STATIC_DATA] = b"window.MINIRNN_READ = " + json.dumps(data).replace("</", "<\\/").encode() + b";\n"
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
    except OSError as exc:
        raise MinirnnError(f"cannot write the folder {folder} ({exc.strerror or exc}); choose a writable place") from None
    try:
        for name, data_bytes in contents.items():
            (tmp / name).write_bytes(data_bytes)
        os.chmod(tmp, 0o777 & ~_umask())
        os.replace(tmp, folder)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise MinirnnError(f"could not write the folder {folder} ({exc.strerror or exc}); check its permissions "
                               "and free space") from None
        raise
    return [folder / name for name in contents]
