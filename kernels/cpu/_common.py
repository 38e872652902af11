"""Helpers shared by the fast CPU units."""
from __future__ import annotations

import numpy as np

from minirnn.backend import array_module


def is_numpy(*arrays) -> bool:
    """True when every array given is a NumPy array (the fast path is CPU/NumPy only)."""
    return all(array_module(a) is np for a in arrays if a is not None)


def as_c(a, dtype):
    """``a`` as a C-contiguous array of ``dtype`` (no copy when it already is one)."""
    return np.ascontiguousarray(a, dtype=dtype)


def carry_in(dstate_T, index, shape, dtype):
    """A fresh writable buffer holding dstate_T[index] (zeros when absent)."""
    buf = np.zeros(shape, dtype=dtype)
    if dstate_T is not None and dstate_T[index] is not None:
        buf[...] = dstate_T[index]
    return buf
