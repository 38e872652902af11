"""Showing connectivity: a coloured heat map in the terminal and a self-contained HTML page.

Values are shown relative to the largest value of the map (the colour of a
character is its connectivity divided by the maximum over the positions shown),
on a ``linear`` scale (the definition itself) or a ``log`` scale (connectivity
typically falls by orders of magnitude with distance; the log scale shows four
decades, 1e-4 .. 1, of the maximum).

The HTML page is one file: inline CSS, inline JavaScript, the data as inline
JSON; it loads nothing from the network and names no external font.
"""
from __future__ import annotations

import html
import json
import math
import os

import numpy as np

SCALES = ("linear", "log")
LOG_DECADES = 4.0

#: 256-colour palette indices, from white (no influence) through yellow and orange to red.
RAMP_256 = (231, 230, 229, 228, 227, 226, 220, 214, 208, 202, 196)
#: Characters of the plain (no-colour) fallback, from none to most.
PLAIN_LEVELS = " .:-=+*#%@"
def ansi(text: str, bg, fg_black: bool = False, bold: bool | None = None, underline: bool | None = None) -> str:
    """``text`` with ANSI SGR codes: background ``bg`` (an (r, g, b) triple, or a 256-colour index),
    black foreground, bold and underline on or off; reset after.  (A string: printing is the CLI's.)"""
    codes = ["30"] if fg_black else []
    codes.append("48;2;{};{};{}".format(*bg) if isinstance(bg, tuple) else f"48;5;{int(bg)}")
    if bold is not None:
        codes.append("1" if bold else "22")
    if underline is not None:
        codes.append("4" if underline else "24")
    return "".join(f"\x1b[{c}m" for c in codes) + text + "\x1b[0m"


#: True-colour ramp end points (white -> yellow -> red).
_RGB_STOPS = ((255, 255, 255), (255, 230, 80), (230, 40, 30))


def relative(values, vmax: float | None = None, scale: str = "linear") -> np.ndarray:
    """Values mapped to [0, 1] relative to ``vmax`` (default: their maximum) on ``scale``."""
    if scale not in SCALES:
        raise ValueError(f"unknown scale {scale!r}; choose one of {', '.join(SCALES)}")
    v = np.asarray(values, dtype=np.float64)
    top = float(v.max()) if vmax is None and v.size else float(vmax or 0.0)
    if top <= 0 or not math.isfinite(top):
        return np.zeros_like(v)
    r = np.clip(v / top, 0.0, 1.0)
    if scale == "log":
        with np.errstate(divide="ignore"):
            r = np.where(r > 0, np.clip(1.0 + np.log10(np.maximum(r, 1e-300)) / LOG_DECADES, 0.0, 1.0), 0.0)
    return r


def rgb(level: float) -> tuple[int, int, int]:
    """Colour of a relative level in [0, 1] on the white -> yellow -> red ramp."""
    level = min(max(float(level), 0.0), 1.0)
    if level <= 0.5:
        a, b, f = _RGB_STOPS[0], _RGB_STOPS[1], level / 0.5
    else:
        a, b, f = _RGB_STOPS[1], _RGB_STOPS[2], (level - 0.5) / 0.5
    return tuple(int(round(x + (y - x) * f)) for x, y in zip(a, b))


def truecolor_supported() -> bool:
    return os.environ.get("COLORTERM", "").lower() in ("truecolor", "24bit")


def _lines(chars: str, width: int) -> list[tuple[int, int]]:
    """Split positions 0..len-1 into lines of at most ``width`` characters, breaking before spaces."""
    spans, start = [], 0
    n = len(chars)
    while start < n:
        end = min(start + width, n)
        if end < n:
            cut = chars.rfind(" ", start + 1, end + 1)
            if cut > start:
                end = cut
        spans.append((start, end))
        start = end
    return spans


def terminal_heatmap(chars: str, values, at: int, color: bool = True, truecolor: bool | None = None,
                     scale: str = "linear", width: int = 72) -> str:
    """The text with each character's background coloured by its connectivity.

    The output position ``at`` is shown bold and underlined.  With ``color=False``
    each text line is followed by a line of level marks (``PLAIN_LEVELS``, a
    blank = none, ``@`` = the maximum) and the output position is marked ``^``.
    """
    rel = relative(values, scale=scale)
    truecolor = truecolor_supported() if truecolor is None else truecolor
    out = []
    for start, end in _lines(chars, width):
        if color:
            pieces = []
            for t in range(start, end):
                level = rel[t]
                bg = rgb(level) if truecolor else RAMP_256[int(round(level * (len(RAMP_256) - 1)))]
                ch = chars[t] if chars[t] != " " else " "
                pieces.append(ansi(ch, bg, fg_black=True, bold=(t == at), underline=(t == at)))
            out.append("".join(pieces))
        else:
            out.append(chars[start:end])
            marks = "".join(PLAIN_LEVELS[int(round(rel[t] * (len(PLAIN_LEVELS) - 1)))] for t in range(start, end))
            out.append(marks.rstrip())
            if start <= at < end:
                out.append(" " * (at - start) + "^")
    return "\n".join(out)


