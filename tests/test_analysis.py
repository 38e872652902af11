"""Completion, connectivity (against finite differences), heat maps, the HTML page, figures."""
from __future__ import annotations

import re
import sys

import numpy as np
import pytest

from minirnn.study import analysis as A
from minirnn.study import connectivity as heatmap
from minirnn.errors import MinirnnError
from minirnn.model import Model

WORDS = ["the", "cat", "sat", "on", "mat", "a", "dog"]
NAMES = ["<eos>", "<unknown>"] + WORDS
TEXT = "The cat sat on a mat"


def tiny(unit="lstm", layers=2, hidden=5, dtype="float64", seed=1):
    return Model(unit=unit, hidden=hidden, layers=layers, depth=2, output_vocab=len(NAMES), seed=seed,
                 dtype=dtype, impl="reference")


# ------------------------------------------------------------------------ text

def test_encode_text_is_the_models_input():
    enc = A.encode_text("The Cat, 1!")
    assert enc.chars == " the cat one"
    assert enc.ids.tolist()[:5] == [1, 21, 9, 6, 1]
    assert enc.words[0] == enc.words[3] == "the" and enc.words[4] == "cat" and enc.words[-1] == "one"
    assert [enc.letters_seen(t) for t in range(5)] == [0, 1, 2, 3, 0]
    assert enc.word_end(5) == 7
    with pytest.raises(MinirnnError):
        A.encode_text("!!! ?")


@pytest.mark.parametrize("text, chars, open_from", [
    ("The cat sa", " the cat sa", 8),         # the last word is being typed
    ("The cat sat ", " the cat sat ", 12),    # a trailing break is kept: the next word starts
    ("The cat sat.", " the cat sat ", 12),    # punctuation is a break too
    ("in 1984", " in one nine eight four ", 23),   # a digit is a whole word
])
def test_encode_text_while_typing(text, chars, open_from):
    enc = A.encode_text(text, typing=True)
    assert enc.chars == chars and enc.open_from == open_from
    assert [enc.typing(t) for t in range(len(enc))] == [t >= open_from for t in range(len(chars))]
    assert A.encode_text(text).chars == chars.rstrip() and not any(map(A.encode_text(text).typing, range(3)))
    vocab = A.Vocabulary(NAMES)
    assert [A.target_of(vocab, enc, t) for t in range(open_from, len(enc))] == [A.UNKNOWN] * (len(enc) - open_from)


def test_vocabulary_with_or_without_specials():
    assert A.Vocabulary(NAMES).names == NAMES
    assert A.Vocabulary(WORDS, len(NAMES)).names == NAMES
    v = A.Vocabulary(NAMES)
    assert v.class_of("cat") == 3 and v.class_of("zebra") == 1 and v.class_of("<eos>") == 1
    with pytest.raises(MinirnnError):
        A.Vocabulary(WORDS[:3], len(NAMES))


# ------------------------------------------------------------------- completion

def test_complete_gives_sorted_softmax_probabilities():
    m = tiny()
    rows = A.complete(m, NAMES, TEXT, k=4)
    enc = A.encode_text(TEXT)
    assert len(rows) == len(enc)
    logits = np.asarray(m.logits(enc.ids[None]))[0]
    p = np.exp(logits - logits.max(axis=1, keepdims=True))
    p /= p.sum(axis=1, keepdims=True)
    for r in rows:
        probs = [q for _, q in r.predictions]
        assert probs == sorted(probs, reverse=True)
        best = np.argsort(-p[r.index])[:4]
        assert [w for w, _ in r.predictions] == [NAMES[c] for c in best]
        np.testing.assert_allclose(probs, p[r.index, best], rtol=1e-12)
        assert r.target_probability == pytest.approx(p[r.index, r.target])
    assert rows[0].word == "the" and rows[0].letters_seen == 0 and rows[0].target == 2
    d = rows[-1].to_dict()
    assert d["word"] == "mat" and d["in_vocabulary"] and len(d["predictions"]) == 4
    # k larger than the vocabulary is clamped
    assert len(A.complete(m, NAMES, "a", k=100)[0].predictions) == len(NAMES)


# ----------------------------------------------------------------- connectivity

