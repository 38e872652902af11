"""`minirnn read` in a real browser: headless Chromium clicks tags and presses keys (real input
events over the DevTools protocol, tests/test_serve_chromium.py's Browser), and the page talks to a
real server on 127.0.0.1.  Skipped where Debian's ``chromium`` is not installed."""
from __future__ import annotations

import json
import threading

import pytest

from minirnn.study import reader

from minirnn.study import tag_index
from minirnn.gradcheck import DEFAULT_TOLERANCE
from minirnn.study.serve import make_server

from test_serve_chromium import CHROMIUM, Browser

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")

TAGS = tag_index.page_tags("lstm")
SELECTED = "document.body.getAttribute('data-tag')"
SITES = """Array.from(document.querySelectorAll('#sites .path')).map(function (p) {
    return [p.getAttribute('data-path'), Array.from(p.querySelectorAll('.site')).map(function (s) {
      return [s.getAttribute('data-file'), s.getAttribute('data-lines')]; })]; })"""


def selected_on_both_sides(browser):
    """The selected tag, as the header, the code panel, the doc's highlighted tags and equations say it."""
    return browser.js("""(function () {
        var doc = Array.from(document.querySelectorAll('#doc .tag.sel')).map(function (e) { return e.getAttribute('data-tag'); });
        var eqs = Array.from(document.querySelectorAll('#doc .eq.sel')).map(function (e) { return e.getAttribute('data-tags'); });
        var code = Array.from(document.querySelectorAll('#sites .tag.sel')).map(function (e) { return e.getAttribute('data-tag'); });
        return {body: document.body.getAttribute('data-tag'), title: document.getElementById('code-title').textContent,
                doc: doc, eqs: eqs, code: code}; })()""")


def click(browser, selector):
    """A real mouse click on the element, scrolled into view first (both panels scroll)."""
    browser.js(f"document.querySelector({json.dumps(selector)}).scrollIntoView({{block: 'center'}})")
    browser.click(selector)


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    folder = tmp_path_factory.mktemp("read-browser")
    server = make_server(reader.ReaderApp(), "127.0.0.1", 0)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    browser = Browser(folder / "profile")
    try:
        browser.open(server.url + "#lstm")
        browser.wait("document.body.getAttribute('data-state') === 'ready'")
        yield browser, folder
    finally:
        browser.close()
        server.shutdown()
        server.server_close()


def test_every_tag_is_linked_and_the_arrow_keys_step_through_them_in_order(page):
    browser, _ = page
    assert len(TAGS) == 13
    linked = browser.js("Array.from(new Set(Array.from(document.querySelectorAll('#doc .tag')).map("
                        "function (e) { return e.getAttribute('data-tag'); })))")
    assert sorted(linked) == sorted(TAGS)
    assert browser.js(SELECTED) == TAGS[0]
    view = reader.unit_view("lstm")
    browser.js("document.getElementById('doc').focus()")
    for i, tag in enumerate(TAGS):
        if i:
            browser.key(key="ArrowRight", code="ArrowRight", vk=39)
        browser.wait(f"{SELECTED} === {json.dumps(tag)}")
        # the code panel shows the three paths, each with the lines the index finds for the tag
        want = [[p, [[s["file"], " ".join(map(str, s["lines"]))] for s in view["sites"][tag][p]]]
                for p in tag_index.PATHS]
        assert browser.js(SITES) == want
        assert all(sites for _, sites in want)
    browser.key(key="ArrowRight", code="ArrowRight", vk=39)              # past the last tag: stays
    assert browser.js(SELECTED) == TAGS[-1]
    browser.key(key="ArrowLeft", code="ArrowLeft", vk=37)
    browser.wait(f"{SELECTED} === {json.dumps(TAGS[-2])}")


def test_clicking_a_tag_in_the_equations_or_in_the_code_selects_it_on_both_sides(page):
    browser, _ = page
    click(browser, "#doc pre .tag[data-tag=LSTM-B5]")
    browser.wait(f"{SELECTED} === 'LSTM-B5'")
    s = selected_on_both_sides(browser)
    assert s["title"] == "LSTM-B5" and s["code"] and set(s["doc"]) == set(s["code"]) == {"LSTM-B5"}
    assert s["eqs"] and all("LSTM-B5" in e.split() for e in s["eqs"])
    # a tag inside a code snippet: [LSTM-B4] is cited on a context line of [LSTM-B5]'s reference snippet
    click(browser, "#sites .path[data-path=reference] .tag[data-tag=LSTM-B4]")
    browser.wait(f"{SELECTED} === 'LSTM-B4'")
    s = selected_on_both_sides(browser)
    assert s["title"] == "LSTM-B4" and set(s["doc"]) == set(s["code"]) == {"LSTM-B4"} and s["eqs"]


def test_the_check_button_of_lstm_b7_reports_an_error_below_the_floor(page):
    browser, _ = page
    click(browser, "#doc pre .tag[data-tag=LSTM-B7]")
    browser.wait(f"{SELECTED} === 'LSTM-B7'")
    click(browser, "#check-button")
    state = browser.wait("(function (s) { return s === 'passed' || s === 'failed' || s === 'error' ? s : null; })"
                         "(document.getElementById('check').getAttribute('data-state'))", timeout=60)
    assert state == "passed"
    worst = float(browser.js("document.getElementById('check').getAttribute('data-worst')"))
    assert 0 < worst < DEFAULT_TOLERANCE
    rows = browser.js("Array.from(document.querySelectorAll('#check-table tr[data-tensor]')).map(function (r) {"
                      " return [r.getAttribute('data-path'), r.getAttribute('data-tensor'),"
                      " parseFloat(r.getAttribute('data-error'))]; })")
    assert [(p, n) for p, n, _ in rows] == [("reference", "W"), ("reference", "b"), ("cpu", "W"), ("cpu", "b")]
    assert max(e for _, _, e in rows) == worst
    assert browser.js("document.getElementById('check-summary').textContent").startswith("passed: worst relative error")


def test_a_forward_tag_has_no_button_and_a_static_folder_says_the_check_needs_the_server(page):
    browser, folder = page
    click(browser, "#doc pre .tag[data-tag=LSTM-F3]")
    browser.wait(f"{SELECTED} === 'LSTM-F3'")
    assert browser.js("document.getElementById('check-button')") is None
    out = folder / "static"
    reader.write_static(out, ["lstm"])
    browser.open((out / "index.html").as_uri() + "#lstm/LSTM-B7")
    browser.wait("document.body.getAttribute('data-state') === 'ready'")
    assert browser.js(SELECTED) == "LSTM-B7"
    assert browser.js("document.getElementById('check-button').disabled") is True
    assert "needs the live server" in browser.js("document.getElementById('check').textContent")
    assert browser.js(SITES)[0][1]                                          # the code is in the folder
