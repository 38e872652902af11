"""The fast path: the same unit interface as ``minirnn.units``, one time loop per
unit (units.py) run by Numba kernels on the CPU (``cpu/``) and raw CUDA kernels
on the GPU (``cuda/``).

``accelerate`` is the one switch between the readable reference units and the
fast ones; tests assert both give the same losses and gradients.
"""
from __future__ import annotations
from minirnn.units import unit_spec
from .units import fast_unit

IMPLS = ("fast", "reference")


def accelerate(unit, device: str, impl: str = "fast"):
    """Return the implementation of ``unit`` to run on ``device`` ('cpu'/'gpu')."""
    if impl not in IMPLS:
        raise ValueError(f"unknown implementation {impl!r}; choose one of {', '.join(IMPLS)}")
    if impl == "reference":
        return unit

    if unit_spec(unit.name).fast_class(device) is None:   # no fast kernels: the reference code (noted once)
        return unit

    return fast_unit(unit, device)


def register_kernels(numba: dict, cuda=None) -> None:
    """Add the kernels of a unit defined outside minirnn (docs/units.md): ``numba`` maps
    kernel names to Numba functions (the CPU), ``cuda`` is the path of a .cu file with the
    CUDA kernels of the same names and argument lists (the GPU; it may include "gates.cuh")."""
    from .cpu import KERNELS

    KERNELS.update(numba)
    if cuda is not None:
        from .cuda import _source

        _source.add_file(cuda)
