"""Helpers shared by the fast CPU units."""
from __future__ import annotations

import numpy as np

from minirnn.backend import array_module
from minirnn.workspace import WORKSPACE


def takes_ids(x) -> bool:
    """True when ``x`` is integer ids (T, B): one-hot input rows given by their ids (docs/layers.md [EMB-F2])."""
    return x.ndim == 2 and x.dtype.kind in "iu"


class FastCPUUnit:
    """Mixin of the fast CPU units (listed before the reference unit among the bases)."""

    takes_ids = True   # x may be one-hot input rows given as integer ids (T, B): input_part

    @staticmethod
    def prepare_input(x, state0):
        """(x, dtype): the float dtype to compute in (ids carry none: the state's then) and
        x C-contiguous, ids as they are, values in that dtype."""
        if takes_ids(x):
            return np.ascontiguousarray(x), np.result_type(state0[0].dtype, np.float32)
        dt = np.result_type(x.dtype, np.float32)
        return as_c(x, dt), dt


def input_part(x, W_x, b, dtype):
    """Zx = x W_x + b at every position: (T, B, G) in pooled memory.

    For ids, x W_x is exactly the row W_x[id] (one 1 and zeros), so Zx is a row
    lookup in the table W_x + b: no product, no separate bias pass, same numbers.
    """
    if takes_ids(x):
        T, B = x.shape
        table = W_x + b
        return np.take(table, x, axis=0, out=scratch((T, B, W_x.shape[1]), dtype), mode="clip")
    T, B, I = x.shape
    Zx = matmul_into(x.reshape(T * B, I), W_x, dtype).reshape(T, B, W_x.shape[1])
    Zx += b
    return Zx


def input_weight_grad(x, dZ, out):
    """out (I, G) <- x^T dZ over all positions, dZ (T*B, G) C-contiguous.

    For ids: the sum of dZ rows per id (kernels/cpu/rows.py), instead of a
    product with the one-hot matrix."""
    if takes_ids(x):
        from .rows import rows_add

        rows_add(x.reshape(-1), dZ, out)
    else:
        np.matmul(x.reshape(-1, x.shape[-1]).T, dZ, out=out)


def input_grad(x, dZ, W_x, dtype):
    """dL/dx = dZ W_x^T as (T, B, I); None for ids (integer inputs have no gradient)."""
    if takes_ids(x):
        return None
    T, B, I = x.shape
    return matmul_into(dZ, W_x.T, dtype).reshape(T, B, I)


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
