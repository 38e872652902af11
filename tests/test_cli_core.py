"""Real invocations of `minirnn info` and `minirnn gradcheck` (click's CliRunner and a subprocess)."""
import subprocess
import sys

import pytest
from click.testing import CliRunner

from minirnn.cli.main import cli

PAPER = {"gru": "4,323,600", "lstm": "5,764,800", "nlstm": "5,764,800"}


@pytest.mark.parametrize("unit", sorted(PAPER))
def test_info_prints_the_paper_counts(unit):
    result = CliRunner().invoke(cli, ["info", "--unit", unit, "--preset", "paper"])
    assert result.exit_code == 0, result.output
    lines = dict(line.split(None, 1) for line in result.output.splitlines()[2:] if line and not line.startswith("-"))
    assert lines["embedding"].strip() == "16,200"
    assert lines["recurrent"].strip() == PAPER[unit]
    assert lines["dense"].strip() == "9,847,986"


def test_gradcheck_nlstm_depth3_passes_and_prints_its_table():
    result = CliRunner().invoke(cli, ["gradcheck", "--unit", "nlstm", "--depth", "3", "--impl", "reference"])
    assert result.exit_code == 0, result.output
    for name in ("embedding", "layer0.W0", "layer0.W2", "layer1.b1", "dense.W", "input.X", "state0.layer1.c2"):
        assert name in result.output
    assert "passed:" in result.output and "FAIL" not in result.output


def test_gradcheck_exits_nonzero_above_tolerance():
    # An impossible tolerance proves the command really fails when errors exceed it.
    result = CliRunner().invoke(cli, ["gradcheck", "--unit", "gru", "--layers", "1", "--impl", "reference",
                                      "--tolerance", "1e-30"])
    assert result.exit_code == 1
    assert "FAILED" in result.output


def test_console_script_runs_as_a_subprocess():
    out = subprocess.run([sys.executable, "-m", "minirnn", "info", "--unit", "lstm"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "5,764,800" in out.stdout


def test_unknown_preset_is_a_one_line_error():
    result = CliRunner().invoke(cli, ["info", "--unit", "lstm", "--preset", "huge"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output
