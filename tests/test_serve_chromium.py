"""`minirnn serve` in a real browser: headless Chromium types into the box, waits for the
suggestions, clicks a character and reads the heat maps from the DOM.

Chromium is driven over the DevTools protocol on a pipe (``--remote-debugging-pipe``:
JSON messages separated by NUL bytes on file descriptors 3 and 4), so keys and mouse
clicks are real input events dispatched by the browser, not JavaScript calls.  The
page talks to a real server on 127.0.0.1 (an ephemeral port).  Skipped where
Debian's ``chromium`` is not installed.
"""
from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from minirnn.study import analysis as A
from minirnn.training.checkpoint import load_checkpoint
from minirnn.study.serve import App, make_server

from test_serve import write_checkpoint

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")

TYPED = "The cat sat"
MAX_CHARS = 40


class Browser:
    """Headless Chromium and one page, over the DevTools protocol on a pipe."""

    def __init__(self, profile):
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
                 "--remote-debugging-pipe", f"--user-data-dir={profile}", "--window-size=1100,900", "about:blank"]
        # The protocol's file descriptors must be 3 (commands in) and 4 (answers out) in the browser:
        # a two-line Python exec wrapper moves them there (a shell only takes single-digit numbers).
        wrapper = ("import fcntl, os, sys; a, b = (fcntl.fcntl(int(x), fcntl.F_DUPFD, 10) for x in sys.argv[1:3]); "
                   "os.dup2(a, 3); os.dup2(b, 4); os.execv(sys.argv[3], sys.argv[3:])")
        self.proc = subprocess.Popen([sys.executable, "-c", wrapper, str(to_child_r), str(from_child_w), CHROMIUM]
                                     + flags, pass_fds=(to_child_r, from_child_w), stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(to_child_r)
        os.close(from_child_w)
        self._buf = b""
        self._id = 0
        self.session = None

    def send(self, method, params=None, session=True, timeout=30.0):
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session and self.session:
            msg["sessionId"] = self.session
        os.write(self._to_child, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" in self._buf:
                raw, self._buf = self._buf.split(b"\0", 1)
                answer = json.loads(raw)
                if answer.get("id") == self._id:
                    assert "error" not in answer, answer
                    return answer.get("result", {})
            left = deadline - time.monotonic()
            assert left > 0, f"no answer to {method}"
            ready, _, _ = select.select([self._from_child], [], [], left)
            if ready:
                chunk = os.read(self._from_child, 1 << 16)
                assert chunk, "chromium closed the protocol pipe"
                self._buf += chunk

    def open(self, url):
        target = self.send("Target.createTarget", {"url": url}, session=False)["targetId"]
        self.session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True},
                                 session=False)["sessionId"]

    def js(self, expression):
        r = self.send("Runtime.evaluate", {"expression": expression, "returnByValue": True, "awaitPromise": True})
        assert "exceptionDetails" not in r, r
        return r["result"].get("value")

    def wait(self, expression, timeout=30.0):
        deadline = time.monotonic() + timeout
        guarded = f"(function () {{ try {{ return ({expression}); }} catch (e) {{ return null; }} }})()"
        while time.monotonic() < deadline:
            value = self.js(guarded)           # null while the page is still loading
            if value:
                return value
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {expression}")

    def key(self, text=None, key=None, code=None, vk=None):
        """One key press: a character (typed into the focused element) or a named key."""
        down = {"type": "keyDown", "key": key or text, "code": code or "", "windowsVirtualKeyCode": vk or 0}
        if text is not None:
            down.update(text=text, unmodifiedText=text)
        self.send("Input.dispatchKeyEvent", down)
        self.send("Input.dispatchKeyEvent", {"type": "keyUp", "key": key or text, "code": code or "",
                                             "windowsVirtualKeyCode": vk or 0})

    def click(self, selector):
        x, y = self.js(f"(function () {{ var r = document.querySelector('{selector}').getBoundingClientRect();"
                       " return [r.left + r.width / 2, r.top + r.height / 2]; })()")
        for kind in ("mousePressed", "mouseReleased"):
            self.send("Input.dispatchMouseEvent", {"type": kind, "x": x, "y": y, "button": "left", "clickCount": 1})

    def close(self):
        try:
            self.send("Browser.close", session=False, timeout=10)
        except AssertionError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_child)
        os.close(self._from_child)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    folder = tmp_path_factory.mktemp("serve-browser")
    paths = [write_checkpoint(folder / f"{u}.h5", u) for u in ("gru", "lstm", "nlstm")]
    app = App.load(paths, max_chars=MAX_CHARS)
    server = make_server(app, "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser = Browser(folder / "profile")
    try:
        browser.open(server.url)
        browser.wait("document.body.getAttribute('data-state') === 'ready'")
        yield browser, paths
    finally:
        browser.close()
        server.shutdown()
        server.server_close()
        app.close()


SHOWN_TEXT = "document.getElementById('text').textContent.replace(/\\u00a0/g, ' ')"
STATE = "document.body.getAttribute('data-state')"


def test_typing_clicking_and_reading_the_heat_maps(setup):
    browser, paths = setup
    chars = A.encode_text(TYPED).chars                      # " the cat sat"
    browser.js("document.getElementById('input').focus()")
    for ch in TYPED:
        browser.key(text=ch)
    # the suggestions for the last character appear, one card per model
    browser.wait(f"{SHOWN_TEXT} === {json.dumps(chars)} && {STATE} === 'ready'")
    assert browser.js("document.getElementById('input').value") == TYPED
    last = len(chars) - 1
    assert browser.js("document.body.getAttribute('data-selected')") == str(last)
    cards = browser.js("""Array.from(document.querySelectorAll('.card.suggestion')).map(function (c) {
        return Array.from(c.querySelectorAll('tr')).map(function (r) {
          return [r.getAttribute('data-word'), parseFloat(r.getAttribute('data-probability')), r.className]; }); })""")
    assert len(cards) == 3
    for rows, path in zip(cards, paths):
        ck = load_checkpoint(path, impl="reference")
        want = A.complete(ck.model, ck.output_words, TYPED, k=3)[last]
        assert [w for w, _, _ in rows] == [w for w, _ in want.predictions]
        np.testing.assert_allclose([p for _, p, _ in rows], [p for _, p in want.predictions], rtol=1e-6)
        assert [cls for _, _, cls in rows] == ["", "", ""]      # "sat" may go on ("saturday"): no correct word yet

    # a real mouse click on character 5 ('c' of 'cat'): every model's map of output 5
    browser.click("#c5")
    browser.wait(f"document.getElementById('maps').getAttribute('data-at') === '5' && {STATE} === 'ready'")
    assert browser.js("document.querySelector('#text .sel').id") == "c5"
    assert "position 5" in browser.js("document.getElementById('selected-info').textContent")
    maps = browser.js("""Array.from(document.querySelectorAll('.card.conn')).map(function (c) {
        return {cls: c.getAttribute('data-class'), spans: Array.from(c.querySelectorAll('.map span')).map(function (s) {
          return [s.getAttribute('data-value'), s.style.backgroundColor, s.className]; })}; })""")
    assert len(maps) == 3
    for m, path in zip(maps, paths):
        ck = load_checkpoint(path, impl="reference")
        res = A.connectivity(ck.model, ck.output_words, TYPED, at=5)
        assert m["cls"] == res.cls_word == "cat"
        spans = m["spans"]
        assert len(spans) == len(chars)
        np.testing.assert_allclose([float(v) for v, _, _ in spans[:6]], res.values[:6], rtol=1e-5)
        assert all(v is None and bg == "" for v, bg, _ in spans[6:])          # after the output: no colour
        assert all(bg.startswith("rgb(") for _, bg, _ in spans[:6])
        strongest = int(np.argmax(res.values[:6]))
        assert spans[strongest][1] == "rgb(230, 40, 30)"                        # the maximum is the reddest
        assert [c for _, _, c in spans].index("at") == 5

    # arrow keys move the selection (the text strip has the focus after the click)
    browser.key(key="ArrowLeft", code="ArrowLeft", vk=37)
    browser.wait(f"document.getElementById('maps').getAttribute('data-at') === '4' && {STATE} === 'ready'")
    assert browser.js("document.body.getAttribute('data-selected')") == "4"

    # the log scale recolours without asking the server
    browser.js("var s = document.getElementById('scale'); s.value = 'log'; s.dispatchEvent(new Event('change'))")
    assert browser.js("document.querySelectorAll('.card.conn .map span')[0].style.backgroundColor") != ""


def test_too_long_a_text_is_one_clear_error_in_the_page(setup):
    browser, _ = setup
    browser.js("var i = document.getElementById('input'); i.focus(); i.select()")
    browser.send("Input.insertText", {"text": "word " * 10})             # 50 characters > 40
    msg = browser.wait("document.getElementById('error').hidden ? '' : document.getElementById('error').textContent")
    assert "the limit is 40" in msg and "Traceback" not in msg
    # fixing the text clears the error
    browser.js("var i = document.getElementById('input'); i.focus(); i.select()")
    browser.send("Input.insertText", {"text": "the mat"})
    browser.wait(f"document.getElementById('error').hidden && {SHOWN_TEXT} === ' the mat'")


def test_the_accuracy_and_checkpoint_sections_render(setup):
    browser, _ = setup
    states = browser.wait("""(function () { var r = Array.from(document.querySelectorAll('.accuracy-model'));
        return r.length === 3 && r.every(function (x) { return x.getAttribute('data-state') === 'error'; })
          ? r.map(function (x) { return x.textContent; }) : null; })()""")
    assert all("lacks the data setting" in s for s in states)      # made without a dataset: said in the page
    charts = browser.js("document.querySelectorAll('.card.checkpoint svg polyline').length")
    assert charts == 3


CARDS = """Array.from(document.querySelectorAll('.card.suggestion')).map(function (c) {
    return {words: Array.from(c.querySelectorAll('tr')).map(function (r) { return r.getAttribute('data-word'); }),
            correct: c.querySelectorAll('tr.correct').length, note: c.querySelector('.note').textContent}; })"""
MAPS = """Array.from(document.querySelectorAll('.card.conn')).map(function (c) {
    return {cls: c.getAttribute('data-class'), head: c.querySelector('h3').textContent,
            values: Array.from(c.querySelectorAll('.map span[data-value]')).map(function (s) {
              return parseFloat(s.getAttribute('data-value')); })}; })"""
NO_ERROR = "document.getElementById('error').hidden && !document.body.hasAttribute('data-error')"


def _retype(browser, text):
    """Select the box's text and type ``text`` over it with real key presses."""
    browser.js("var i = document.getElementById('input'); i.focus(); i.select()")
    for ch in text:
        browser.key(text=ch, code="Space" if ch == " " else "", vk=32 if ch == " " else 0)


def _models(paths):
    return [load_checkpoint(p, impl="reference") for p in paths]


def test_while_a_word_is_typed_the_page_says_so_and_maps_the_top_prediction(setup):
    browser, paths = setup
    _retype(browser, "The cat sa")
    enc = A.encode_text("The cat sa", typing=True)
    browser.wait(f"{SHOWN_TEXT} === {json.dumps(enc.chars)} && {STATE} === 'ready' && "
                 f"document.getElementById('maps').getAttribute('data-at') === '{len(enc) - 1}'")
    last = len(enc) - 1
    info = browser.js("document.getElementById('selected-info').textContent")
    assert "of the word being typed (sa\u2026) seen" in info, info
    assert browser.js("document.getElementById('selected-info').getAttribute('data-typing')") == "true"
    assert browser.js(NO_ERROR)
    maps = browser.js(MAPS)
    for card, m, ck in zip(browser.js(CARDS), maps, _models(paths)):
        want = A.complete(ck.model, ck.output_words, enc, k=3)[last]
        assert card["words"] == [w for w, _ in want.predictions] and card["correct"] == 0
        assert card["note"].startswith("typing \u201csa\u201d") and "not in the vocabulary" not in card["note"]
        res = A.connectivity(ck.model, ck.output_words, enc, at=last)
        assert res.cls_source == "typing" and m["cls"] == res.cls_word == want.predictions[0][0]
        assert "the top prediction while the word is being typed" in m["head"]
        np.testing.assert_allclose(m["values"], res.values[: last + 1], rtol=1e-5)


def test_a_trailing_space_predicts_the_next_word_and_finishes_the_last(setup):
    browser, paths = setup
    _retype(browser, "The cat sat ")
    enc = A.encode_text("The cat sat ", typing=True)
    assert enc.chars == " the cat sat "
    browser.wait(f"{SHOWN_TEXT} === {json.dumps(enc.chars)} && {STATE} === 'ready'")    # the space is kept
    last = len(enc) - 1
    assert browser.js("document.body.getAttribute('data-selected')") == str(last)
    assert "the next word, not typed yet" in browser.js("document.getElementById('selected-info').textContent")
    assert browser.js(NO_ERROR)
    for card, ck in zip(browser.js(CARDS), _models(paths)):
        want = A.complete(ck.model, ck.output_words, enc, k=3)[last]
        assert card["words"] == [w for w, _ in want.predictions] and card["correct"] == 0
        assert card["note"].startswith("after a space")
    # "sat" is finished now: its letters have a correct word again, and its maps are of "sat"
    browser.click("#c10")
    browser.wait(f"document.getElementById('maps').getAttribute('data-at') === '10' && {STATE} === 'ready'")
    assert browser.js("document.getElementById('selected-info').getAttribute('data-typing')") == "false"
    for card, m, ck in zip(browser.js(CARDS), browser.js(MAPS), _models(paths)):
        want = A.complete(ck.model, ck.output_words, enc, k=3)[10]
        assert card["correct"] == want.predictions.count(("sat", want.target_probability)) and "sat" in card["note"]
        assert m["cls"] == "sat" and "the correct word" in m["head"]


def test_the_heat_map_is_large_and_wraps_inside_its_card(setup):
    browser, _ = setup
    browser.send("Emulation.setDeviceMetricsOverride", {"width": 420, "height": 900, "deviceScaleFactor": 1,
                                                        "mobile": False})
    try:
        text = "the cat sat on the mat and the dog ran far"[:MAX_CHARS - 1]
        _retype(browser, text)
        browser.wait(f"{SHOWN_TEXT}.length === {len(A.encode_text(text, typing=True).chars)} && {STATE} === 'ready'"
                     " && document.querySelectorAll('.card.conn').length === 3")
        sizes = browser.js("""Array.from(document.querySelectorAll('.card.conn .map')).map(function (m) {
            var cs = getComputedStyle(m);
            return [parseFloat(cs.fontSize), parseFloat(cs.lineHeight), m.getBoundingClientRect().height,
                    m.scrollWidth, m.clientWidth]; })""")
        base = browser.js("parseFloat(getComputedStyle(document.body).fontSize)")
        for font, line, height, scroll, client in sizes:
            assert font >= 1.5 * base                       # larger than the body text
            assert height > 1.9 * line and scroll <= client  # two lines or more, nothing cut off at the right
    finally:
        browser.send("Emulation.clearDeviceMetricsOverride")
