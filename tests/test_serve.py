"""`minirnn serve`: the JSON endpoints over real HTTP on 127.0.0.1 (an ephemeral port).

Tiny checkpoints made here (GRU, LSTM, Nested LSTM), one briefly trained on the
tiny corpus so that its test split can be evaluated.  Every answer is compared
with the library computation it must equal; every bad request must get one JSON
error and leave the server serving.
"""
from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
from click.testing import CliRunner

from tiny_corpus import write_tiny_corpus

from minirnn.study import analysis as A
from minirnn.training.checkpoint import load_checkpoint, save_checkpoint
from minirnn.cli.main import cli
from minirnn.model import Model
from minirnn.optim import Adam
from minirnn.study.serve import App, make_server

NAMES = ["<eos>", "<unknown>", "the", "cat", "sat", "on", "mat", "a", "dog"]
TEXT = "The cat sat on the mat"
MAX_CHARS = 60


def write_checkpoint(path, unit, seed=3, step=5):
    model = Model(unit=unit, hidden=6, layers=2 if unit == "gru" else 1, depth=2, output_vocab=len(NAMES),
                  seed=seed, dtype="float32", impl="reference")
    history = {"train_step": np.arange(1, step + 1), "train_loss": np.linspace(3, 2, step),
               "val_step": np.array([step]), "val_loss": np.array([2.2])}
    save_checkpoint(path, model, Adam(model.params), step=step, order_state={"epoch": 0, "position": step},
                    config={"unit": unit, "preset": "demo", "lr": 0.02}, output_words=NAMES, history=history)
    return str(path)


def trained_checkpoint(folder):
    """A checkpoint written by `minirnn train` on the tiny corpus: its test split can be evaluated."""
    from minirnn.training.loop import TrainConfig, train

    corpus = write_tiny_corpus(folder / "tiny.txt", words=1200, seed=7)
    config = TrainConfig.from_preset("demo", "gru", hidden=6, layers=1, vocab_size=12, max_length=40, batch_size=16,
                                     lr=1e-2, steps=3, epochs=None, seed=5, corpus=str(corpus),
                                     out=str(folder / "trained.h5"), dtype="float32", impl="reference",
                                     eval_every=0, eval_batches=1, checkpoint_every=0, final_test=False)
    train(config, progress=False, echo=None)
    return str(folder / "trained.h5")


