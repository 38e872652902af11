"""The recurrent units: reference implementations (readable array code) and the registry.

Each unit module implements the interface described in ``base.py``; the fast
paths in ``minirnn.kernels`` offer the same interface.  ``registry.py`` holds one
entry per unit (reference class, fast classes, options, preset sizes): the rest
of minirnn finds units there.
"""
from __future__ import annotations

from .base import Unit
from .gru import GRU
from .lstm import LSTM
from .nlstm import NestedLSTM
from .registry import REGISTRY, UnitSpec, register, unit_spec

#: Unit name -> its registry entry (the registry itself, so units registered later appear here too).
UNITS = REGISTRY


def make_unit(name: str, input_size: int, hidden_size: int, depth: int = 2, outer_tanh: bool = False) -> Unit:
    """Build a reference unit by name; options a unit does not take (depth, outer_tanh) are ignored."""
    return unit_spec(name).build(input_size, hidden_size, depth=depth, outer_tanh=outer_tanh)


__all__ = ["Unit", "GRU", "LSTM", "NestedLSTM", "UNITS", "UnitSpec", "make_unit", "register", "unit_spec"]
