"""The CPU backend of the fast units (kernels/units.py): NumPy products and Numba kernels.

``NUMBA`` is the backend every fast CPU unit uses.  ``kernel(name, dtype, n)`` is
the Numba kernel ``name`` of gates.py itself, called with the argument list of
the CUDA kernel of that name after its element count n (no wrapper in between:
the loop calls Numba directly, as ``gemm`` is ``numpy.matmul`` itself).  Products go to BLAS
(``numpy.matmul`` into a buffer), scratch memory comes from the pool of
minirnn/scratch.py (no fresh pages), and the input part of a layer whose
inputs are one-hot ids is a row lookup, its weight gradient a sum of rows per id.
"""
from __future__ import annotations

import numpy as np

from minirnn.scratch import POOL

from . import gates

#: Kernels of units outside minirnn, by name (``minirnn.kernels.register_kernels``).
KERNELS: dict = {}


def _takes_ids(x) -> bool:
    return x.ndim == 2 and x.dtype.kind in "iu"


class NumbaBackend:
    xp = np
    takes_ids = True
    keep_workspaces = 0   # a released workspace's memory goes back to the shared pool

    @property
    def gemm(self):
        """``numpy.matmul`` itself: gemm(a, b, out), out being a ufunc's third argument.  Looked up
        when a loop starts, so that a profiler's wrapper (benchmarks/step_profile.py) sees the products."""
        return np.matmul

    @staticmethod
    def kernel(name, dtype, n):
        """The Numba kernel ``name`` (for any n: it reads the sizes from its arrays)."""
        fn = KERNELS.get(name)
        return getattr(gates, name) if fn is None else fn

    @staticmethod
    def scratch(shape, dtype):
        """A pooled uninitialised array (minirnn/scratch.py): no fresh pages, no page faults."""
        return POOL.empty(shape, dtype)

    @staticmethod
    def transposed(a):
        """a^T as the time loop's products read it fastest: a contiguous pooled copy.  OpenBLAS
        multiplies a few rows by it 20-30% faster than by the transposed view (32 x 512 by
        512 x 128: 43 -> 31 us; 64 x 2400 by 2400 x 600: 1.24 -> 1.00 ms), so one copy per
        backward pays for itself within a few steps (docs/benchmarks.md)."""
        out = POOL.empty(a.shape[::-1], a.dtype)
        out[...] = a.T
        return out

    @staticmethod
    def bind(buffer, value):
        """A loop input: used where it is (only the GPU's recorded loops need fixed addresses)."""
        return np.ascontiguousarray(value, dtype=buffer.dtype)

    @staticmethod
    def result(a):
        """An array handed to the caller: a view (the pooled memory stays busy while it lives)."""
        return a

    @staticmethod
    def run_loop(ws, key, loop, outputs, reset=None, params=()) -> None:
        loop()

    @staticmethod
    def input_part(x, W_x, b, out) -> None:
        """out (T, B, G) <- x W_x + b at every position.

        For ids, x W_x is exactly the row W_x[id] (one 1 and zeros), so this is a row
        lookup in the table W_x + b: no product, no separate bias pass, same numbers."""
        if _takes_ids(x):
            np.take(W_x + b, x, axis=0, out=out, mode="clip")
        else:
            T, B, I = x.shape
            np.matmul(x.reshape(T * B, I), W_x, out=out.reshape(T * B, -1))
            out += b

    @staticmethod
    def input_weight_grad(x, dZ, out) -> None:
        """out (I, G) <- x^T dZ over all positions; for ids the sum of dZ rows per id (rows.py)."""
        if _takes_ids(x):
            from .rows import rows_add

            rows_add(x.reshape(-1), dZ, out)
        else:
            np.matmul(x.reshape(-1, x.shape[-1]).T, dZ, out=out)

    def input_grad(self, x, dZ, W_x):
        """dL/dx = dZ W_x^T as (T, B, I); None for ids (integer inputs have no gradient)."""
        if _takes_ids(x):
            return None
        T, B, I = x.shape
        out = self.scratch((T * B, I), dZ.dtype)
        np.matmul(dZ, W_x.T, out=out)
        return out.reshape(T, B, I)


NUMBA = NumbaBackend()