class Client:
    def __init__(self, port):
        self.port = port

    def request(self, method, path, body=None, headers=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            hdrs = dict(headers or {})
            if isinstance(body, (dict, list)) or (body is not None and not isinstance(body, (bytes, str))):
                body = json.dumps(body)
                hdrs.setdefault("Content-Type", "application/json")
            elif body is not None:
                hdrs.setdefault("Content-Type", "application/json")
            conn.request(method, path, body=body, headers=hdrs)
            r = conn.getresponse()
            data = r.read()
            return r.status, dict(r.getheaders()), data
        finally:
            conn.close()

    def json(self, method, path, body=None, headers=None):
        status, hdrs, data = self.request(method, path, body, headers)
        assert hdrs["Content-Type"] == "application/json", (status, data[:200])
        return status, json.loads(data)

    def raw(self, data: bytes) -> tuple[int, dict]:
        """Send raw bytes on a new connection and parse the one answer."""
        with socket.create_connection(("127.0.0.1", self.port), timeout=30) as s:
            s.sendall(data)
            chunks = []
            while True:
                part = s.recv(65536)
                if not part:
                    break
                chunks.append(part)
        answer = b"".join(chunks)
        if not answer.startswith(b"HTTP/"):      # an HTTP/0.9-style request gets a bare body
            return 0, json.loads(answer)
        head, _, body = answer.partition(b"\r\n\r\n")
        status = int(head.split(b" ")[1])
        return status, json.loads(body)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve")
    paths = [write_checkpoint(folder / f"{u}.h5", u) for u in ("gru", "lstm", "nlstm")]
    paths.append(trained_checkpoint(folder))
    calls = []

    def evaluate(m):
        calls.append(m.index)
        from minirnn.study.comparison import evaluation_for

        return evaluation_for(m.path, m.checkpoint, split="test", device="cpu")

    app = App.load(paths, max_chars=MAX_CHARS, evaluate=evaluate)
    server = make_server(app, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield app, Client(server.port), paths, calls
    server.shutdown()
    server.server_close()
    app.close()


def test_the_page_and_its_files_are_served_and_load_nothing_from_the_network(served):
    _, client, _, _ = served
    status, hdrs, page = client.request("GET", "/")
    assert status == 200 and hdrs["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in hdrs["Content-Security-Policy"] and hdrs["X-Content-Type-Options"] == "nosniff"
    html = page.decode("utf-8")
    assert 'id="input"' in html and '<script src="app.js">' in html and 'href="app.css"' in html
    for path, kind in (("/app.js", "text/javascript"), ("/app.css", "text/css")):
        status, hdrs, body = client.request("GET", path)
        assert status == 200 and hdrs["Content-Type"].startswith(kind) and len(body) > 500
        text = body.decode("utf-8")
        # the only URL is the SVG namespace (a name, never fetched)
        assert set(re.findall(r"https?://[^\s'\"]+", text)) <= {"http://www.w3.org/2000/svg"}
        assert "@import" not in text and "url(" not in text
    assert not re.search(r"https?://", html)


def test_models_lists_settings_and_curves(served):
    app, client, paths, _ = served
    status, d = client.json("GET", "/api/models")
    assert status == 200
    assert [m["label"] for m in d["models"]] == ["GRU", "LSTM", "Nested LSTM", "GRU (trained)"] or \
        [m["label"] for m in d["models"]] == ["GRU (gru)", "LSTM", "Nested LSTM", "GRU (trained)"]
    assert d["max_chars"] == MAX_CHARS and d["log_decades"] == 4.0
    gru = d["models"][0]
    assert gru["unit"] == "gru" and gru["step"] == 5 and gru["model"]["layers"] == 2 and gru["file"] == "gru.h5"
    assert gru["settings"]["lr"] == 0.02
    assert gru["curves"]["train_step"] == [1, 2, 3, 4, 5] and gru["curves"]["val_loss"] == [2.2]
    assert gru["parameters"] == Model(unit="gru", hidden=6, layers=2, output_vocab=len(NAMES)).parameter_counts()
    trained = d["models"][3]
    assert trained["settings"]["vocab_size"] == 12 and len(trained["curves"]["train_loss"]) == 3


def test_training_curves_are_averaged_into_buckets():
    hist = {"train_step": np.arange(1, 1001), "train_loss": np.arange(1, 1001, dtype=float),
            "val_step": np.array([500, 1000]), "val_loss": np.array([2.0, np.nan])}
    c = A.training_curves(hist, max_points=10)
    assert len(c["train_step"]) == 10 and c["train_step"][0] == 50.5 and c["train_loss"][-1] == 950.5
    assert c["val_step"] == [500.0] and c["val_loss"] == [2.0]


def test_complete_equals_the_library_for_every_model(served):
    app, client, paths, _ = served
    status, d = client.json("POST", "/api/complete", {"text": TEXT, "k": 3})
    assert status == 200
    enc = A.encode_text(TEXT)
    assert d["text"] == enc.chars and d["words"] == enc.words and d["letters_seen"][:5] == [0, 1, 2, 3, 0]
    assert len(d["models"]) == len(paths)
    for m, path in zip(d["models"], paths):
        ck = load_checkpoint(path, impl="reference")
        want = A.complete(ck.model, ck.output_words, TEXT, k=3)
        assert len(m["predictions"]) == len(enc)
        for t, row in enumerate(want):
            assert [w for w, _ in m["predictions"][t]] == [w for w, _ in row.predictions]
            np.testing.assert_allclose([p for _, p in m["predictions"][t]], [p for _, p in row.predictions], rtol=1e-6)
            assert m["target_probability"][t] == pytest.approx(row.target_probability, rel=1e-6)
            assert m["in_vocabulary"][t] == (row.target >= 2)


def test_while_typing_a_trailing_space_counts_and_the_last_word_has_no_correct_word(served):
    app, client, paths, _ = served
    for text, chars, open_from in (("the cat sa", " the cat sa", 8), ("the cat sat ", " the cat sat ", 12)):
        status, d = client.json("POST", "/api/complete", {"text": text, "k": 3, "typing": True})
        assert status == 200 and d["text"] == chars
        assert d["typing"] == [t >= open_from for t in range(len(chars))]
        enc = A.encode_text(text, typing=True)
        for m, path in zip(d["models"], paths):
            ck = load_checkpoint(path, impl="reference")
            want = A.complete(ck.model, ck.output_words, enc, k=3)
            assert [[w for w, _ in row] for row in m["predictions"]] == [[w for w, _ in r.predictions] for r in want]
            assert m["in_vocabulary"][open_from:] == [False] * (len(chars) - open_from)
        status, c = client.json("POST", "/api/connectivity", {"text": text, "at": len(chars) - 1, "typing": True})
        assert status == 200 and c["typing"] and {m["class_source"] for m in c["models"]} == {"typing"}
    # the same text, not typed: the last word is the correct word, and the cached answers do not mix
    status, c = client.json("POST", "/api/connectivity", {"text": "the cat sa", "at": 10})
    assert status == 200 and not c["typing"] and {m["class_source"] for m in c["models"]} == {"predicted"}
    status, c = client.json("POST", "/api/connectivity", {"text": "the cat sat", "at": 10})
    assert [m["class"] for m in c["models"]] == ["sat"] * 3 + [c["models"][3]["class"]]
    assert {m["class_source"] for m in c["models"][:3]} == {"target"}


def test_a_keystroke_costs_one_step_and_an_unchanged_text_nothing(served):
    app, client, _, _ = served
    live = app.models[0].live
    typed = "a dog sat"
    client.json("POST", "/api/complete", {"text": "q"})    # the leading space is read once for every text
    for i in range(1, len(typed) + 1):
        before = live.steps_run
        status, d = client.json("POST", "/api/complete", {"text": typed[:i]})
        assert status == 200
        new_chars = 1
        if typed[i - 1] == " ":
            new_chars = 0                      # a trailing space is not read until a letter follows it
        elif i > 1 and typed[i - 2] == " ":
            new_chars = 2                      # the space, then the letter
        assert live.steps_run - before == new_chars, typed[:i]
    before = live.steps_run
    _, _, first = client.request("POST", "/api/complete", {"text": typed})
    _, _, again = client.request("POST", "/api/complete", {"text": typed})
    _, _, shorter = client.request("POST", "/api/complete", {"text": typed[:-1]})  # backspace
    assert first == again and live.steps_run == before
    assert json.loads(shorter)["text"] == " a dog sa"


def test_connectivity_equals_the_library(served):
    app, client, paths, _ = served
    for text, at, source in ((TEXT, 11, "target"), ("the cat sat on the zebra", 24, "predicted")):
        status, d = client.json("POST", "/api/connectivity", {"text": text, "at": at})
        assert status == 200 and d["at"] == at and d["text"] == A.encode_text(text).chars
        for m, path in zip(d["models"][:3], paths):
            ck = load_checkpoint(path, impl="reference")
            res = A.connectivity(ck.model, ck.output_words, text, at=at)
            assert m["class"] == res.cls_word and m["class_source"] == res.cls_source == source
            np.testing.assert_allclose(m["values"], res.values[: at + 1], rtol=1e-5)
            assert m["max"] == max(m["values"]) > 0
    maps = len(app.models[0].live.maps)
    client.json("POST", "/api/connectivity", {"text": TEXT + " and", "at": 11})   # same prefix, same class
    assert len(app.models[0].live.maps) == maps


BAD_JSON = [
    ("/api/complete", {"text": "x" * (MAX_CHARS + 1)}, "the limit is 60"),
    ("/api/complete", {"text": "1 " * 25}, "as the model reads it"),
    ("/api/complete", {"text": "!!! ?"}, "no letters"),
    ("/api/complete", {"text": ""}, "no letters"),
    ("/api/complete", {"text": 5}, "'text' must be a string"),
    ("/api/complete", {}, "'text' must be a string"),
    ("/api/complete", {"text": "the", "k": "3"}, "'k' must be an integer"),
    ("/api/complete", {"text": "the", "k": True}, "'k' must be an integer"),
    ("/api/complete", {"text": "the", "k": 0}, "between 1 and 10"),
    ("/api/complete", {"text": "the", "k": 11}, "between 1 and 10"),
    ("/api/complete", {"text": "the", "path": "/etc/passwd"}, "does not take 'path'"),
    ("/api/complete", ["the"], "JSON object"),
    ("/api/complete", "not json", "JSON object"),
    ("/api/complete", b"\xff\xfe{}", "JSON object"),
    ("/api/connectivity", {"text": "the cat"}, "'at' (the output position) is required"),
    ("/api/connectivity", {"text": "the cat", "at": 8}, "outside the text"),
    ("/api/connectivity", {"text": "the cat", "at": -1}, "outside the text"),
    ("/api/connectivity", {"text": "the cat", "at": 1.5}, "'at' must be an integer"),
    ("/api/connectivity", {"text": "the cat", "at": None}, "'at' must be an integer"),
    ("/api/connectivity", {"text": "?", "at": 0}, "no letters"),
    ("/api/complete", {"text": "the", "typing": "yes"}, "'typing' must be true or false"),
]


@pytest.mark.parametrize("path,body,message", BAD_JSON)
def test_bad_json_requests_get_one_clear_error(served, path, body, message):
    _, client, _, _ = served
    status, d = client.json("POST", path, body)
    assert status == 400 and list(d) == ["error"] and message in d["error"], d
    assert "\n" not in d["error"] and "Traceback" not in d["error"]


BAD_HTTP = [
    ("GET", "/etc/passwd", None, {}, 404),
    ("GET", "/../setup.cfg", None, {}, 404),
    ("GET", "/%2e%2e/setup.cfg", None, {}, 404),
    ("GET", "/serve_page/app.js", None, {}, 404),
    ("GET", "/minirnn/study/serve.py", None, {}, 404),
    ("GET", "/api/complete", None, {}, 405),
    ("POST", "/", {"text": "the"}, {}, 405),
    ("POST", "/api/models", {"text": "the"}, {}, 405),
    ("PUT", "/api/complete", {"text": "the"}, {}, 501),
    ("DELETE", "/", None, {}, 501),
    ("POST", "/api/complete", '{"text": "the"}', {"Content-Type": "text/plain"}, 415),
    ("GET", "/", None, {"Host": "attacker.example:80"}, 403),
    ("GET", "/api/models?x=1", None, {}, 400),
    ("GET", "/api/accuracy", None, {}, 400),
    ("GET", "/api/accuracy?model=x", None, {}, 400),
    ("GET", "/api/accuracy?model=-1", None, {}, 400),
    ("GET", "/api/accuracy?model=9", None, {}, 400),
    ("GET", "/api/accuracy?model=1&model=2", None, {}, 400),
    ("GET", "/api/accuracy?model=0&path=/etc/passwd", None, {}, 400),
]


@pytest.mark.parametrize("method,path,body,headers,code", BAD_HTTP)
def test_bad_http_requests_get_one_json_error(served, method, path, body, headers, code):
    _, client, _, _ = served
    status, d = client.json(method, path, body, headers)
    assert status == code and list(d) == ["error"] and d["error"], d


def test_malformed_and_oversized_requests_get_json_errors(served):
    _, client, _, _ = served
    assert "error" in client.raw(b"GARBAGE\r\n\r\n")[1]
    status, d = client.raw(b"GET / HTTP/1.1 extra\r\n\r\n")
    assert status in (0, 400) and "Bad request" in d["error"]
    status, d = client.raw(b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
    assert status == 414 and "error" in d
    host = f"Host: 127.0.0.1:{client.port}\r\n".encode()
    status, d = client.raw(b"POST /api/complete HTTP/1.1\r\n" + host + b"Content-Type: application/json\r\n"
                           b"Content-Length: 10000000\r\n\r\n")
    assert status == 413 and "limit" in d["error"]
    status, d = client.raw(b"POST /api/complete HTTP/1.1\r\n" + host + b"Content-Type: application/json\r\n"
                           b"Connection: close\r\n\r\n")
    assert status == 411
    status, d = client.raw(b"POST /api/complete HTTP/1.1\r\n" + host + b"Content-Type: application/json\r\n"
                           b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert status == 411
    status, d = client.raw(b"POST /api/complete HTTP/1.1\r\n" + host + b"Content-Type: application/json\r\n"
                           b"Content-Length: x\r\nConnection: close\r\n\r\n")
    assert status == 400
    # ... and the server still answers
    assert client.json("POST", "/api/complete", {"text": "the"})[0] == 200


def test_a_bug_in_a_request_is_a_500_and_the_server_goes_on(served, monkeypatch):
    app, client, _, _ = served

    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(app.models[1].live, "complete", broken)
    status, d = client.json("POST", "/api/complete", {"text": "a brand new text"})
    assert status == 500 and d == {"error": "internal error: RuntimeError: boom"}
    monkeypatch.undo()
    assert client.json("POST", "/api/complete", {"text": "a brand new text"})[0] == 200


def test_accuracy_is_computed_once_and_errors_are_reported(served):
    app, client, paths, calls = served

    def poll(i):
        for _ in range(600):
            status, d = client.json("GET", f"/api/accuracy?model={i}")
            assert status == 200 and d["id"] == i
            if d["state"] != "computing":
                return d
            time.sleep(0.05)
        raise AssertionError("the evaluation did not finish")

    d = poll(3)
    assert d["state"] == "done" and d["source"] == "evaluated on the test split", d
    from minirnn.study.evaluate import evaluate_checkpoint

    want = evaluate_checkpoint(paths[3], split="test")
    ev = d["evaluation"]
    assert ev["observations"] == want["observations"] and ev["accuracy"] == pytest.approx(want["accuracy"])
    assert ev["by_letters"]["top1"][:3] == pytest.approx(want["by_letters"]["top1"][:3])
    assert poll(3) == d and calls.count(3) == 1          # cached: computed once
    bad = poll(0)
    assert bad["state"] == "error" and "lacks the data setting" in bad["error"] and "gru.h5" in bad["error"]


# --------------------------------------------------------------------------- CLI

def test_serve_cli_errors_are_one_line(tmp_path, served):
    _, client, paths, _ = served
    r = CliRunner().invoke(cli, ["serve", str(tmp_path / "missing.h5")])
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert [line for line in r.output.splitlines() if line.startswith("Error")][0].count("does not exist") == 1
    r = CliRunner().invoke(cli, ["serve", paths[0], "--port", str(client.port)])   # the port is taken
    assert r.exit_code != 0 and "cannot listen on 127.0.0.1" in r.output and "Traceback" not in r.output


@pytest.mark.parametrize("signum, name", [(signal.SIGINT, "Ctrl-C (SIGINT)"), (signal.SIGTERM, "SIGTERM")])
def test_serve_command_end_to_end(served, signum, name):
    """The real command in its own process: prints its address, answers, stops at once on Ctrl-C or SIGTERM."""
    _, _, paths, _ = served
    proc = subprocess.Popen([sys.executable, "-m", "minirnn", "serve", paths[0], paths[2], "--port", "0"],
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        line = proc.stderr.readline()
        m = re.search(r"serving GRU, Nested LSTM at http://127\.0\.0\.1:(\d+)/", line)
        assert m, line
        status, d = Client(int(m.group(1))).json("POST", "/api/complete", {"text": TEXT})
        assert status == 200 and len(d["models"]) == 2
    finally:
        proc.send_signal(signum)
        rest = proc.communicate(timeout=30)[1]
    assert proc.returncode == 0 and rest.splitlines() == [f"stopped by {name}"], rest
