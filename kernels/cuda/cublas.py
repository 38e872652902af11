"""Matrix products through cuBLAS, called directly (ctypes) on CuPy's handle.

Why not ``cupy.dot``: every cuBLAS call CuPy makes first sets the handle's stream
through ``cupy_backends.cuda.libs.cublas.setStream``, which raises
``NotImplementedError`` while the stream is capturing a CUDA graph.  So a time loop
whose products go through CuPy can never be captured.  cuBLAS itself supports
stream capture, provided the handle's stream is the capturing stream and the
handle has a user workspace (so that nothing is allocated while capturing).  This
module therefore

* finds the libcublas that CuPy already loaded (same library instance, so CuPy's
  handle is valid in it) and calls ``cublasGemmEx``, ``cublasSetStream_v2``,
  ``cublasSetPointerMode_v2`` and ``cublasSetWorkspace_v2`` through ctypes;
* turns a row-major product ``out = a @ b`` (NumPy semantics, operands C- or
  F-ordered views) into the column-major call cuBLAS expects (``plan_gemm``);
  that translation is pure Python, so tests check it on the CPU against
  ``numpy.matmul`` with a stand-in library that reads the raw pointers.

Compute types: ``fp32`` (the default) is exact IEEE float32 arithmetic
(``CUBLAS_COMPUTE_32F``); ``tf32`` lets float32 products round their inputs to
TensorFloat-32 (10-bit mantissa) on Ampere/Hopper tensor cores
(``CUBLAS_COMPUTE_32F_FAST_TF32``).  float64 always uses ``CUBLAS_COMPUTE_64F``.
"""
from __future__ import annotations

import ctypes
import os
from dataclasses import dataclass

import numpy as np
import logging

# cuBLAS / CUDA enum values (cublas_api.h, library_types.h)
OP_N, OP_T = 0, 1
CUDA_R_32F, CUDA_R_64F = 0, 1
COMPUTE_32F, COMPUTE_32F_FAST_TF32, COMPUTE_64F = 68, 77, 70
GEMM_DEFAULT = -1
POINTER_MODE_HOST = 0

PRECISIONS = ("fp32", "tf32")
WORKSPACE_BYTES = 32 << 20   # NVIDIA's recommendation for Hopper (4 MiB suffices before it)

_DATA_TYPES = {np.dtype(np.float32): CUDA_R_32F, np.dtype(np.float64): CUDA_R_64F}


class CublasError(RuntimeError):
    pass


def compute_type(dtype, precision: str = "fp32") -> int:
    dt = np.dtype(dtype)
    if precision not in PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    if dt == np.float64:
        return COMPUTE_64F
    if dt == np.float32:
        return COMPUTE_32F_FAST_TF32 if precision == "tf32" else COMPUTE_32F
    raise TypeError(f"cuBLAS products are float32 or float64, not {dt}")


