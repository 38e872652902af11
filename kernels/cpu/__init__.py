"""The fast CPU path: fused Numba step kernels around batched BLAS products.

``fast_cpu_unit(unit)`` takes a reference unit (``minirnn.units``) and returns a
unit of the same configuration whose forward/backward use the fused kernels
(docs/kernels.md).  Parameters, state, cache-free interface and results are the
reference's (to rounding); only NumPy arrays take the fast path, anything else
falls back to the reference code.
"""
from __future__ import annotations

from minirnn.units.gru import GRU
from minirnn.units.lstm import LSTM
from minirnn.units.nlstm import NestedLSTM

from .gru import FastGRU
from .lstm import FastLSTM
from .nlstm import FastNestedLSTM

FAST = {GRU: FastGRU, LSTM: FastLSTM, NestedLSTM: FastNestedLSTM}


def fast_cpu_unit(unit):
    """A fast CPU unit with ``unit``'s configuration (returns ``unit`` itself if already fast)."""
    if isinstance(unit, tuple(FAST.values())):
        return unit
    for ref_cls, fast_cls in FAST.items():
        if type(unit) is ref_cls:
            return fast_cls(**unit.config())
    raise TypeError(f"no fast CPU implementation for {type(unit).__name__}")


__all__ = ["fast_cpu_unit", "FastGRU", "FastLSTM", "FastNestedLSTM"]
