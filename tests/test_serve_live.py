"""analysis.LiveModel, the computation behind `minirnn serve`: per-prefix caching gives the
library's answers (float64, to rounding) at the cost of the characters that changed."""
from __future__ import annotations

import numpy as np
import pytest

from minirnn.study import analysis as A
from minirnn.errors import MinirnnError
from minirnn.model import Model

NAMES = ["<eos>", "<unknown>", "the", "cat", "sat", "on", "mat", "a", "dog"]
TEXT = "the cat sat on a mat zebra"


def tiny(unit, layers):
    return Model(unit=unit, hidden=5, layers=layers, depth=2, output_vocab=len(NAMES), seed=1, dtype="float64",
                 impl="reference")


@pytest.mark.parametrize("unit,layers", [("gru", 2), ("lstm", 2), ("nlstm", 1)])
def test_typing_gives_the_librarys_completions_and_maps(unit, layers):
    m = tiny(unit, layers)
    live = A.LiveModel(m, NAMES)
    for i in range(1, len(TEXT) + 1):
        if TEXT[:i].strip():
            live.complete(TEXT[:i], k=3)
    enc = A.encode_text(TEXT)
    assert live.steps_run == len(enc)                      # every character read once
    want = A.complete(m, NAMES, TEXT, k=3)
    got = live.complete(TEXT, k=3)
    assert live.steps_run == len(enc)
    for a, b in zip(want, got):
        assert [w for w, _ in a.predictions] == [w for w, _ in b.predictions]
        np.testing.assert_allclose([p for _, p in b.predictions], [p for _, p in a.predictions], rtol=1e-12)
        assert b.target_probability == pytest.approx(a.target_probability, rel=1e-12)
        fields = ("index", "char", "word", "letters_seen", "target")
        assert [getattr(a, f) for f in fields] == [getattr(b, f) for f in fields]
    for at in (0, 7, len(enc) - 1):                        # the last is 'zebra': out of vocabulary
        r1, r2 = A.connectivity(m, NAMES, enc, at=at), live.connectivity(enc, at)
        assert (r1.cls, r1.cls_source) == (r2.cls, r2.cls_source)
        np.testing.assert_allclose(r2.values, r1.values, rtol=1e-10, atol=0)
    assert r2.cls_source == "predicted"


def test_edits_cost_the_characters_from_the_edit_on_and_a_small_cache_stays_correct():
    m = tiny("lstm", 1)
    live = A.LiveModel(m, NAMES)
    live.complete("the cat sat")
    before = live.steps_run
    live.complete("the cat sa")                            # backspace: nothing to compute
    assert live.steps_run == before
    live.complete("the bat sat")                           # an edit at position 5 (' the bat sat')
    assert live.steps_run == before + len(" the bat sat") - 5
    small = A.LiveModel(m, NAMES, max_prefixes=3)          # forgets almost everything: recomputes, same answer
    for text in ("the cat sat", "the cat", "the cat sat on"):
        got = small.complete(text)
        want = A.complete(m, NAMES, text, k=3)
        for g, h in zip(got, want):
            assert [w for w, _ in g.predictions] == [w for w, _ in h.predictions]
            np.testing.assert_allclose([p for _, p in g.predictions], [p for _, p in h.predictions], rtol=1e-12)
        assert len(small.prefixes) <= 3


def test_bad_arguments_are_one_line_errors():
    live = A.LiveModel(tiny("gru", 1), NAMES)
    with pytest.raises(MinirnnError, match="k must be between 1 and 10"):
        live.complete("the", k=11)
    with pytest.raises(MinirnnError, match="outside the text"):
        live.connectivity("the", 9)
    with pytest.raises(MinirnnError, match="no letters"):
        live.complete("?!")