def legend(color: bool = True, truecolor: bool | None = None, scale: str = "linear") -> str:
    """One line explaining the colours."""
    low, high = ("1e-4 x max", "max") if scale == "log" else ("0", "max")
    if not color:
        return f"levels '{PLAIN_LEVELS}' run from {low} to {high} ({scale} scale); ^ marks the output position"
    truecolor = truecolor_supported() if truecolor is None else truecolor
    steps = np.linspace(0.0, 1.0, 11)
    bar = "".join(ansi(" ", rgb(s) if truecolor else RAMP_256[int(round(s * 10))]) for s in steps)
    return f"{low} {bar} {high} ({scale} scale); the output position is bold and underlined"


# ----------------------------------------------------------------------------- HTML

_CSS = """
body { font-family: monospace; margin: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.2em; }
#text { line-height: 2.1; font-size: 1.25em; max-width: 60em; word-wrap: break-word; white-space: pre-wrap; }
#text span.c { cursor: pointer; padding: 0.15em 0; border-bottom: 2px solid transparent; }
#text span.c.sel { outline: 2px solid #1040c0; border-bottom-color: #1040c0; font-weight: bold; }
#panel { margin-top: 1.2em; padding: 0.8em 1em; border: 1px solid #bbb; background: #fff; max-width: 60em; min-height: 8em; }
#panel table { border-collapse: collapse; margin-top: 0.4em; }
#panel td, #panel th { padding: 0.1em 0.9em 0.1em 0; text-align: left; }
#legend { margin-top: 0.6em; font-size: 0.9em; color: #555; }
#bar { display: inline-block; width: 12em; height: 0.9em; vertical-align: middle;
       background: linear-gradient(to right, rgb(255,255,255), rgb(255,230,80), rgb(230,40,30)); border: 1px solid #999; }
.muted { color: #777; }
"""

_JS = r"""
(function () {
  var D = JSON.parse(document.getElementById('minirnn-data').textContent);
  var textEl = document.getElementById('text');
  var panel = document.getElementById('panel');
  var scaleEl = document.getElementById('scale');
  var spans = [];
  var pinned = null;
  function stops(l) {
    var a, b, f;
    if (l <= 0.5) { a = [255, 255, 255]; b = [255, 230, 80]; f = l / 0.5; }
    else { a = [255, 230, 80]; b = [230, 40, 30]; f = (l - 0.5) / 0.5; }
    return 'rgb(' + [0, 1, 2].map(function (i) { return Math.round(a[i] + (b[i] - a[i]) * f); }).join(',') + ')';
  }
  function rel(v, vmax) {
    if (!(vmax > 0)) return 0;
    var r = Math.min(Math.max(v / vmax, 0), 1);
    if (scaleEl.value === 'log') r = r > 0 ? Math.min(Math.max(1 + Math.log10(r) / D.log_decades, 0), 1) : 0;
    return r;
  }
  function row(n) {  // connectivity of output n to inputs 0..n (stored as 0..999 of the row maximum)
    var q = D.rows[n], m = D.row_max[n], out = [];
    for (var i = 0; i < q.length; i++) out.push(q[i] * m / 999);
    return out;
  }
  function esc(s) { return String(s).replace(/[&<>"]/g, function (c) { return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;'}[c]; }); }
  function show(n) {
    var vals = row(n), vmax = D.row_max[n];
    for (var t = 0; t < spans.length; t++) {
      spans[t].style.background = t <= n ? stops(rel(vals[t], vmax)) : 'transparent';
      spans[t].classList.toggle('sel', t === n);
      spans[t].title = t <= n ? ('position ' + t + ': connectivity ' + vals[t].toExponential(3)) : ('position ' + t + ' (after the output)');
    }
    var c = D.completions[n];
    var ch = D.chars[n] === ' ' ? 'space' : "'" + D.chars[n] + "'";
    var h = '<div id="selected-info" data-position="' + n + '"><b>position ' + n + '</b> (' + ch + ', ' + c.letters_seen +
      ' letter' + (c.letters_seen === 1 ? '' : 's') + ' of <b>' + esc(c.word) + '</b> seen)</div>';
    h += '<div>differentiated logit: <b>' + esc(D.classes[n]) + '</b> <span class="muted">(' +
      (D.sources[n] === 'target' ? 'the correct word' : 'the prediction: the correct word is not in the vocabulary') +
      '); maximum connectivity ' + vmax.toExponential(3) + '</span></div>';
    h += '<table><tr><th>rank</th><th>word</th><th>probability</th></tr>';
    for (var i = 0; i < c.predictions.length; i++) {
      var p = c.predictions[i];
      var mark = p.word === c.word ? ' &#10003;' : '';
      h += '<tr><td>' + (i + 1) + '</td><td>' + esc(p.word) + mark + '</td><td>' + (100 * p.probability).toFixed(2) + '%</td></tr>';
    }
    h += '</table>';
    if (!c.in_vocabulary) h += '<div class="muted">the word at this position is not in the vocabulary (target &lt;unknown&gt;)</div>';
    else h += '<div class="muted">probability of the correct word: ' + (100 * c.target_probability).toFixed(2) + '%</div>';
    panel.innerHTML = h;
  }
  function select(n) {
    pinned = n;
    document.body.setAttribute('data-selected', String(n));
    show(n);
  }
  for (var t = 0; t < D.chars.length; t++) {
    var s = document.createElement('span');
    s.className = 'c';
    s.id = 'c' + t;
    s.textContent = D.chars[t] === ' ' ? '\u00a0' : D.chars[t];
    (function (t) {
      s.addEventListener('mouseenter', function () { show(t); });
      s.addEventListener('mouseleave', function () { if (pinned !== null) show(pinned); });
      s.addEventListener('click', function () { select(t); });
    })(t);
    textEl.appendChild(s);
    spans.push(s);
  }
  scaleEl.addEventListener('change', function () { if (pinned !== null) show(pinned); });
  function fromHash() {
    var m = /select=(-?\d+)/.exec(window.location.hash || '');
    if (!m) return false;
    var n = parseInt(m[1], 10);
    if (n < 0) n += D.chars.length;
    if (n < 0 || n >= D.chars.length) return false;
    spans[n].click();  // exactly what a click does
    return true;
  }
  window.addEventListener('hashchange', fromHash);
  if (!fromHash()) select(D.initial);
  window.minirnnSelect = select;
})();
"""


