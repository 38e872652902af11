"""`minirnn info`: the parameter table of a configuration."""
from __future__ import annotations

import click

from minirnn.info import parameter_table, format_parameter_table
from minirnn.training.presets import PRESETS

from .options import depth_option, hidden_option, layers_option, refuse_unused, unit_option


@click.command()
@unit_option
@click.option("--preset", type=click.Choice(PRESETS), default="paper", show_default=True)
@hidden_option
@layers_option
@depth_option
@click.option("--vocab-size", type=click.IntRange(min=1), default=None, help="Output words (classes = this + 2).")
def info(unit, preset, hidden, layers, depth, vocab_size):
    """Print the trainable parameters of a model: embedding, recurrent, dense."""
    refuse_unused(unit, depth=depth)
    overrides = {"hidden": hidden, "layers": layers, "depth": depth, "vocab_size": vocab_size}
    table = parameter_table(unit, preset, {k: v for k, v in overrides.items() if v is not None})
    click.echo(format_parameter_table(table))