def _onehot_fd(model, ids, n, cls, eps=1e-6):
    """Central differences of logit_cls(n) along each one-hot direction at every position.

    Moving the one-hot input at tau along e_v moves X[tau] along E[v] (X = onehot E),
    so g_tau[v] = d logit / d onehot_tau[v] is a directional derivative in X.
    """
    E = np.asarray(model.params["embedding"])
    W, b = model.params["dense.W"], model.params["dense.b"]
    X0 = model.embed(ids[None])

    def logit(X):
        hs, _, _ = model.run_layers(X)
        return float(hs[n, 0] @ W[:, cls] + b[cls])

    out = np.zeros(len(ids))
    for tau in range(len(ids)):
        g = np.zeros(E.shape[0])
        for v in range(E.shape[0]):
            Xp, Xm = X0.copy(), X0.copy()
            Xp[tau, 0] += eps * E[v]
            Xm[tau, 0] -= eps * E[v]
            g[v] = (logit(Xp) - logit(Xm)) / (2 * eps)
        out[tau] = np.sum(g ** 2)
    return out


@pytest.mark.parametrize("unit,layers", [("gru", 2), ("lstm", 2), ("nlstm", 1)])
def test_connectivity_equals_finite_differences(unit, layers):
    m = tiny(unit, layers)
    enc = A.encode_text("the cat sat")
    res = A.connectivity(m, NAMES, enc, word="cat")
    assert res.at == 7 and res.cls_word == "cat" and res.cls_source == "target"
    fd = _onehot_fd(m, enc.ids, res.at, res.cls)
    scale = res.values.max()
    assert scale > 0
    assert np.max(np.abs(fd - res.values)) <= 1e-6 * scale
    assert np.all(res.values[res.at + 1:] == 0)  # causal: later inputs do not matter
    assert np.all(fd[res.at + 1:] < 1e-12 * scale)


def test_connectivity_of_an_out_of_vocabulary_word_uses_the_predicted_word():
    m = tiny("gru", 1)
    enc = A.encode_text("the zebra")
    res = A.connectivity(m, NAMES, enc, word="zebra")
    logits = np.asarray(m.logits(enc.ids[None]))[0, res.at]
    assert res.cls_source == "predicted"
    assert res.cls == 2 + int(np.argmax(logits[2:]))  # a word, never <eos>/<unknown>
    fd = _onehot_fd(m, enc.ids, res.at, res.cls)
    assert np.max(np.abs(fd - res.values)) <= 1e-6 * res.values.max()


def test_connectivity_matrix_rows_match_single_positions():
    m = tiny("nlstm", 1)
    enc = A.encode_text(TEXT)
    M, classes, sources = A.connectivity_matrix(m, NAMES, enc)
    assert M.shape == (len(enc), len(enc))
    assert np.all(np.triu(M, 1) == 0)
    for n in (0, 4, 9, len(enc) - 1):
        r = A.connectivity(m, NAMES, enc, at=n)
        assert r.cls == classes[n] and r.cls_source == sources[n]
        np.testing.assert_allclose(M[n], r.values, rtol=1e-10, atol=0)


def test_connectivity_batches_respect_the_budget(monkeypatch):
    m = tiny("lstm", 1)
    enc = A.encode_text(TEXT)
    full, _, _ = A.connectivity_matrix(m, NAMES, enc)
    monkeypatch.setattr(A, "_BATCH_BUDGET", 1)  # one position per batch
    single, _, _ = A.connectivity_matrix(m, NAMES, enc)
    np.testing.assert_allclose(single, full, rtol=1e-10, atol=0)


def test_resolve_position():
    enc = A.encode_text("the cat and the dog")
    assert A.resolve_position(enc, at=3) == 3
    assert A.resolve_position(enc, at=-1) == len(enc) - 1
    assert A.resolve_position(enc, word="The") == 3
    assert A.resolve_position(enc, word="the", occurrence=2) == 15
    for kwargs in ({"at": 99}, {"word": "zebra"}, {"word": "the", "occurrence": 3}, {}, {"at": 1, "word": "the"},
                   {"word": "two words"}):
        with pytest.raises(MinirnnError):
            A.resolve_position(enc, **kwargs)


# ------------------------------------------------------------------ heat maps

def test_relative_scales():
    v = np.array([0.0, 1e-5, 1e-2, 1.0])
    np.testing.assert_allclose(heatmap.relative(v), v)
    np.testing.assert_allclose(heatmap.relative(v, scale="log"), [0.0, 0.0, 0.5, 1.0])
    assert np.all(heatmap.relative(np.zeros(3)) == 0)
    assert heatmap.rgb(0) == (255, 255, 255) and heatmap.rgb(1) == (230, 40, 30)


