"""Helpers shared by the fast CPU units."""
from __future__ import annotations

import numpy as np

from minirnn.backend import array_module
from minirnn.workspace import WORKSPACE


def is_numpy(*arrays) -> bool:
    """True when every array given is a NumPy array (the fast path is CPU/NumPy only)."""
    return all(array_module(a) is np for a in arrays if a is not None)


def as_c(a, dtype):
    """``a`` as a C-contiguous array of ``dtype`` (no copy when it already is one)."""
    return np.ascontiguousarray(a, dtype=dtype)


def carry_in(dstate_T, index, shape, dtype):
    """A fresh writable buffer holding dstate_T[index] (zeros when absent)."""
    buf = WORKSPACE.zeros(shape, dtype)
    if dstate_T is not None and dstate_T[index] is not None:
        buf[...] = dstate_T[index]
    return buf


def scratch(shape, dtype):
    """A pooled uninitialised array (minirnn/workspace.py): no fresh pages, no page faults."""
    return WORKSPACE.empty(shape, dtype)


def matmul_into(a, b, dtype):
    """``a @ b`` written into pooled memory."""
    return np.matmul(a, b, out=WORKSPACE.empty((a.shape[0], b.shape[1]), dtype))
