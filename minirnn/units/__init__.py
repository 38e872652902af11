"""The three recurrent units, reference implementations (readable array code).

Each module implements the interface described in ``base.py``; the fast paths in
``minirnn.kernels`` offer the same interface.
"""
from __future__ import annotations

from .base import Unit
from .gru import GRU
from .lstm import LSTM
from .nlstm import NestedLSTM

UNITS = {"gru": GRU, "lstm": LSTM, "nlstm": NestedLSTM}


def make_unit(name: str, input_size: int, hidden_size: int, depth: int = 2, outer_tanh: bool = False) -> Unit:
    """Build a reference unit by name.  ``depth`` and ``outer_tanh`` apply to 'nlstm' only."""
    if name not in UNITS:
        raise ValueError(f"unknown unit {name!r}; choose one of {', '.join(UNITS)}")
    if name == "nlstm":
        return NestedLSTM(input_size, hidden_size, depth=depth, outer_tanh=outer_tanh)
    return UNITS[name](input_size, hidden_size)


__all__ = ["Unit", "GRU", "LSTM", "NestedLSTM", "UNITS", "make_unit"]