def _as_column_major(a, role: str):
    """How a row-major (r x c) operand looks to column-major cuBLAS.

    Returns (op, ld): with op = N the memory is the (c x r) column-major matrix
    a^T with leading dimension ld (rows of ``a`` are contiguous); with op = T the
    memory is the (r x c) column-major matrix a itself (columns contiguous).
    """
    r, c = a.shape
    item = a.dtype.itemsize
    s0, s1 = a.strides
    # A dimension of extent 1 has a meaningless stride: treat it as packed.
    if (s1 == item or c == 1) and (r == 1 or (s0 % item == 0 and s0 // item >= c)):
        return OP_N, (s0 // item if r > 1 else max(c, 1))
    if (s0 == item or r == 1) and (c == 1 or (s1 % item == 0 and s1 // item >= r)):
        return OP_T, (s1 // item if c > 1 else max(r, 1))
    raise TypeError(f"cuBLAS operand {role} must have unit stride along one axis, got strides {a.strides} "
                    f"for shape {a.shape}")


@dataclass(frozen=True)
class GemmPlan:
    """One ``cublasGemmEx`` call, everything but the handle and the scalars' addresses."""
    opa: int
    opb: int
    m: int
    n: int
    k: int
    a_ptr: int
    a_type: int
    lda: int
    b_ptr: int
    b_type: int
    ldb: int
    c_ptr: int
    c_type: int
    ldc: int
    compute: int
    dtype: np.dtype


def plan_gemm(a, b, out, ptr, precision: str = "fp32") -> GemmPlan:
    """The column-major call computing out[...] = a @ b (row-major, NumPy semantics).

    Row-major C (m x n) is column-major C^T (n x m), and C^T = b^T a^T, so cuBLAS
    gets (b, a) in that order, with M = n, N = m, K = k.  ``ptr(x)`` gives an
    operand's device address.  No copies: an operand without a unit stride is
    refused.
    """
    if a.ndim != 2 or b.ndim != 2 or out.ndim != 2:
        raise ValueError(f"gemm needs 2-D operands, got {a.shape} @ {b.shape} -> {out.shape}")
    m, k = a.shape
    k2, n = b.shape
    if k != k2 or out.shape != (m, n):
        raise ValueError(f"gemm shapes do not match: {a.shape} @ {b.shape} -> {out.shape}")
    dt = np.dtype(out.dtype)
    if a.dtype != dt or b.dtype != dt or dt not in _DATA_TYPES:
        raise TypeError(f"gemm operands must share one float dtype, got {a.dtype}, {b.dtype} -> {out.dtype}")
    for name, v in (("m", m), ("n", n), ("k", k)):
        _check_int32(v, name)
    op_out, ldc = _as_column_major(out, "out")
    if op_out != OP_N or (m > 1 and n > 1 and out.strides[1] != dt.itemsize):
        raise TypeError("gemm output must be row-major (unit stride along its rows)")
    opb, ldb = _as_column_major(b, "b")
    opa, lda = _as_column_major(a, "a")
    for name, v in (("a's leading dimension", lda), ("b's leading dimension", ldb), ("out's leading dimension", ldc)):
        _check_int32(v, name)
    t = _DATA_TYPES[dt]
    return GemmPlan(opa=opb, opb=opa, m=n, n=m, k=k, a_ptr=ptr(b), a_type=t, lda=ldb, b_ptr=ptr(a), b_type=t,
                    ldb=lda, c_ptr=ptr(out), c_type=t, ldc=ldc, compute=compute_type(dt, precision), dtype=dt)


def _check_int32(v: int, name: str) -> None:
    """cublasGemmEx takes int sizes: ctypes would silently keep the low 32 bits (2**32 + 1 arrives as 1)."""
    if not 0 <= v < 2 ** 31:
        raise ValueError(f"gemm: {name} {v} does not fit cuBLAS's 32-bit int; split the product")


_SCALARS = {np.dtype(np.float32): ctypes.c_float, np.dtype(np.float64): ctypes.c_double}


class Cublas:
    """A cuBLAS handle and the library it belongs to.

    ``lib`` is any object with the four cuBLAS functions used here (ctypes on a
    GPU; tests pass a stand-in).  alpha = 1 and beta = 0 live in host memory owned
    by this object, so a captured graph may refer to them for its whole life.
    """

    def __init__(self, lib, handle: int):
        self.lib = lib
        self.handle = ctypes.c_void_p(handle)
        self._one = {dt: ct(1.0) for dt, ct in _SCALARS.items()}
        self._zero = {dt: ct(0.0) for dt, ct in _SCALARS.items()}
        self.workspace = None        # the device buffer, kept alive here
        self._workspace_args = None  # (address, bytes) to re-apply after every stream change

    @staticmethod
    def _check(status: int, what: str) -> None:
        if status != 0:
            raise CublasError(f"{what} failed with cuBLAS status {status}")

    def bind(self, stream_ptr: int) -> None:
        """Point the handle at ``stream_ptr`` with host scalars: before every batch of calls
        (CuPy's own calls move the handle to whatever stream was current then)."""
        self._check(self.lib.cublasSetStream_v2(self.handle, ctypes.c_void_p(stream_ptr)), "cublasSetStream")
        if self._workspace_args is not None:   # cublasSetStream resets the workspace to cuBLAS's own pool
            self._apply_workspace()
        self._check(self.lib.cublasSetPointerMode_v2(self.handle, POINTER_MODE_HOST), "cublasSetPointerMode")

    def set_workspace(self, buffer, ptr: int, nbytes: int) -> None:
        """Use ``buffer`` (device memory at ``ptr``, ``nbytes`` long) as the handle's workspace
        from now on, so that no call allocates (required while a graph is captured)."""
        self.workspace, self._workspace_args = buffer, (int(ptr), int(nbytes))
        self._apply_workspace()

    def _apply_workspace(self) -> None:
        ptr, nbytes = self._workspace_args
        self._check(self.lib.cublasSetWorkspace_v2(self.handle, ctypes.c_void_p(ptr), ctypes.c_size_t(nbytes)),
                    "cublasSetWorkspace")

    def call(self, plan: GemmPlan) -> None:
        one, zero = self._one[plan.dtype], self._zero[plan.dtype]
        status = self.lib.cublasGemmEx(
            self.handle, plan.opa, plan.opb, plan.m, plan.n, plan.k, ctypes.byref(one),
            ctypes.c_void_p(plan.a_ptr), plan.a_type, plan.lda, ctypes.c_void_p(plan.b_ptr), plan.b_type, plan.ldb,
            ctypes.byref(zero), ctypes.c_void_p(plan.c_ptr), plan.c_type, plan.ldc, plan.compute, GEMM_DEFAULT)
        self._check(status, "cublasGemmEx")


def _declare(lib) -> None:
    vp, i = ctypes.c_void_p, ctypes.c_int
    lib.cublasGemmEx.argtypes = [vp, i, i, i, i, i, vp, vp, i, i, vp, i, i, vp, vp, i, i, i, i]
    lib.cublasSetStream_v2.argtypes = [vp, vp]
    lib.cublasSetPointerMode_v2.argtypes = [vp, i]
    lib.cublasSetWorkspace_v2.argtypes = [vp, vp, ctypes.c_size_t]
    for f in (lib.cublasGemmEx, lib.cublasSetStream_v2, lib.cublasSetPointerMode_v2, lib.cublasSetWorkspace_v2):
        f.restype = i


def loaded_library_path(maps_text: str, major: int) -> str | None:
    """The path of libcublas (not libcublasLt) for CUDA ``major`` among a process's mapped files.

    By soname: a cu12 PyTorch may have mapped libcublas.so.12 into the same process,
    and CuPy's handle (cu13) is valid only in the library of CuPy's own CUDA major."""
    for line in maps_text.splitlines():
        fields = line.split(None, 5)
        path = fields[5].strip() if len(fields) == 6 else ""
        base = os.path.basename(path)
        if base == f"libcublas.so.{major}" or base.startswith(f"libcublas.so.{major}."):
            return path
    return None


def _address(arg) -> int:
    """The integer address behind a ctypes pointer argument (c_void_p or byref)."""
    if hasattr(arg, "_obj"):
        return ctypes.addressof(arg._obj)
    return int(getattr(arg, "value", arg) or 0)


class CupyWrappers:
    """The same four functions through CuPy's own cuBLAS bindings: the fallback when
    libcublas cannot be opened with ctypes.  Eager products work; CuPy refuses every
    call while a stream captures, so CUDA graphs then fall back to eager launches
    (with the warning that says so), and cuBLAS keeps its own workspace."""

    def __init__(self, cupy_cublas):
        self.lib = cupy_cublas

    def cublasSetStream_v2(self, handle, stream):
        self.lib.setStream(_address(handle), _address(stream))
        return 0

    def cublasSetPointerMode_v2(self, handle, mode):
        self.lib.setPointerMode(_address(handle), int(mode))
        return 0

    def cublasSetWorkspace_v2(self, handle, ptr, size):
        return 0

    def cublasGemmEx(self, handle, opa, opb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc,
                     compute, algo):
        self.lib.gemmEx(_address(handle), opa, opb, m, n, k, _address(alpha), _address(A), Atype, lda,
                        _address(B), Btype, ldb, _address(beta), _address(C), Ctype, ldc, compute, algo)
        return 0


def load_cupy_cublas(cupy) -> Cublas:
    """CuPy's cuBLAS handle for the current device, with ctypes access to the very
    library CuPy linked (found in /proc/self/maps once CuPy has created the handle)."""
    handle = cupy.cuda.device.get_cublas_handle()   # also makes sure libcublas is loaded
    major = cupy.cuda.runtime.runtimeGetVersion() // 1000
    path = None
    try:
        with open("/proc/self/maps") as f:
            path = loaded_library_path(f.read(), major)
    except OSError:
        pass
    candidates = [path] if path else []
    candidates += [f"libcublas.so.{major}"]   # never an unversioned libcublas.so: it may be another major
    errors = []
    for name in candidates:
        try:
            lib = ctypes.CDLL(name)
            _declare(lib)
            return Cublas(lib, int(handle))
        except (OSError, AttributeError) as exc:
            errors.append(f"{name}: {exc}")

    from cupy_backends.cuda.libs import cublas as cupy_cublas

    logging.getLogger("minirnn.cuda").warning(
        "minirnn: libcublas could not be opened with ctypes (%s); using CuPy's bindings, without CUDA graphs",
        "; ".join(errors))
    return Cublas(CupyWrappers(cupy_cublas), int(handle))