def test_terminal_heatmap_colour_and_plain():
    chars = " the cat"
    values = [0, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9, 1.0]
    plain = heatmap.terminal_heatmap(chars, values, at=7, color=False)
    lines = plain.splitlines()
    assert lines[0] == chars and lines[1][-1] == "@" and lines[2] == " " * 7 + "^"
    assert "\x1b" not in plain
    c256 = heatmap.terminal_heatmap(chars, values, at=7, color=True, truecolor=False)
    assert "\x1b[48;5;196m" in c256 and "\x1b[48;5;231m" in c256
    true = heatmap.terminal_heatmap(chars, values, at=7, color=True, truecolor=True)
    assert "\x1b[48;2;230;40;30m" in true
    assert re.sub(r"\x1b\[[0-9;]*m", "", c256) == chars
    long = heatmap.terminal_heatmap(" " + "word " * 40, np.ones(201), at=0, color=False, width=30)
    assert all(len(line) <= 30 for line in long.splitlines())


def test_html_page_is_self_contained():
    m = tiny("gru", 1)
    data = A.page_data(m, NAMES, TEXT, k=3)
    page = heatmap.connectivity_html(data, title="t <x>", initial=5)
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"https?:", page, re.I)
    assert not re.search(r"\b(src|href)\s*=", page, re.I)
    assert "@import" not in page and "url(" not in page and "@font-face" not in page
    assert "t &lt;x&gt;" in page
    blob = re.search(r'<script type="application/json" id="minirnn-data">(.*?)</script>', page, re.S).group(1)
    import json

    payload = json.loads(blob)
    assert payload["chars"] == A.encode_text(TEXT).chars and payload["initial"] == 5
    assert [len(r) for r in payload["rows"]] == list(range(1, len(payload["chars"]) + 1))
    assert all(0 <= x <= 999 for r in payload["rows"] for x in r)
    assert len(payload["completions"][0]["predictions"]) == 3


# -------------------------------------------------------------------- figures

def test_plot_without_matplotlib_is_one_line(monkeypatch):
    from minirnn.study import plotting
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    assert not plotting.have_matplotlib()
    with pytest.raises(MinirnnError, match=r"pip install 'minirnn\[plot\]'") as err:
        plotting.pyplot()
    assert "\n" not in str(err.value)


def test_figures_are_written(tmp_path):
    pytest.importorskip("matplotlib")
    from minirnn.study import plotting
    hist = {"train_step": np.arange(1, 201), "train_loss": np.linspace(5, 2, 200),
            "val_step": np.array([100, 200]), "val_loss": np.array([3.0, 2.5])}
    p = plotting.plot_loss_curves([("GRU", hist), ("LSTM", {k: v * 1.1 for k, v in hist.items()})],
                                  tmp_path / "loss.png")
    assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    ev = {"by_letters": {"letters": [0, 1, 2, 3], "positions": [10, 9, 5, 0],
                         "top1": [0.1, 0.3, 0.5, None], "top2": [0.2, 0.4, 0.6, None], "top3": [0.3, 0.5, 0.7, None]}}
    assert len(plotting.letters_curves(ev)["top1"]) == 3
    # a tail resting on a handful of positions is not drawn, and the panel says so
    n = plotting.MIN_POSITIONS
    tail = {"by_letters": {"letters": [0, 1, 2, 3, 4], "positions": [3 * n, n, n - 1, 2, 0],
                           "top1": [0.1, 0.3, 0.5, 1.0, None]}}
    assert plotting.letters_curves(tail, n)["top1"].tolist() == [0.1, 0.3]
    assert plotting._left_out(tail, 2).startswith(f"not drawn: 2+ letters seen, {n + 1:,} positions in all")
    assert plotting._left_out(tail, 4) == ""
    p = plotting.plot_accuracy_by_letters([("GRU", ev, "gru"), ("x", ev, None)], tmp_path / "acc.png")
    assert p.stat().st_size > 1000
    p = plotting.plot_connectivity(" the cat", np.linspace(0, 1, 8), 7, tmp_path / "conn.png", title="t")
    assert p.stat().st_size > 1000
    with pytest.raises(MinirnnError):
        plotting.plot_loss_curves([("GRU", {})], tmp_path / "empty.png")
