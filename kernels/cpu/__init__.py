"""The fast CPU path: fused Numba step kernels around batched BLAS products.

``fast_cpu_unit(unit)`` takes a reference unit (``minirnn.units``) and returns a
unit of the same configuration whose forward/backward use the fused kernels
(docs/kernels.md).  Parameters, state, cache-free interface and results are the
reference's (to rounding); only NumPy arrays take the fast path, anything else
falls back to the reference code.
"""
from __future__ import annotations

from minirnn.units import unit_spec

from ._common import FastCPUUnit
from .gru import FastGRU
from .lstm import FastLSTM
from .nlstm import FastNestedLSTM


def fast_cpu_unit(unit):
    """A fast CPU unit with ``unit``'s configuration (returns ``unit`` itself if already fast).

    The fast class is the unit's registry entry's (minirnn/units/registry.py)."""
    if isinstance(unit, FastCPUUnit):
        return unit
    spec = unit_spec(unit.name)
    fast_cls = spec.fast_class("cpu")
    if fast_cls is None or type(unit) is not spec.reference:
        raise TypeError(f"no fast CPU implementation for {type(unit).__name__}")
    return fast_cls(**unit.config())


__all__ = ["fast_cpu_unit", "FastGRU", "FastLSTM", "FastNestedLSTM"]
