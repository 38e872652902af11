"""A stand-in for libcublas that runs on the CPU, for tests.

It implements the four functions ``kernels/cuda/cublas.py`` calls, with cuBLAS's
own column-major semantics, on host memory given by raw addresses: a product
whose leading dimensions or transposes are planned wrongly reads or writes the
wrong elements (or is refused with CUBLAS_STATUS_INVALID_VALUE, as cuBLAS
would), so comparing with ``numpy.matmul`` tests the plan, not a re-statement
of it.  Every call is recorded.  With the TF32 compute type the inputs are
rounded to TensorFloat-32 first, emulating tensor-core products.
"""
from __future__ import annotations

import ctypes

import numpy as np

from minirnn.kernels.cuda import cublas

INVALID_VALUE = 7
_TYPES = {cublas.CUDA_R_32F: np.float32, cublas.CUDA_R_64F: np.float64}


def tf32_round(a):
    """Round float32 values to TensorFloat-32 (10 explicit mantissa bits), to nearest even."""
    bits = np.ascontiguousarray(a, dtype=np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0xFFF + ((bits >> 13) & 1)) & ~np.uint64(0x1FFF)
    return bits.astype(np.uint32).view(np.float32).reshape(np.shape(a))


def _value(arg):
    """The Python value behind a ctypes argument (c_void_p, byref(c_float), int)."""
    if hasattr(arg, "_obj"):            # byref(...)
        return arg._obj.value
    if isinstance(arg, ctypes.c_void_p):
        return arg.value or 0
    if isinstance(arg, (ctypes.c_size_t, ctypes.c_int)):
        return arg.value
    return arg


def column_major(ptr, dtype, rows, cols, ld):
    """A NumPy view of a column-major (rows x cols) matrix with leading dimension ld at ``ptr``."""
    dt = np.dtype(dtype)
    span = (cols - 1) * ld + rows
    raw = (ctypes.c_char * (span * dt.itemsize)).from_address(ptr)
    base = np.frombuffer(raw, dtype=dt)
    return np.lib.stride_tricks.as_strided(base, shape=(rows, cols), strides=(dt.itemsize, ld * dt.itemsize))


class FakeCublasLib:
    def __init__(self):
        self.calls = []          # (name, values...) per call
        self.stream = None
        self.workspace = None
        self.pointer_mode = 0

    def cublasSetStream_v2(self, handle, stream):
        self.stream = _value(stream)
        self.workspace = None    # as the real library: a stream change drops the user workspace
        self.calls.append(("setStream", self.stream))
        return 0

    def cublasSetPointerMode_v2(self, handle, mode):
        self.pointer_mode = _value(mode)
        return 0

    def cublasSetWorkspace_v2(self, handle, ptr, size):
        self.workspace = (_value(ptr), _value(size))
        return 0

    def cublasGemmEx(self, handle, opa, opb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc,
                     compute, algo):
        v = [_value(x) for x in (opa, opb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc,
                                 compute, algo)]
        opa, opb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc, compute, algo = v
        self.calls.append(("gemm", dict(opa=opa, opb=opb, m=m, n=n, k=k, lda=lda, ldb=ldb, ldc=ldc,
                                        compute=compute)))
        if not (Atype == Btype == Ctype) or Atype not in _TYPES or self.pointer_mode != 0:
            return INVALID_VALUE
        dt = _TYPES[Atype]
        a_rows = m if opa == cublas.OP_N else k
        b_rows = k if opb == cublas.OP_N else n
        if min(m, n, k) < 0 or lda < max(1, a_rows) or ldb < max(1, b_rows) or ldc < max(1, m):
            return INVALID_VALUE
        if m == 0 or n == 0:
            return 0
        a = column_major(A, dt, a_rows, m + k - a_rows, lda)
        b = column_major(B, dt, b_rows, n + k - b_rows, ldb)
        a = a if opa == cublas.OP_N else a.T
        b = b if opb == cublas.OP_N else b.T
        if compute == cublas.COMPUTE_32F_FAST_TF32:
            a, b = tf32_round(a), tf32_round(b)
        product = np.matmul(a.astype(np.float64), b.astype(np.float64)) if dt == np.float64 else np.matmul(a, b)
        c = column_major(C, dt, m, n, ldc)
        c[...] = alpha * product + (beta * c if beta != 0 else 0)
        return 0

    def gemms(self):
        return [c[1] for c in self.calls if c[0] == "gemm"]


def fake_blas():
    """A ``cublas.Cublas`` over the stand-in library (handle 1)."""
    return cublas.Cublas(FakeCublasLib(), 1)


def host_ptr(a) -> int:
    return a.ctypes.data
