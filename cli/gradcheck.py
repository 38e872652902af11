"""`minirnn gradcheck`: every gradient of a small float64 model against central differences."""
from __future__ import annotations

import math
import sys

import click

from minirnn.gradcheck import DEFAULT_TOLERANCE, check_model_config, format_report

from .options import depth_option, device_option, impl_option, outer_tanh_option, refuse_unused, unit_option

# a gradient check is a float64 test on a small model: far larger sizes are typos (and would not fit in memory)
MAX_SIZE = {"layers": 8, "depth": 8, "hidden": 256, "batch": 64, "time": 200, "vocab": 4096}


def _tolerance(ctx, param, value):
    if not math.isfinite(value) or value <= 0:
        raise click.BadParameter(f"{value} is not a positive finite number (e.g. {DEFAULT_TOLERANCE:g})")
    return value


@click.command()
@unit_option
@depth_option
@click.option("--layers", type=click.IntRange(1, MAX_SIZE["layers"]), default=2, show_default=True,
              help="Stacked layers.")
@click.option("--hidden", type=click.IntRange(1, MAX_SIZE["hidden"]), default=5, show_default=True,
              help="Units per layer.")
@click.option("--batch", type=click.IntRange(1, MAX_SIZE["batch"]), default=3, show_default=True)
@click.option("--time", "time_steps", type=click.IntRange(1, MAX_SIZE["time"]), default=6, show_default=True,
              help="Sequence length.")
@click.option("--vocab", type=click.IntRange(3, MAX_SIZE["vocab"]), default=11, show_default=True,
              help="Output classes.")
@click.option("--max-entries", type=click.IntRange(1, 1 << 20), default=40, show_default=True,
              help="Entries sampled per tensor (all when the tensor is smaller).")
@impl_option
@device_option
@outer_tanh_option
@click.option("--tolerance", type=float, default=DEFAULT_TOLERANCE, show_default=True, callback=_tolerance,
              help="Largest relative error accepted (docs/gradcheck.md).")
@click.option("--seed", type=click.IntRange(0, 2 ** 32 - 1), default=0, show_default=True)
def gradcheck(unit, depth, layers, hidden, batch, time_steps, vocab, max_entries, impl, device, outer_tanh,
              tolerance, seed):
    """Check every parameter tensor, the embedded inputs and the initial states.

    Prints the worst relative error per tensor and exits with status 1 when any
    exceeds the tolerance.
    """
    refuse_unused(unit, depth=depth, outer_tanh=outer_tanh)
    if depth is not None and depth > MAX_SIZE["depth"]:
        raise click.BadParameter(f"{depth} is above {MAX_SIZE['depth']} (a gradient check needs a small model)",
                                 param_hint="'--depth'")
    report, description = check_model_config(
        unit=unit, depth=depth or 2, layers=layers, hidden=hidden, batch=batch, time=time_steps, vocab=vocab,
        max_entries=max_entries, impl=impl, device=device, outer_tanh=bool(outer_tanh), seed=seed)
    click.echo(description)
    click.echo(format_report(report, tolerance))
    worst = max(r.error for r in report)
    failed = [r.name for r in report if not r.passed(tolerance)]
    if failed:
        click.echo(f"FAILED: {len(failed)} tensor(s) above {tolerance:g} (worst {worst:.2e}): {', '.join(failed)}",
                   err=True)
        sys.exit(1)
    click.echo(f"passed: {len(report)} tensors, worst relative error {worst:.2e} <= {tolerance:g}")
