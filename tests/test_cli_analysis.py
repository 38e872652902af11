"""`minirnn complete`, `connectivity` and `plot` end to end on a tiny checkpoint."""
from __future__ import annotations

import json
import re
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from minirnn.training.checkpoint import save_checkpoint
from minirnn.cli.main import cli
from minirnn.model import Model
from minirnn.optim import Adam

NAMES = ["<eos>", "<unknown>", "the", "cat", "sat", "on", "mat", "a", "dog"]
TEXT = "The cat sat on the mat"


def _write(path, unit, seed=3, step=5):
    model = Model(unit=unit, hidden=6, layers=2 if unit != "nlstm" else 1, depth=2, output_vocab=len(NAMES),
                  seed=seed, dtype="float32", impl="reference")
    history = {"train_step": np.arange(1, step + 1), "train_loss": np.linspace(3, 2, step),
               "val_step": np.array([step]), "val_loss": np.array([2.2])}
    save_checkpoint(path, model, Adam(model.params), step=step, order_state={"epoch": 0, "position": step},
                    config={"unit": unit, "preset": "demo"}, output_words=NAMES, history=history)
    return str(path)


@pytest.fixture
def ckpt(tmp_path):
    return _write(tmp_path / "tiny.h5", "lstm")


def run(*args, input=None):
    return CliRunner().invoke(cli, [str(a) for a in args], input=input)


def one_line_error(result):
    assert result.exit_code != 0
    assert "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert len(errors) == 1, result.output
    return errors[0]


# --------------------------------------------------------------------- complete

def test_complete_table(ckpt):
    r = run("complete", ckpt, TEXT, "-k", "2")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert "#1" in lines[0] and "#2" in lines[0] and "#3" not in lines[0]
    body = [line for line in lines[2:] if re.match(r"\s*\d+ ", line)]
    assert len(body) == len(" the cat sat on the mat")
    assert body[0].split()[:4] == ["0", "\u2423", "0", "the"]
    assert body[-1].split()[:4] == ["22", "t", "3", "mat"]


def test_complete_json_and_k(ckpt):
    r = run("complete", ckpt, "the dog!", "--json", "-k", "4")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["text"] == " the dog" and d["k"] == 4 and len(d["positions"]) == 8
    p = d["positions"][5]
    assert p["char"] == "d" and p["word"] == "dog" and p["letters_seen"] == 1 and len(p["predictions"]) == 4
    probs = [q["probability"] for q in p["predictions"]]
    assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-9


def test_complete_interactive_answers_every_line(ckpt):
    r = run("complete", ckpt, "--interactive", "--json", input="the cat\n\n!!!\nsat on\n")
    assert r.exit_code == 0, r.output
    answers = [json.loads(line) for line in r.stdout.splitlines()]
    assert [a["text"] for a in answers] == [" the cat", " sat on"]
    assert "no letters" in r.output  # the bad line is reported and skipped


def test_complete_interactive_refuses_an_overlong_line_and_goes_on(ckpt):
    from minirnn.study.analysis import MAX_TEXT_CHARS

    longer = "a" * (3 * MAX_TEXT_CHARS + 7)          # read and dropped in pieces, never whole
    r = run("complete", ckpt, "--interactive", "--json", input=f"the cat\n{longer}\nsat on\n")
    assert r.exit_code == 0, r.output
    assert [json.loads(line)["text"] for line in r.stdout.splitlines()] == [" the cat", " sat on"]
    assert f"a line of more than {MAX_TEXT_CHARS:,} characters" in r.stderr and len(r.stderr.splitlines()) == 1
    exact = "a" * MAX_TEXT_CHARS                     # at the limit: answered
    r = run("complete", ckpt, "--interactive", "--json", input=f"{exact}\n")
    assert r.exit_code == 0 and len(json.loads(r.stdout)["positions"]) == MAX_TEXT_CHARS + 1


def test_complete_errors_are_one_line(ckpt, tmp_path):
    assert "does not exist" in one_line_error(run("complete", tmp_path / "missing.h5", "the"))
    (tmp_path / "junk.h5").write_text("not hdf5")
    one_line_error(run("complete", tmp_path / "junk.h5", "the"))
    assert "no letters" in one_line_error(run("complete", ckpt, "?!"))
    assert run("complete", ckpt).exit_code == 2  # neither TEXT nor --interactive


