"""One line instead of a traceback for absurd sizes; memory estimates; honest "last good checkpoint"."""
import math
import shutil
import subprocess
import sys

import pytest
from click.testing import CliRunner

from tiny_corpus import tiny_train_config, write_tiny_corpus

import minirnn.data.corpora as corpora
import minirnn.training.limits as memory
from minirnn.training.checkpoint import load_checkpoint
from minirnn.cli.main import cli
from minirnn.errors import MinirnnError
from minirnn.training.save_watch import EXPLODE_STEPS, LossWatch
from minirnn.model import Model
from minirnn.training.loop import train


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return str(write_tiny_corpus(tmp_path_factory.mktemp("corpus") / "tiny.txt", words=1200, seed=7))


tiny = tiny_train_config


def one_line_error(result, exit_code=1):
    assert result.exit_code == exit_code, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    return errors[0]


@pytest.mark.parametrize("option, value, message", [
    ("--hidden", "100000", "this run needs at least 906.0 GiB of memory (60,003,400,003 parameters"),
    ("--hidden", "1000000000", "hidden must be at most 1,048,576, got 1000000000"),
    ("--hidden", "1" * 31, "hidden must be at most 1,048,576, got a number of 31 digits"),
    ("--vocab-size", str(10 ** 23), "vocab_size must be at most"),
    ("--max-length", str(10 ** 23), "max_length must be at most"),
    ("--max-length", str(2 ** 63), "max_length must be at most"),
    ("--corpus", "/dev/zero", "is not a regular file"),
])
def test_absurd_train_settings_are_one_line(tmp_path, monkeypatch, option, value, message):
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 100 << 30)   # whatever this machine has
    result = CliRunner().invoke(cli, ["train", "--unit", "gru", "--out", str(tmp_path / "r.h5"), "--no-progress",
                                      option, value])
    assert message in one_line_error(result)


def test_a_run_too_big_for_the_memory_is_refused_with_the_estimate(tmp_path, monkeypatch):
    monkeypatch.setattr(memory, "available_bytes", lambda device="cpu": 2 << 30)   # a 2 GiB machine
    result = CliRunner().invoke(cli, ["train", "--unit", "lstm", "--hidden", "8000", "--out", str(tmp_path / "r.h5"),
                                      "--no-progress"])
    line = one_line_error(result)
    assert "needs at least" in line and "GiB" in line and "2.0 GiB are available" in line and "--hidden" in line
    assert not (tmp_path / "r.h5").exists()


def test_a_checkpoint_that_cannot_fit_on_the_disk_is_refused_before_the_first_step(corpus, tmp_path, monkeypatch):
    real = shutil.disk_usage
    # Only the run's folder is short of space: the dataset cache (built here when this test runs
    # first) keeps its real disk, so the checkpoint's check is the one that speaks.
    monkeypatch.setattr(shutil, "disk_usage", lambda path: real(path)._replace(free=1000)
                        if str(path).startswith(str(tmp_path)) else real(path))
    said = []
    with pytest.raises(MinirnnError, match=r"kB but its disk has 1.0 kB free; free some space") as info:
        train(tiny(corpus, tmp_path / "run.h5"), progress=False, echo=lambda m, err=False: said.append(m))
    assert "\n" not in str(info.value) and not any(m.startswith("training") for m in said)


def test_the_estimate_counts_the_parameters_exactly():
    for unit, layers in (("gru", 2), ("lstm", 2), ("nlstm", 1)):
        estimate = memory.estimate(unit, 40, layers, 2, 50, 8, 30, "float64")
        model = Model(unit, hidden=40, layers=layers, depth=2, output_vocab=50, dtype="float64", impl="reference")
        assert estimate["count"] == sum(p.size for p in model.params.values())
        assert estimate["parameters"] == 4 * 8 * estimate["count"]


def test_a_corpus_above_the_size_limit_is_refused_before_it_is_read(tmp_path, monkeypatch):
    monkeypatch.setattr(corpora, "MAX_CORPUS_BYTES", 1000)
    big = tmp_path / "big.txt"
    big.write_text("word " * 1000)
    with pytest.raises(MinirnnError, match="more than the 1,000 minirnn reads") as info:
        corpora.load_corpus(str(big))
    assert "\n" not in str(info.value)
    import zipfile

    with zipfile.ZipFile(tmp_path / "text8.zip", "w", zipfile.ZIP_DEFLATED) as z:
        z.writestr("text8", "word " * 1000)
    with pytest.raises(MinirnnError, match="more than"):
        corpora.load_corpus(str(tmp_path / "text8.zip"))


@pytest.mark.parametrize("args, message", [
    (["--seed", "-1"], "'--seed'"),
    (["--tolerance", "nan"], "nan is not a positive finite number"),
    (["--tolerance", "-1"], "-1.0 is not a positive finite number"),
    (["--hidden", "1000000000"], "'--hidden'"),
    (["--depth", "1000"], "'--depth'"),
])
def test_gradcheck_options_are_bounded(args, message):
    line = one_line_error(CliRunner().invoke(cli, ["gradcheck", "--unit", "nlstm", *args]), exit_code=2)
    assert message in line


def test_a_bad_option_in_a_real_process_is_one_line_without_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "minirnn", "train", "--unit", "gru", "--hidden", "1" * 31,
                           "--out", str(tmp_path / "r.h5")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]