def _quantise(matrix: np.ndarray) -> tuple[list, list]:
    """Rows N -> (ints 0..999 of the row maximum for inputs 0..N, the row maximum)."""
    rows, maxima = [], []
    for n in range(matrix.shape[0]):
        r = np.asarray(matrix[n, : n + 1], dtype=np.float64)
        m = float(r.max()) if r.size else 0.0
        maxima.append(m if math.isfinite(m) else 0.0)
        rows.append([] if m <= 0 else np.rint(r / m * 999).astype(int).tolist())
        if m <= 0:
            rows[-1] = [0] * (n + 1)
    return rows, maxima


def connectivity_html(data: dict, title: str = "minirnn connectivity", initial: int | None = None,
                      scale: str = "linear", subtitle: str = "") -> str:
    """One self-contained HTML page from :func:`minirnn.study.analysis.page_data`'s dict.

    Hovering a character previews its connectivity map and predictions; clicking
    pins it.  The fragment ``#select=N`` selects position N on load as a click does.
    """
    chars = data["chars"]
    rows, maxima = _quantise(np.asarray(data["matrix"]))
    payload = {
        "chars": chars, "rows": rows, "row_max": maxima, "classes": data["classes"], "sources": data["sources"],
        "completions": data["completions"], "log_decades": LOG_DECADES,
        "initial": int(len(chars) - 1 if initial is None else initial),
    }
    # JSON inside <script>: escape '<' so no '</script>' can end the block early.
    blob = json.dumps(payload, separators=(",", ":")).replace("<", "\\u003c")
    opts = "".join(f'<option value="{s}"{" selected" if s == scale else ""}>{s}</option>' for s in SCALES)
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{_CSS}</style>\n</head>\n"
        "<body data-selected=\"\">\n"
        f"<h1>{html.escape(title)}</h1>\n"
        f"<p class=\"muted\">{html.escape(subtitle)}</p>\n"
        "<p>Hover over a character to see how strongly each earlier character drives the prediction there; "
        "click to keep it selected. Colour = connectivity relative to the largest value of that map.</p>\n"
        f"<div id=\"text\"></div>\n<div id=\"legend\">0 <span id=\"bar\"></span> max &nbsp; scale: "
        f"<select id=\"scale\">{opts}</select></div>\n"
        "<div id=\"panel\"></div>\n"
        f"<noscript><pre>{html.escape(chars)}</pre><p>This page needs JavaScript to show the maps.</p></noscript>\n"
        f"<script type=\"application/json\" id=\"minirnn-data\">{blob}</script>\n"
        f"<script>{_JS}</script>\n</body>\n</html>\n"
    )
