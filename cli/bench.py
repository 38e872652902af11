"""`minirnn bench`: time training steps on the fast and the reference path."""
from __future__ import annotations

import json

import click

from minirnn.backend import resolve_device
from minirnn.machine.blas import report_lines
from minirnn.machine.bench import DEFAULT_PAUSE, StepSetup, check_bench, format_results, run_bench
from minirnn.training.presets import PRESETS, preset
from minirnn.kernels import IMPLS
from minirnn.units import UNITS

from .options import (UnitChoice, apply_precision, depth_option, device_option, hidden_option, layers_option,
                      precision_option)


@click.command()
@click.option("--unit", "units", type=UnitChoice(), multiple=True,
              help="Unit(s) to time (repeatable; default every registered unit).")
@click.option("--preset", "preset_name", type=click.Choice(PRESETS), default="demo", show_default=True,
              help="Sizes to start from.")
@hidden_option
@layers_option
@depth_option
@click.option("--vocab-size", type=click.IntRange(min=1), default=None, help="Output words (classes = this + 2).")
@click.option("--batch-size", type=click.IntRange(min=1), default=None)
@click.option("--time", "time_steps", type=click.IntRange(min=1), default=None,
              help="Sequence length (default: the preset's maximum length).")
@click.option("--impl", type=click.Choice(["both", *IMPLS]), default="both", show_default=True,
              help="both: time the fast and the reference path alternately and report their ratio.")
@device_option
@click.option("--dtype", type=click.Choice(["float32", "float64"]), default="float32", show_default=True)
@precision_option
@click.option("--repeats", type=click.IntRange(min=1), default=5, show_default=True)
@click.option("--counted", type=click.FloatRange(0.0, 1.0), default=1.0, show_default=True,
              help="Fraction of positions whose target counts in the loss (real batches have padding/unknowns).")
@click.option("--pause", type=click.FloatRange(min=0.0), default=DEFAULT_PAUSE, show_default=True,
              help="Untimed seconds before each timed step, so BLAS threads of the previous one stop spinning.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--no-memory", is_flag=True, help="Skip the (untimed) peak-memory measurement.")
@click.option("--verbose", is_flag=True, help="Also print each timed step's seconds (on stderr) before the table.")
def bench(units, preset_name, hidden, layers, depth, vocab_size, batch_size, time_steps, impl, device, dtype,
          precision, repeats, counted, pause, as_json, no_memory, verbose):
    """Median seconds per training step (forward, backward, Adam), characters/s and peak memory.

    With --impl both, fast and reference steps alternate in one run and the
    table reports the ratio.
    """
    device, note = resolve_device(device)
    if note:
        click.echo(note, err=True)
    apply_precision(precision, device)
    impls = ("fast", "reference") if impl == "both" else (impl,)
    setups = []
    for unit in units or tuple(UNITS):
        cfg = preset(preset_name, unit)
        overrides = {"hidden": hidden, "layers": layers, "depth": depth, "vocab_size": vocab_size,
                     "batch_size": batch_size}
        cfg.update({k: v for k, v in overrides.items() if v is not None})
        setup = StepSetup(unit=unit, hidden=cfg["hidden"], layers=cfg["layers"], depth=cfg["depth"],
                          classes=cfg["vocab_size"] + 2, batch=cfg["batch_size"],
                          time=time_steps or cfg["max_length"], dtype=dtype, device=device, counted_fraction=counted)
        check_bench(setup, pause)   # every setting refused before any output
        setups.append(setup)
    if device == "cpu" and not as_json:   # the kernels and threads behind every CPU timing
        for line in report_lines():
            click.echo(line, err=True)
    echo = (lambda m: click.echo(m, err=True)) if verbose else None
    results = [run_bench(setup, impls, repeats=repeats, memory=not no_memory, echo=echo, pause=pause)
               for setup in setups]
    if as_json:
        click.echo(json.dumps([r.as_dict() for r in results], indent=2))
    else:
        click.echo(format_results(results))
