"""`minirnn read`: the tag index it shows, the checks it runs, its Markdown, its JSON endpoints over
real HTTP on 127.0.0.1, and the real command (a static folder; a live server stopped by Ctrl-C)."""
from __future__ import annotations

import http.client
import importlib.util
import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from minirnn.study import markdown

from minirnn.study import reader

from minirnn.study import tag_index
from minirnn.gradcheck import DEFAULT_TOLERANCE, FLOOR
from minirnn.study.serve import make_server
from minirnn.units import LSTM
from minirnn.units import registry as R

REPO = Path(__file__).resolve().parents[1]
LSTM_TAGS = [f"LSTM-F{i}" for i in range(1, 5)] + [f"LSTM-B{i}" for i in range(1, 10)]


@pytest.fixture
def elman():
    """The worked example of docs/units.md, registered for one test (without its fast kernels)."""
    spec = importlib.util.spec_from_file_location("elman_unit", REPO / "examples" / "elman_unit.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module.register_elman(fast=False)
    R.unregister("elman")


def test_every_lstm_tag_is_shown_on_its_three_paths_at_the_line_that_cites_it():
    view = reader.unit_view("lstm")
    assert view["tags"] == LSTM_TAGS                                   # derivation order: F1..F4, B1..B9
    assert [p["name"] for p in view["paths"]] == list(tag_index.PATHS)
    for tag in LSTM_TAGS:
        for path in tag_index.PATHS:
            snippets = view["sites"][tag].get(path)
            assert snippets, (tag, path)
            for s in snippets:
                text = dict((n, line) for n, line in s["context"])
                assert all(f"[{tag}]" in text[n] for n in s["lines"]), (tag, path, s["file"], s["lines"])
                assert s["context"][0][0] <= s["lines"][0] - min(reader.CONTEXT, s["lines"][0] - 1)
    # the snippets are the index's citations, every one of them, read from the files now
    for path in tag_index.PATHS:
        for tag, found in tag_index.citations("lstm", path).items():
            shown = {(s["file"], n) for s in view["sites"][tag][path] for n in s["lines"]}
            assert shown == {(f, row) for f, row, _, _ in found}
    assert view["checks"].keys() == {t for t in LSTM_TAGS if "-B" in t}
    assert view["checks"]["LSTM-B7"]["tensors"] == ["W", "b"]


def test_the_check_of_lstm_b7_is_below_the_gradcheck_floor_and_can_fail(monkeypatch):
    r = reader.check_tag("LSTM-B7")
    assert [(t["path"], t["name"]) for t in r["tensors"]] == [("reference", "W"), ("reference", "b"),
                                                              ("cpu", "W"), ("cpu", "b")]
    assert r["passed"] and r["worst"] < DEFAULT_TOLERANCE < FLOOR
    assert all(t["checked"] == {"W": 7 * 12, "b": 12}[t["name"]] for t in r["tensors"])   # every entry
    # a wrong dW in the reference (one entry off by one part in a thousand) is caught there, and only there
    backward = LSTM.backward

    def wrong(self, *args, **kwargs):
        dparams, dx, dstate0 = backward(self, *args, **kwargs)
        dparams["W"][0, 0] *= 1.001
        return dparams, dx, dstate0
    monkeypatch.setattr(LSTM, "backward", wrong)
    r = reader.check_tag("LSTM-B7")
    assert not r["passed"] and [t["passed"] for t in r["tensors"]] == [False, True, True, True]


def test_an_intermediate_tag_is_checked_through_every_returned_gradient():
    r = reader.check_tag("LSTM-B3")
    assert r["kind"] == "feeds" and r["passed"] and r["paths"] == ["reference", "cpu"]
    assert [t["name"] for t in r["tensors"]] == ["W", "b", "x", "state0.h", "state0.c"] * 2
    r = reader.check_tag("NLSTM-B10")
    assert r["kind"] == "computes" and [t["name"] for t in r["tensors"]] == ["state0.c0", "state0.c1"] * 2


def test_every_declared_tag_gradient_names_a_backward_tag_and_real_tensors():
    from fnmatch import fnmatch

    from minirnn.gradcheck import check_unit

    for name in tag_index.MAP_UNITS:
        unit = reader._reference_unit(name)
        names = [r.name for r in check_unit(unit, T=1, B=1, max_entries=1)]
        for tag, patterns in unit.tag_gradients.items():
            assert tag in tag_index.page_tags(name) and "-B" in tag, (name, tag)
            assert all(any(fnmatch(n, p) for n in names) for p in patterns), (name, tag, patterns)


def test_the_renderer_escapes_everything_and_links_only_the_units_tags():
    html = markdown.render("# T <b>\n\nx <script>alert(1)</script> [GRU-B1] [LSTM-B7](lstm.md) "
                           "[doc](gru.md) [web](https://example.org/?a=1&b=2) **bold** *old* a * b `a<b [LSTM-F1]`\n\n"
                           "| a | b\\|c |\n|---|---|\n| `x` | [LSTM-B2] |\n\n```\nz = 1   [LSTM-F2]\n```\n\n"
                           "- one\n  more\n- two\n", "LSTM")
    assert "<script>" not in html and "&lt;script&gt;" in html and "<b>" not in html
    assert re.findall(r'data-tag="([^"]+)"', html) == ["LSTM-B7", "LSTM-F1", "LSTM-B2", "LSTM-F2"]
    assert "[GRU-B1]" in html and 'data-tag="GRU-B1"' not in html
    assert '<span class="doc-link" title="docs/gru.md">doc</span>' in html
    assert '<a href="https://example.org/?a=1&amp;b=2" rel="noreferrer">web</a>' in html
    assert "<strong>bold</strong> <em>old</em> a * b" in html and "<code>a&lt;b <a class=\"tag\"" in html
    assert "<th>b|c</th>" in html and '<span class="eq" data-tags="LSTM-F2">' in html
    assert "<ul><li>one more</li><li>two</li></ul>" in html
    # a line that only looks like a table or a heading is prose; bold may wrap inline code
    assert markdown.render("|no table\n#no heading\n**`--out`** x", "LSTM") == \
        "<p>|no table</p>\n<p>#no heading <strong><code>--out</code></strong> x</p>"
    for page in sorted((REPO / "docs").glob("*.md")):                       # every page of docs/ renders
        assert markdown.render(page.read_text(encoding="utf-8"), "LSTM").count("<script") == 0


def test_a_registered_unit_shows_up_with_its_derivation_and_its_own_file(elman):
    assert "elman" in [u["name"] for u in reader.units_summary()]
    view = reader.unit_view("elman")
    assert view["page"] == "docs/units.md" and view["label"] == "Elman RNN"
    assert view["tags"] == ["ELMAN-F1", "ELMAN-B1", "ELMAN-B2", "ELMAN-B3"]
    for tag in view["tags"]:
        assert [s["file"] for s in view["sites"][tag]["reference"]] == ["examples/elman_unit.py"]
        assert not view["sites"][tag].get("cpu") and not view["sites"][tag].get("cuda")   # no fast kernels
    r = reader.check_tag("ELMAN-B2")                                   # no fast kernels: the reference alone
    assert r["passed"] and r["paths"] == ["reference"] and [t["name"] for t in r["tensors"]] == ["W", "b"]


def test_the_running_server_lists_a_unit_registered_after_it_started(client, elman):
    status, d = client.json("GET", "/api/units")
    assert status == 200 and [u["name"] for u in d["units"]] == ["lstm", "gru", "nlstm", "elman"]
    status, d = client.json("POST", "/api/check", {"tag": "ELMAN-B3"})
    assert status == 200 and d["passed"] and [t["name"] for t in d["tensors"]] == ["x", "state0.h"]


def test_an_unregistered_unit_is_gone():
    assert "elman" not in [u["name"] for u in reader.units_summary()]
    with pytest.raises(reader.MinirnnError, match="no unit has tags ELMAN"):
        reader.check_tag("ELMAN-B2")


# ------------------------------------------------------------------------------------------- HTTP
class Client:
    def __init__(self, port):
        self.port = port

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            r = conn.getresponse()
            return r.status, r.getheader("Content-Type"), r.read()
        finally:
            conn.close()

    def json(self, method, path, value=None):
        body = None if value is None else json.dumps(value).encode()
        status, ctype, data = self.request(method, path, body, {"Content-Type": "application/json"} if body else {})
        assert ctype == "application/json", (status, ctype, data[:200])
        return status, json.loads(data)


@pytest.fixture(scope="module")
def client():
    server = make_server(reader.ReaderApp(), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield Client(server.port)
    server.shutdown()
    server.server_close()


def test_the_endpoints_answer_what_the_library_computes(client):
    status, d = client.json("GET", "/api/units")
    assert status == 200 and [u["name"] for u in d["units"]] == ["lstm", "gru", "nlstm"]
    status, d = client.json("GET", "/api/unit?name=lstm")
    assert status == 200 and d == json.loads(json.dumps(reader.unit_view("lstm")))
    status, d = client.json("POST", "/api/check", {"tag": "LSTM-B7"})
    assert status == 200 and d["passed"] and d["worst"] < DEFAULT_TOLERANCE
    status, ctype, page = client.request("GET", "/")
    assert status == 200 and ctype.startswith("text/html") and b'<script src="read.js"></script>' in page


@pytest.mark.parametrize("method, path, body, status, words", [
    ("GET", "/api/unit?name=bogus", None, 400, "no derivation to read for unit 'bogus'"),
    ("GET", "/api/unit", None, 400, "give ?name=UNIT"),
    ("GET", "/api/unit?name=lstm&name=gru", None, 400, "given 2 times"),
    ("GET", "/api/units?x=1", None, 400, "does not take 'x'"),
    ("POST", "/api/check", {"tag": "LSTM-F1"}, 400, "forward equation"),
    ("POST", "/api/check", {"tag": "LSTM-B99"}, 400, "not derived on lstm.md"),
    ("POST", "/api/check", {"tag": "<script>"}, 400, "is not an equation tag"),
    ("POST", "/api/check", {"tag": 7}, 400, "is not an equation tag"),
    ("POST", "/api/check", {}, 400, "'tag' is required"),
    ("POST", "/api/check", {"tag": "LSTM-B7", "seed": 1}, 400, "does not take 'seed'"),
    ("POST", "/api/check", [1], 400, "must be a JSON object"),
    ("GET", "/api/check", None, 405, "answers POST only"),
    ("POST", "/read.js", {}, 405, "answers GET only"),
    ("GET", "/../docs/lstm.md", None, 404, "no such page"),
])
def test_bad_requests_get_one_json_error(client, method, path, body, status, words):
    got, d = client.json(method, path, body)
    assert got == status and words in d["error"] and set(d) == {"error"}


def test_a_body_that_is_not_json_is_refused(client):
    status, ctype, data = client.request("POST", "/api/check", b"tag=LSTM-B7", {"Content-Type": "text/plain"})
    assert status == 415 and ctype == "application/json" and "application/json" in json.loads(data)["error"]
    status, _, data = client.request("POST", "/api/check", b"{not json", {"Content-Type": "application/json"})
    assert status == 400 and "JSON object" in json.loads(data)["error"]


# ---------------------------------------------------------------------------------------- the command
def _minirnn(*args, **kwargs):
    return subprocess.run([sys.executable, "-m", "minirnn", *args], capture_output=True, text=True, timeout=120,
                          **kwargs)


def test_read_out_writes_a_static_folder_and_refuses_bad_input(tmp_path):
    out = tmp_path / "page"
    r = _minirnn("read", "gru", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in out.iterdir()) == ["data.js", "index.html", "page.js", "read.css", "read.js"]
    index = (out / "index.html").read_text()
    assert index.index('src="data.js"') < index.index('src="read.js"')
    assert index.index('src="page.js"') < index.index('src="read.js"')   # the shared helpers first
    data = json.loads((out / "data.js").read_text().removeprefix("window.MINIRNN_READ = ").rstrip(";\n"))
    assert list(data["views"]) == ["gru"] and data["views"]["gru"]["tags"] == tag_index.page_tags("gru")
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for args, words in [(["read", "bogus", "--out", str(tmp_path / "x")], "no derivation to read for unit 'bogus'"),
                        (["read", "lstm", "--out", str(out)], "is not an empty folder")]:
        r = _minirnn(*args)
        assert r.returncode == 1 and words in r.stderr and "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()                                   # nothing half-written
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before       # nothing replaced


def test_read_serves_until_ctrl_c():
    proc = subprocess.Popen([sys.executable, "-m", "minirnn", "read", "nlstm", "--port", "0"],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stderr.readline()
        m = re.search(r"reading nlstm at http://127\.0\.0\.1:(\d+)/#nlstm", line)
        assert m, line
        status, d = Client(int(m.group(1))).json("GET", "/api/unit?name=nlstm")
        assert status == 200 and d["tags"] == tag_index.page_tags("nlstm")
    finally:
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=30)[1]
    assert proc.returncode == 0 and "stopped" in rest and "Traceback" not in rest
