"""Options shared by several commands."""
from __future__ import annotations

import click

from minirnn.units import UNITS

unit_option = click.option("--unit", type=click.Choice(sorted(UNITS)), required=True, help="Recurrent unit.")
depth_option = click.option("--depth", type=click.IntRange(min=1), default=None,
                            help="Nesting depth of the Nested LSTM (ignored by gru/lstm).")
layers_option = click.option("--layers", type=click.IntRange(min=1), default=None, help="Number of stacked layers.")
hidden_option = click.option("--hidden", type=click.IntRange(min=1), default=None, help="Units per layer.")
device_option = click.option("--device", type=click.Choice(["cpu", "gpu", "auto"]), default="cpu", show_default=True,
                             help="Where to compute (auto: the GPU when usable, else the CPU).")
outer_tanh_option = click.option("--outer-tanh/--no-outer-tanh", default=False, show_default=True,
                                 help="Nested LSTM: apply tanh to the outer level's candidate (the paper's code does not).")