# ----------------------------------------------------------------- connectivity

def test_connectivity_plain_map(ckpt):
    r = run("connectivity", ckpt, TEXT, "--word", "sat", "--no-color")
    assert r.exit_code == 0, r.output
    out = r.stdout
    assert "output position 11" in out and "logit of 'sat'" in out and "correct word" in out
    lines = out.splitlines()
    i = lines.index(" the cat sat on the mat")
    assert lines[i + 2] == " " * 11 + "^"
    assert "@" in lines[i + 1] and "\x1b" not in out


def test_connectivity_colour_map(ckpt):
    r = run("connectivity", ckpt, TEXT, "--at", "5", "--color")
    assert r.exit_code == 0, r.output
    assert re.search(r"\x1b\[48;(5|2);", r.stdout)


def test_connectivity_json_matches_the_library(ckpt):
    from minirnn.study import analysis
    from minirnn.training.checkpoint import load_checkpoint

    r = run("connectivity", ckpt, "the cat sat on the zebra", "--word", "zebra", "--json")
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["at"] == 24 and d["class_source"] == "predicted" and d["class"] not in ("<eos>", "<unknown>")
    ck = load_checkpoint(ckpt, impl="reference")
    res = analysis.connectivity(ck.model, ck.output_words, "the cat sat on the zebra", at=24)
    np.testing.assert_allclose(d["values"], res.values[:25], rtol=1e-12)


def test_connectivity_html_and_png(ckpt, tmp_path):
    page = tmp_path / "c.html"
    args = ["connectivity", ckpt, TEXT, "--at", "-1", "--no-color", "--html", page]
    has_mpl = True
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        has_mpl = False
    if has_mpl:
        args += ["--png", tmp_path / "c.png"]
    r = run(*args)
    assert r.exit_code == 0, r.output
    html = page.read_text(encoding="utf-8")
    assert "minirnn-data" in html and not re.search(r"https?:", html)
    if has_mpl:
        assert (tmp_path / "c.png").read_bytes()[:4] == b"\x89PNG"


def test_connectivity_errors_are_one_line(ckpt, tmp_path):
    assert "outside the text" in one_line_error(run("connectivity", ckpt, TEXT, "--at", "99"))
    assert "occurs 0 time" in one_line_error(run("connectivity", ckpt, TEXT, "--word", "zebra"))
    one_line_error(run("connectivity", ckpt, TEXT))
    one_line_error(run("connectivity", ckpt, TEXT, "--at", "1", "--word", "cat"))


def test_png_without_matplotlib_is_one_line(ckpt, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    line = one_line_error(run("connectivity", ckpt, TEXT, "--at", "3", "--png", tmp_path / "x.png"))
    assert "pip install 'minirnn[plot]'" in line
    line = one_line_error(run("plot", ckpt, "--out", tmp_path / "x.png"))
    assert "pip install 'minirnn[plot]'" in line


# ------------------------------------------------------------------------- plot

def test_plot_loss_of_several_runs(ckpt, tmp_path):
    pytest.importorskip("matplotlib")
    other = _write(tmp_path / "gru.h5", "gru", step=8)
    out = tmp_path / "loss.png"
    r = run("plot", ckpt, other, "--out", out)
    assert r.exit_code == 0, r.output
    assert out.read_bytes()[:4] == b"\x89PNG"


def test_plot_accuracy_uses_stored_evaluations(ckpt, tmp_path):
    pytest.importorskip("matplotlib")
    from minirnn.study.comparison import evaluation_sidecar

    other = _write(tmp_path / "nlstm.h5", "nlstm", step=5)
    for path in (ckpt, other):
        ev = {"split": "test", "step": 5, "cross_entropy": 2.0, "accuracy": 0.3,
              "by_letters": {"letters": [0, 1, 2], "positions": [5, 5, 5], "top1": [0.1, 0.2, 0.3],
                             "top2": [0.2, 0.3, 0.4], "top3": [0.3, 0.4, 0.5]}}
        evaluation_sidecar(path).write_text(json.dumps(ev))
    out = tmp_path / "acc.png"
    r = run("plot", ckpt, other, "--kind", "accuracy", "--out", out)
    assert r.exit_code == 0, r.output
    assert "stored evaluation" in r.output
    assert out.stat().st_size > 1000
