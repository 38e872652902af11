"""The connectivity page in a real browser: headless Chromium renders it and reacts to a selection.

Skipped where Debian's ``chromium`` is not installed.  The page handles a URL
fragment ``#select=N`` at load by clicking character N (the same handler a
mouse click runs), so ``--dump-dom`` shows the state a click produces.
"""
from __future__ import annotations

import re
import shutil
import subprocess

import pytest

from minirnn.study import analysis as A
from minirnn.study import connectivity as heatmap
from minirnn.model import Model

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")

NAMES = ["<eos>", "<unknown>", "the", "cat", "sat", "on", "mat"]
TEXT = "the cat sat on the mat"


def _flags(tmp_path):
    return [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
            f"--user-data-dir={tmp_path / 'chromium-profile'}", "--virtual-time-budget=5000"]


@pytest.fixture(scope="module")
def page(tmp_path_factory):
    model = Model(unit="gru", hidden=6, layers=1, output_vocab=len(NAMES), seed=2, dtype="float32",
                  impl="reference")
    path = tmp_path_factory.mktemp("html") / "connectivity.html"
    data = A.page_data(model, NAMES, TEXT, k=3)
    path.write_text(heatmap.connectivity_html(data, title="browser test"), encoding="utf-8")
    return path


def _dump(tmp_path, url):
    out = subprocess.run(_flags(tmp_path) + ["--dump-dom", url], capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr[-2000:]
    return out.stdout


def test_page_renders_a_screenshot(page, tmp_path):
    shot = tmp_path / "shot.png"
    out = subprocess.run(_flags(tmp_path) + ["--window-size=900,600", f"--screenshot={shot}", page.as_uri()],
                         capture_output=True, text=True, timeout=90)
    assert out.returncode == 0, out.stderr[-2000:]
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 2000


def test_page_builds_the_text_and_selects_the_last_position_by_default(page, tmp_path):
    dom = _dump(tmp_path, page.as_uri())
    chars = A.encode_text(TEXT).chars
    spans = re.findall(r'<span class="c[^"]*" id="c(\d+)"[^>]*>([^<]*)</span>', dom)
    assert [int(i) for i, _ in spans] == list(range(len(chars)))
    assert "".join(c.replace("\u00a0", " ").replace("&nbsp;", " ") for _, c in spans) == chars
    last = len(chars) - 1
    assert f'data-selected="{last}"' in dom
    assert f'data-position="{last}"' in dom


def test_a_click_selects_a_character_and_shows_its_map(page, tmp_path):
    dom = _dump(tmp_path, page.as_uri() + "#select=5")
    assert 'data-selected="5"' in dom
    assert re.search(r'<span class="c sel" id="c5"', dom)
    assert len(re.findall(r'class="c sel"', dom)) == 1
    # the panel describes position 5 ('c' of 'cat') and its predictions
    panel = re.search(r'<div id="panel">(.*?)</div>\s*<noscript', dom, re.S).group(1)
    assert 'data-position="5"' in panel and "position 5</b>" in panel and "<b>cat</b>" in panel
    assert panel.count("<tr><td>") == 3
    # inputs 0..5 are coloured, later ones are not
    styles = dict(re.findall(r'id="c(\d+)" title="[^"]*" style="([^"]*)"', dom))
    assert all("rgb(" in styles[str(t)] for t in range(6))
    assert all("transparent" in styles[str(t)] for t in range(6, len(A.encode_text(TEXT).chars)))
