"""`minirnn gradcheck`: every gradient of a small float64 model against central differences."""
from __future__ import annotations

import sys

import click

from minirnn.gradcheck import DEFAULT_TOLERANCE, check_model_config, format_report

from .options import depth_option, device_option, outer_tanh_option, unit_option


@click.command()
@unit_option
@depth_option
@click.option("--layers", type=click.IntRange(min=1), default=2, show_default=True, help="Stacked layers.")
@click.option("--hidden", type=click.IntRange(min=1), default=5, show_default=True, help="Units per layer.")
@click.option("--batch", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--time", "time_steps", type=click.IntRange(min=1), default=6, show_default=True, help="Sequence length.")
@click.option("--vocab", type=click.IntRange(min=3), default=11, show_default=True, help="Output classes.")
@click.option("--max-entries", type=click.IntRange(min=1), default=40, show_default=True,
              help="Entries sampled per tensor (all when the tensor is smaller).")
@click.option("--impl", type=click.Choice(["fast", "reference"]), default="fast", show_default=True,
              help="Which implementation's backward pass to verify.")
@device_option
@outer_tanh_option
@click.option("--tolerance", type=float, default=DEFAULT_TOLERANCE, show_default=True,
              help="Largest relative error accepted (docs/gradcheck.md).")
@click.option("--seed", type=int, default=0, show_default=True)
def gradcheck(unit, depth, layers, hidden, batch, time_steps, vocab, max_entries, impl, device, outer_tanh,
              tolerance, seed):
    """Check every parameter tensor, the embedded inputs and the initial states.

    Prints the worst relative error per tensor and exits with status 1 when any
    exceeds the tolerance.
    """
    report, description = check_model_config(
        unit=unit, depth=depth or 2, layers=layers, hidden=hidden, batch=batch, time=time_steps, vocab=vocab,
        max_entries=max_entries, impl=impl, device=device, outer_tanh=outer_tanh, seed=seed)
    click.echo(description)
    click.echo(format_report(report, tolerance))
    worst = max(r.error for r in report)
    failed = [r.name for r in report if not r.passed(tolerance)]
    if failed:
        click.echo(f"FAILED: {len(failed)} tensor(s) above {tolerance:g} (worst {worst:.2e}): {', '.join(failed)}",
                   err=True)
        sys.exit(1)
    click.echo(f"passed: {len(report)} tensors, worst relative error {worst:.2e} <= {tolerance:g}")
