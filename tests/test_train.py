"""The training loop and `minirnn train`: exact resume, divergence, refusals, CLI end to end."""
import json
import subprocess
import sys

import numpy as np
import pytest
from click.testing import CliRunner

from tiny_corpus import write_tiny_corpus

from minirnn.training.checkpoint import load_checkpoint
from minirnn.cli.main import cli
from minirnn.errors import MinirnnError
from minirnn.model import Model
from minirnn.training.loop import TrainConfig, train


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A tiny seeded text: ~1200 words of a 20-word language, ~100 observations of <= 40 characters."""
    return str(write_tiny_corpus(tmp_path_factory.mktemp("corpus") / "tiny.txt", words=1200, seed=7))


def tiny(corpus, out, impl="reference", **kw):
    values = dict(hidden=6, layers=1, depth=2, vocab_size=12, max_length=40, batch_size=16, lr=1e-2, steps=4,
                  epochs=None, seed=5, corpus=corpus, out=str(out), dtype="float64", impl=impl, eval_every=2,
                  eval_batches=1, checkpoint_every=0)
    values.update(kw)
    return TrainConfig.from_preset("demo", values.pop("unit", "nlstm"), **values)


@pytest.mark.parametrize("impl", ["reference", "fast"])
@pytest.mark.parametrize("unit", ["nlstm", "gru"])
def test_resume_is_bit_for_bit(corpus, tmp_path, unit, impl):
    n, k = 9, 4                      # 9 steps cross an epoch boundary (about 6 steps per epoch)
    whole = train(tiny(corpus, tmp_path / "whole.h5", impl, unit=unit, steps=n), progress=False, echo=None)
    assert whole.history["train_epoch"].max() >= 1
    train(tiny(corpus, tmp_path / "split.h5", impl, unit=unit, steps=k), progress=False, echo=None)
    assert load_checkpoint(tmp_path / "split.h5", impl=impl).step == k
    resumed = train(tiny(corpus, tmp_path / "split.h5", impl, unit=unit, steps=n), resume=True, progress=False,
                    echo=None)
    a = load_checkpoint(tmp_path / "whole.h5", impl=impl)
    b = load_checkpoint(tmp_path / "split.h5", impl=impl)
    assert a.step == b.step == n
    for name in a.model.params:
        assert np.array_equal(a.model.params[name], b.model.params[name]), name
        assert np.array_equal(a.optimizer_state["m"][name], b.optimizer_state["m"][name]), name
        assert np.array_equal(a.optimizer_state["v"][name], b.optimizer_state["v"][name]), name
    assert a.order_state == b.order_state
    for key in whole.history:
        assert np.array_equal(whole.history[key], resumed.history[key]), key
        assert np.array_equal(a.history[key], b.history[key]), key
    assert list(a.history["val_step"]) == [2, 4, 6, 8, 9]


def test_resume_refuses_other_settings(corpus, tmp_path):
    out = tmp_path / "run.h5"
    train(tiny(corpus, out, steps=2), progress=False, echo=None)
    with pytest.raises(MinirnnError, match="hidden=6.*hidden=7") as info:
        train(tiny(corpus, out, hidden=7, steps=4), resume=True, progress=False, echo=None)
    assert "\n" not in str(info.value)
    with pytest.raises(MinirnnError, match="unit="):
        train(tiny(corpus, out, unit="lstm", steps=4), resume=True, progress=False, echo=None)
    with pytest.raises(MinirnnError, match="vocab_size="):
        train(tiny(corpus, out, vocab_size=10, steps=4), resume=True, progress=False, echo=None)
    with pytest.raises(MinirnnError, match="already exists"):
        train(tiny(corpus, out, steps=4), progress=False, echo=None)
    with pytest.raises(MinirnnError, match="no checkpoint"):
        train(tiny(corpus, tmp_path / "absent.h5", steps=4), resume=True, progress=False, echo=None)
    # the learning rate may change on resume, and the run says so
    said = []
    train(tiny(corpus, out, steps=3, lr=1e-3), resume=True, progress=False, echo=lambda m, err=False: said.append(m))
    assert load_checkpoint(out, impl="reference").optimizer_state["lr"] == 1e-3
    assert "learning rate 0.001 from step 3 on (until now 0.01)" in said, said
    said.clear()
    train(tiny(corpus, out, steps=4, lr=1e-3), resume=True, progress=False, echo=lambda m, err=False: said.append(m))
    assert not any("learning rate" in m for m in said), said            # unchanged: nothing to say


def test_resuming_a_finished_run_says_how_to_train_further(corpus, tmp_path):
    out = tmp_path / "run.h5"
    train(tiny(corpus, out, steps=2), progress=False, echo=None)
    said = []
    result = train(tiny(corpus, out, steps=2), resume=True, progress=False,
                   echo=lambda m, err=False: said.append(m))
    assert result.step == 2
    hint = [m for m in said if m.startswith("nothing to train")]
    assert len(hint) == 1 and "already done the run's 2 steps" in hint[0] and "--steps 4" in hint[0], said
    assert any("this run: no training steps" in m for m in said) and not any("characters/s" in m for m in said)


@pytest.mark.parametrize("args, option", [
    (["gradcheck", "--unit", "gru", "--depth", "3"], "'--depth'"),
    (["info", "--unit", "lstm", "--depth", "2"], "'--depth'"),
    (["train", "--unit", "gru", "--outer-tanh", "--steps", "1"], "'--outer-tanh'"),
])
def test_an_option_the_unit_does_not_take_is_refused_in_one_line(args, option, tmp_path):
    result = CliRunner().invoke(cli, [*args] + (["--out", str(tmp_path / "r.h5")] if args[0] == "train" else []))
    errors = [line for line in result.output.splitlines() if line.startswith("Error")]
    assert result.exit_code == 2 and len(errors) == 1 and option in errors[0] and "nlstm only" in errors[0], \
        result.output
    assert not (tmp_path / "r.h5").exists()


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(corpus, tmp_path, monkeypatch):
    out = tmp_path / "run.h5"
    train(tiny(corpus, out, steps=3), progress=False, echo=None)
    before = out.read_bytes()

    real = Model.loss_and_grads
    calls = {"n": 0}

    def poisoned(self, source, target, states0=None):
        calls["n"] += 1
        loss, grads = real(self, source, target, states0)
        return (float("nan") if calls["n"] == 3 else loss), grads

    monkeypatch.setattr(Model, "loss_and_grads", poisoned)
    with pytest.raises(MinirnnError, match="diverged at step 6.*--lr") as info:
        train(tiny(corpus, out, steps=10, checkpoint_every=1), resume=True, progress=False, echo=None)
    assert "\n" not in str(info.value) and "step 5" in str(info.value)
    ck = load_checkpoint(out, impl="reference")          # saved after steps 4 and 5, never after the NaN
    assert ck.step == 5 and all(np.isfinite(v).all() for v in ck.model.params.values())

    # without periodic saves the file from before the run stays byte-identical
    out.write_bytes(before)
    calls["n"] = 0
    with pytest.raises(MinirnnError, match="diverged"):
        train(tiny(corpus, out, steps=10), resume=True, progress=False, echo=None)
    assert out.read_bytes() == before
    assert not [p for p in tmp_path.iterdir() if ".tmp-" in p.name]


def test_huge_learning_rate_diverges_with_a_one_line_error(corpus, tmp_path):
    out = tmp_path / "run.h5"
    with pytest.raises(MinirnnError, match="--lr") as info:
        train(tiny(corpus, out, steps=40, lr=1e30, dtype="float32"), progress=False, echo=None)
    assert "\n" not in str(info.value)
    assert not out.exists()


def test_from_preset_ignores_none_and_steps_or_epochs_win():
    demo = TrainConfig.from_preset("demo", "gru", hidden=None, lr=None)
    assert demo.preset == "demo" and demo.corpus == "builtin" and demo.steps and demo.epochs is None
    assert demo.out.endswith("gru-demo.h5")
    paper = TrainConfig.from_preset("paper", "nlstm", steps=10)
    assert (paper.hidden, paper.layers, paper.depth, paper.vocab_size, paper.batch_size) == (600, 1, 2, 16384, 64)
    assert paper.steps == 10 and paper.epochs is None and paper.lr == 1e-3
    assert TrainConfig.from_preset("demo", "lstm", epochs=1).steps is None
    with pytest.raises(MinirnnError):
        TrainConfig.from_preset("nope", "lstm")


def _args(corpus, out, *more):
    return ["train", "--unit", "lstm", "--corpus", corpus, "--out", str(out), "--hidden", "5", "--vocab-size", "12",
            "--max-length", "40", "--batch-size", "16", "--impl", "reference", "--eval-every", "2",
            "--eval-batches", "1", "--no-progress", *more]


def test_train_and_evaluate_cli_end_to_end(corpus, tmp_path):
    runner = CliRunner()
    out = tmp_path / "cli.h5"
    result = runner.invoke(cli, _args(corpus, out, "--steps", "3", "--device", "auto"))
    assert result.exit_code == 0, result.output
    assert "checkpoint:" in result.output and "validation loss" in result.output
    assert "running on the CPU" in result.output or "gpu" in result.output
    assert load_checkpoint(out, impl="reference").step == 3

    again = runner.invoke(cli, _args(corpus, out, "--steps", "3"))
    assert again.exit_code != 0 and "already exists" in again.output and "Traceback" not in again.output

    # --resume reuses the stored settings; only --steps is given
    resumed = runner.invoke(cli, ["train", "--unit", "lstm", "--out", str(out), "--steps", "5", "--resume",
                                  "--impl", "reference", "--no-progress"])
    assert resumed.exit_code == 0, resumed.output
    ck = load_checkpoint(out, impl="reference")
    assert ck.step == 5 and ck.config["hidden"] == 5 and ck.model.config["hidden"] == 5

    refused = runner.invoke(cli, ["train", "--unit", "gru", "--out", str(out), "--steps", "6", "--resume",
                                  "--no-progress"])
    assert refused.exit_code != 0 and "unit=" in refused.output and "Traceback" not in refused.output

    ev = runner.invoke(cli, ["evaluate", str(out), "--json", "--impl", "reference", "--split", "validation"])
    assert ev.exit_code == 0, ev.output
    metrics = json.loads(ev.output)
    assert metrics["step"] == 5 and metrics["split"] == "validation" and 0 <= metrics["accuracy"] <= 1
    assert {"cross_entropy", "baseline_accuracy", "by_letters"} <= set(metrics)

    text = runner.invoke(cli, ["evaluate", str(out), "--impl", "reference", "--limit", "3", "--no-progress"])
    assert text.exit_code == 0, text.output
    assert "cross-entropy" in text.output and "letters seen" in text.output and "top3" in text.output


def test_cli_errors_are_one_line_in_a_real_process(corpus, tmp_path):
    bad = tmp_path / "bad.h5"
    bad.write_text("not a checkpoint")
    proc = subprocess.run([sys.executable, "-m", "minirnn", "train", "--unit", "gru", "--out", str(bad), "--resume",
                           "--no-progress"], capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [proc.stderr.strip()]
    assert "not a readable HDF5" in proc.stderr


def test_ctrl_c_saves_the_last_completed_step(corpus, tmp_path, monkeypatch):
    out = tmp_path / "run.h5"
    real = Model.loss_and_grads
    calls = {"n": 0}

    def interrupted(self, source, target, states0=None):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(self, source, target, states0)

    monkeypatch.setattr(Model, "loss_and_grads", interrupted)
    with pytest.raises(MinirnnError, match="interrupted by Ctrl-C.* at step 3.*--resume"):
        train(tiny(corpus, out, steps=8), progress=False, echo=None)
    monkeypatch.undo()
    assert load_checkpoint(out, impl="reference").step == 3
    train(tiny(corpus, out, steps=8), resume=True, progress=False, echo=None)
    train(tiny(corpus, tmp_path / "whole.h5", steps=8), progress=False, echo=None)
    a, b = load_checkpoint(out, impl="reference"), load_checkpoint(tmp_path / "whole.h5", impl="reference")
    assert all(np.array_equal(a.model.params[k], b.model.params[k]) for k in a.model.params)
