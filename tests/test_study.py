"""`minirnn study`: three units, same data and seed, a report, and resuming (tiny step counts)."""
from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from minirnn.study import comparison as S
from minirnn.training.checkpoint import peek_checkpoint
from minirnn.cli.main import cli
from minirnn.errors import MinirnnError

TINY = {"hidden": 8, "max_length": 60, "batch_size": 8, "eval_batches": 1}


def quick(out, steps, units=S.UNITS, messages=None, **kw):
    echo = (lambda m, err=False: messages.append(m)) if messages is not None else None
    return S.run_study("demo", out=out, units=units, steps=steps, impl="reference", limit=6, overrides=TINY,
                       progress=False, echo=echo, **kw)


def test_study_trains_evaluates_and_reports(tmp_path):
    out = tmp_path / "study"
    state = quick(out, 2)
    for u in S.UNITS:
        assert peek_checkpoint(out / f"{u}.h5")["step"] == 2
        cfg = peek_checkpoint(out / f"{u}.h5")["config"]
        assert cfg["seed"] == 0 and cfg["hidden"] == 8 and cfg["corpus"] == "builtin"
        ev = json.loads((out / f"{u}.evaluation.json").read_text())
        assert ev["step"] == 2 and ev["observations"] == 6 and ev["split"] == "test"
        assert state["units"][u]["evaluation"]["cross_entropy"] == ev["cross_entropy"]
    report = (out / "report.md").read_text()
    for needle in ("| GRU | 2 |", "| LSTM | 2 |", "| Nested LSTM | 2 |", "2.1170", "52.01%", "2.4950", "47.10%",
                   "Top-1 accuracy by letters seen", "| Nested LSTM (published) | 0.137 | 0.326",
                   "## Settings", "## Times", "| batch_size | 8 |"):
        assert needle in report, needle
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        assert "pip install 'minirnn[plot]'" in report
    else:
        assert (out / S.LOSS_FIGURE).read_bytes()[:4] == b"\x89PNG"
        assert (out / S.ACCURACY_FIGURE).read_bytes()[:4] == b"\x89PNG"
        assert f"]({S.LOSS_FIGURE})" in report and f"]({S.ACCURACY_FIGURE})" in report


def test_study_resumes_skips_and_continues(tmp_path, monkeypatch):
    out = tmp_path / "study"
    quick(out, 1, units=("gru", "lstm"))
    # a unit "interrupted" mid-training: its checkpoint exists but it was never evaluated
    (out / "lstm.evaluation.json").unlink()
    msgs = []
    quick(out, 1, units=("gru", "lstm"), messages=msgs)
    assert any("gru: finished earlier" in m for m in msgs)
    assert any("lstm: resuming from its checkpoint at step 1" in m for m in msgs)
    assert (out / "lstm.evaluation.json").is_file()
    # asking for more steps continues both from their checkpoints; a new unit starts
    msgs = []
    state = quick(out, 2, messages=msgs)
    assert any("gru: resuming from its checkpoint at step 1" in m for m in msgs)
    assert any("training nlstm" in m for m in msgs)
    for u in S.UNITS:
        assert peek_checkpoint(out / f"{u}.h5")["step"] == 2
    assert state["units"]["gru"]["sessions"] == 2
    # the folder remembers its settings
    with pytest.raises(MinirnnError, match="another --out"):
        S.run_study("demo", out=out, units=("gru",), steps=2, impl="reference", limit=6,
                    overrides={**TINY, "hidden": 9}, progress=False, echo=None)


def test_report_without_matplotlib_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(S, "have_matplotlib", lambda: False)
    out = tmp_path / "study"
    quick(out, 1, units=("gru",))
    report = (out / "report.md").read_text()
    assert "pip install 'minirnn[plot]'" in report and not (out / S.LOSS_FIGURE).exists()
    assert "| LSTM | not finished |" not in report  # only the units of the study are listed


def test_parse_units():
    assert S.parse_units("nlstm, gru,gru") == ("nlstm", "gru")
    assert S.parse_units(None) == S.UNITS
    with pytest.raises(MinirnnError):
        S.parse_units("rnn")


def test_study_cli(tmp_path):
    out = tmp_path / "cli-study"
    r = CliRunner().invoke(cli, ["study", "--preset", "demo", "--out", str(out), "--units", "gru", "--steps", "1",
                                 "--hidden", "8", "--impl", "reference", "--limit", "4", "--no-progress"])
    assert r.exit_code == 0, r.output
    assert "gru    cross-entropy" in r.stdout
    assert (out / "report.md").is_file() and (out / "gru.h5").is_file()
    r = CliRunner().invoke(cli, ["study", "--units", "gru,rnn", "--out", str(out)])
    assert r.exit_code != 0 and "unknown unit 'rnn'" in r.output and "Traceback" not in r.output
