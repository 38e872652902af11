"""The library computes, the command line talks: minirnn/ never imports click or prints by itself;
its messages and progress go through the reporter the caller installs (minirnn/messages.py)."""
import ast
import pathlib

import click
from click.testing import CliRunner

from minirnn import messages
from minirnn.cli.main import cli
from minirnn.study.connectivity import ansi
from minirnn.training.loop import TrainConfig, train
from tiny_corpus import write_tiny_corpus

LIBRARY = pathlib.Path(__file__).resolve().parents[1] / "minirnn"


def test_the_library_imports_no_click_and_calls_no_print():
    offenders = []
    for path in LIBRARY.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                if any(n and n.split(".")[0] == "click" for n in names):
                    offenders.append(f"{path.name}:{node.lineno} imports click")
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                offenders.append(f"{path.name}:{node.lineno} calls print")
    assert offenders == []


def _config(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "tiny.txt", words=600, seed=3)
    return TrainConfig.from_preset("demo", "gru", hidden=4, vocab_size=10, max_length=30, batch_size=8, steps=3,
                                   corpus=str(corpus), out=str(tmp_path / "run.h5"), eval_every=0,
                                   checkpoint_every=0, impl="reference")


def test_training_is_silent_by_default_and_talks_through_the_reporter(tmp_path, capsys):
    train(_config(tmp_path))
    assert capsys.readouterr() == ("", "")             # no reporter installed: nothing printed

    said, bars = [], []

    class Collect:
        def say(self, message, err=False):
            said.append((message, err))

        def progress(self, length, label, steps=False):
            bars.append((length, label, steps))
            return messages.NoBar()

    previous = messages.use(Collect())
    try:
        train(_config(tmp_path), overwrite=True)
    finally:
        messages.use(previous)
    assert capsys.readouterr() == ("", "")
    assert any(m.startswith("training gru") and err for m, err in said)
    assert any(m.startswith("checkpoint: ") and not err for m, err in said)
    assert bars == [(3, "gru", True)]


def test_the_command_line_installs_its_console_and_restores_silence(tmp_path):
    corpus = write_tiny_corpus(tmp_path / "tiny.txt", words=600, seed=3)
    result = CliRunner().invoke(cli, ["train", "--unit", "gru", "--hidden", "4", "--vocab-size", "10",
                                      "--max-length", "30", "--batch-size", "8", "--steps", "2", "--corpus",
                                      str(corpus), "--out", str(tmp_path / "cli.h5"), "--no-progress"])
    assert result.exit_code == 0, result.output
    assert "checkpoint: " in result.output
    assert isinstance(messages.current(), messages.Silent)


def test_terminal_colours_are_built_as_click_would():
    assert ansi("a", (1, 2, 3), fg_black=True, bold=True, underline=True) == \
        click.style("a", fg="black", bg=(1, 2, 3), bold=True, underline=True)
    assert ansi("a", 5, fg_black=True, bold=False, underline=False) == \
        click.style("a", fg="black", bg=5, bold=False, underline=False)
    assert ansi(" ", (9, 8, 7)) == click.style(" ", bg=(9, 8, 7))


def test_the_rate_and_eta_are_recent_not_averaged_from_the_start():
    now = [0.0]
    speed = messages.RecentRate(total=100, window=5, clock=lambda: now[0])
    assert speed.describe("chars/s") == "timing..."
    now[0] = 120.0                                  # step 1 took 2 minutes (compiling the kernels)
    speed.update(1, 1000)
    assert speed.describe("chars/s") == "timing..."
    for step in range(2, 11):                       # then 1 s and 1,000 characters per step
        now[0] += 1.0
        speed.update(step, 1000 * step)
    assert speed.describe("chars/s") == "1,000 chars/s, ETA 1:30"   # 90 steps left at 1 s, the compile forgotten
    now[0] += 4000.0                                # a step of 4,000 s weighs on the window only
    speed.update(11, 11000)
    # the window now holds steps 6..11: 5 steps in 4,004 s, 5,000 characters; 89 steps left
    assert speed.describe("chars/s") == f"1 chars/s, ETA {messages.clock_time(89 * 4004 / 5)}"
    assert messages.clock_time(71271.2) == "19:47:51" and messages.clock_time(59.6) == "1:00"


def test_the_training_bar_shows_a_recent_rate_and_the_step_of_its_validation(tmp_path):
    texts = []

    class Bar(messages.NoBar):
        def update(self, n, text=None):
            texts.append(text)

    class Collect(messages.Silent):
        def progress(self, length, label, steps=False):
            return Bar()

    config = _config(tmp_path)
    config.eval_every, config.steps = 2, 3
    previous = messages.use(Collect())
    try:
        train(config)
    finally:
        messages.use(previous)
    assert len(texts) == 3 and texts[0].startswith("step 1 loss ") and texts[0].endswith(" timing...")
    assert " val " not in texts[0] and "(step 2) " in texts[1] and "(step 3) " in texts[2]
    assert all(" chars/s, ETA " in t for t in texts[1:]) and texts[2].endswith("ETA 0:00")