def test_connectivity_reports_the_position_it_was_given(corpus, tmp_path):
    out = tmp_path / "run.h5"
    train(tiny(corpus, out), progress=False, echo=None)
    line = one_line_error(CliRunner().invoke(cli, ["connectivity", str(out), "the cat", "--at", "-999"]))
    assert "--at -999 is outside the text" in line and "-8 to -1" in line


def test_evaluate_after_the_corpus_file_moved(corpus, tmp_path, monkeypatch):
    text = tmp_path / "text.txt"
    shutil.copy(corpus, text)
    out = tmp_path / "run.h5"
    monkeypatch.setenv("MINIRNN_HOME", str(tmp_path / "home"))
    train(tiny(str(text), out), progress=False, echo=None)
    moved = text.rename(tmp_path / "moved.txt")
    runner = CliRunner()
    # the cached dataset is found by the corpus checksum
    assert runner.invoke(cli, ["evaluate", str(out), "--json", "--impl", "reference"]).exit_code == 0
    shutil.rmtree(tmp_path / "home")
    line = one_line_error(runner.invoke(cli, ["evaluate", str(out), "--impl", "reference", "--no-progress"]))
    assert "no longer exists; give its new location with --corpus PATH" in line
    result = runner.invoke(cli, ["evaluate", str(out), "--impl", "reference", "--no-progress", "--corpus", str(moved)])
    assert result.exit_code == 0 and "cross-entropy" in result.output, result.output
    line = one_line_error(runner.invoke(cli, ["evaluate", str(out), "--impl", "reference", "--no-progress",
                                              "--corpus", "builtin"]))
    assert "is not the text" in line


# ----------------------------------------------------------------------------- divergence

def test_after_a_divergence_the_kept_checkpoint_is_one_that_trains_on(corpus, tmp_path):
    out = tmp_path / "run.h5"
    train(tiny(corpus, out, steps=6), progress=False, echo=None)
    before = out.read_bytes()
    said = []
    with pytest.raises(MinirnnError, match="--resume --lr") as info:
        train(tiny(corpus, out, steps=30, lr=1e30, checkpoint_every=1), resume=True, progress=False,
              echo=lambda message, err=False: said.append(message))
    assert "step 6" in str(info.value) and "\n" not in str(info.value)
    assert out.read_bytes() == before                        # the state after lr=1e30 steps was never written
    assert any("not saved because" in m and "the checkpoint at step 6 stays" in m for m in said), said
    # the kept checkpoint really is good: a resume with a sane learning rate goes on learning
    result = train(tiny(corpus, out, steps=12, lr=1e-2), resume=True, progress=False, echo=None)
    kept = load_checkpoint(out, impl="reference")
    assert kept.step == 12 and math.isfinite(result.val_loss)
    assert result.val_loss <= 1.05 * result.history["val_loss"][2]     # no worse than at step 6


def test_loss_watch_judges_states_and_warns_once_about_an_exploding_loss():
    watch = LossWatch()
    assert watch.judge(3.0) == (True, "")
    assert watch.judge(2.0)[0] and watch.best == 2.0
    assert not watch.judge(4.5)[0] and not watch.judge(float("inf"))[0] and watch.best == 2.0
    warnings = [watch.step(s, loss) for s, loss in enumerate([2.0] + [25.0] * (EXPLODE_STEPS + 3), start=1)]
    assert sum(w is not None for w in warnings) == 1 and "lower --lr" in [w for w in warnings if w][0]
    assert warnings.index(next(w for w in warnings if w)) == EXPLODE_STEPS


def test_an_exploding_but_finite_loss_warns_once_during_a_run(corpus, tmp_path, monkeypatch):
    # The loss sequence is built, not left to rounding: from step 2 on, the loop is told a loss 100x the
    # real one (the gradients stay real), so it stays finite and "explodes" on every CPU alike.
    real = Model.loss_and_grads
    calls = []

    def exploding(self, source, target, **kw):
        loss, grads = real(self, source, target, **kw)
        calls.append(loss)
        return (loss if len(calls) == 1 else 100 * loss), grads

    monkeypatch.setattr(Model, "loss_and_grads", exploding)
    said = []
    train(tiny(corpus, tmp_path / "run.h5", steps=EXPLODE_STEPS + 4), progress=False,
          echo=lambda message, err=False: said.append(message))
    warnings = [m for m in said if "warning: the training loss has been above" in m]
    assert len(warnings) == 1 and f"at step {EXPLODE_STEPS + 1}" in warnings[0], said


def test_an_absurd_learning_rate_ends_in_one_line_on_any_cpu(corpus, tmp_path):
    # lr=1e30: whether the loss turns NaN at once or stays finite a while depends on how the CPU
    # rounds; either way the run must stop with one line that names the way out, and no traceback.
    said = []
    with pytest.raises(MinirnnError) as info:
        train(tiny(corpus, tmp_path / "run.h5", steps=20, lr=1e30), progress=False,
              echo=lambda message, err=False: said.append(message))
    message = str(info.value)
    assert "\n" not in message and ("diverged" in message or "far worse" in message), message
    assert "lower --lr" in message, message
    assert not any("Traceback" in m for m in said)
