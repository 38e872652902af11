"""Options shared by several commands."""
from __future__ import annotations

import click

from minirnn.kernels import IMPLS
from minirnn.units import UNITS
from minirnn.units.registry import load_entry_points
from minirnn.backend import resolve_device
from minirnn.errors import MinirnnError



class UnitChoice(click.Choice):
    """The registry's units when the command runs, so a unit registered by an import or an
    installed package's entry point (minirnn/units/registry.py) is a valid --unit."""

    def __init__(self):
        super().__init__(())

    @property
    def choices(self):
        load_entry_points()
        return tuple(sorted(UNITS))

    @choices.setter
    def choices(self, value):   # click's constructor assigns the (empty) list given above
        pass


unit_option = click.option("--unit", type=UnitChoice(), required=True, help="Recurrent unit.")
depth_option = click.option(
    "--depth", type=click.IntRange(min=1), default=None,
    help=f"Nesting depth (only for: {', '.join(n for n, s in UNITS.items() if s.takes('depth'))}).")
layers_option = click.option("--layers", type=click.IntRange(min=1), default=None, help="Number of stacked layers.")
hidden_option = click.option("--hidden", type=click.IntRange(min=1), default=None, help="Units per layer.")
device_option = click.option("--device", type=click.Choice(["cpu", "gpu", "auto"]), default="cpu", show_default=True,
                             help="Where to compute (auto: the GPU when usable, else the CPU).")
# Off unless given; None lets a resumed run keep its checkpoint's setting.
outer_tanh_option = click.option(
    "--outer-tanh/--no-outer-tanh", default=None,
    help=f"{', '.join(n for n, s in UNITS.items() if s.takes('outer_tanh'))}: apply tanh to the outer level's "
         "candidate (the study's code does not). [default: off]")
impl_option = click.option(
    "--impl", type=click.Choice(IMPLS), default="fast", show_default=True,
    help="fast: fused kernels (Numba on the CPU, CUDA on the GPU); reference: the readable array code "
         "(the results agree to rounding).")
precision_option = click.option(
    "--precision", type=click.Choice(["fp32", "tf32"]), default="fp32", show_default=True,
    help="GPU float32 matrix products: fp32 (exact IEEE) or tf32 (tensor cores, inputs rounded to a "
         "10-bit mantissa; faster, loss differs by ~1e-3 relative, see docs/gpu.md).")


def refuse_unused(unit: str, **given) -> None:
    """An option the unit does not take (``--depth`` with the GRU) is refused, not silently ignored."""
    for option, value in given.items():
        if value not in (None, False) and not UNITS[unit].takes(option):
            users = ", ".join(n for n, s in UNITS.items() if s.takes(option))
            raise click.BadParameter(f"the {unit} unit has no such setting ({users} only); drop it",
                                     param_hint=f"'--{option.replace('_', '-')}'")


def apply_precision(precision: str, device: str) -> None:
    """Set the GPU's matrix-product precision; tf32 exists only on the GPU (``device``:
    cpu, gpu or auto)."""
    if precision == "fp32":
        return

    if resolve_device(device)[0] != "gpu":
        raise MinirnnError(f"--precision {precision} applies to GPU matrix products; add --device gpu "
                           "or drop --precision")
    from minirnn.kernels.cuda import set_precision

    set_precision(precision)
