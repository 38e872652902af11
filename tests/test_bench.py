"""`minirnn bench` runs real steps and reports a well-formed table / JSON (no timing assertions)."""
import json

from click.testing import CliRunner

from minirnn.machine.bench import StepSetup, Stepper
from minirnn.cli.main import cli


def test_bench_json_reports_both_paths_and_their_ratio():
    args = ["bench", "--unit", "lstm", "--unit", "nlstm", "--hidden", "8", "--vocab-size", "20", "--batch-size", "4",
            "--time", "6", "--repeats", "2", "--pause", "0", "--json"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert [d["setup"]["unit"] for d in data] == ["lstm", "nlstm"]
    for d in data:
        assert set(d["impls"]) == {"fast", "reference"}
        for v in d["impls"].values():
            assert len(v["times_s"]) == 2 and all(t > 0 for t in v["times_s"])
            assert v["chars_per_s"] > 0 and v["peak_bytes"] > 0
        assert d["speedup_fast_over_reference"] > 0


def test_bench_table_names_every_configuration_and_steps_only_when_verbose():
    args = ["bench", "--unit", "gru", "--hidden", "8", "--vocab-size", "20", "--batch-size", "2", "--time", "3",
            "--repeats", "2", "--pause", "0", "--no-memory"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "gru: 1x8, 22 classes, batch 2x3" in result.output
    assert "fast" in result.output and "reference" in result.output
    assert "BLAS: " in result.output and " threads (" in result.output   # what the CPU timings ran on
    assert "gru fast step" not in result.output                     # the table alone
    verbose = CliRunner().invoke(cli, [*args, "--verbose"])
    assert verbose.exit_code == 0, verbose.output
    steps = [line for line in verbose.output.splitlines() if line.startswith("  gru ") and " step " in line]
    assert len(steps) == 2 * 2 and "gru fast step 2/2:" in verbose.output   # 2 repeats x (fast, reference)


def test_benchmark_steps_really_train():
    # The timed step is a real training step: repeating it lowers the loss on its batch.
    stepper = Stepper(StepSetup(unit="gru", hidden=8, layers=1, depth=1, classes=12, batch=4, time=5), "fast")
    first = stepper.step()
    for _ in range(30):
        last = stepper.step()
    assert last < first
