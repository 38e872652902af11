"""The GPU path emulated on the CPU, for tests and measurements on machines without a GPU.

Everything above the hardware is the GPU path's own code: the model, the CUDA
units' orchestration (kernels/cuda/units.py), the GEMM plans (cublas.py).  Below
it, two stand-ins:

* ``FakeCublasLib`` implements the cuBLAS functions minirnn calls, with cuBLAS's
  column-major semantics, on host memory given by raw addresses (so a wrongly
  planned leading dimension or transpose reads the wrong elements, or is refused
  with CUBLAS_STATUS_INVALID_VALUE as cuBLAS would).  With the TF32 compute type
  the inputs are first rounded to TensorFloat-32, emulating tensor-core products.
* ``build_harness`` compiles the per-element bodies of gates.cuh for the host
  (g++, else nvcc), one loop per elementwise kernel, generated from the parsed
  kernel signatures, so the host runs exactly the functions the GPU runs.

``HostBackend`` puts them behind the backend interface of the CUDA units, and
``emulated_gpu`` makes ``Model(device="gpu")`` use it.  What the emulation cannot
show: NVRTC, real launches, real cuBLAS, CUDA graphs, and the softmax-CE kernel
(not elementwise; the emulated model uses the CPU's).
"""
from __future__ import annotations

import contextlib
import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np

from . import _source, cublas

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


# ------------------------------------------------------------------- host harness
_CTYPES = {"int32": ctypes.c_int, "int64": ctypes.c_longlong}
_FLOAT = {"double": (np.float64, ctypes.c_double, "d"), "float": (np.float32, ctypes.c_float, "f")}


def harness_source() -> str:
    """C++ with one extern "C" loop per elementwise kernel and float type, calling gates.cuh."""
    out = ['#include "gates.cuh"', ""]
    for k in _source.kernels().values():
        if not k.elementwise:
            continue
        for ctype_name, (_, _, suffix) in _FLOAT.items():
            params = ", ".join(f"{p.ctype.replace('T', ctype_name) if p.elem == 'T' else p.ctype} {p.name}"
                               for p in k.params)
            args = ", ".join(p.name for p in k.params[1:])
            out.append(f'extern "C" void {k.name}_{suffix}({params})\n'
                       f"{{\n    for (int idx = 0; idx < n; ++idx) {k.name}_elem<{ctype_name}>(idx, {args});\n}}\n")
    return "\n".join(out)


def harness_command(src: Path, lib: Path) -> list | None:
    """The compile command (g++ preferred, else nvcc), or None without a compiler.
    FMA contraction is off so that float results do not depend on the compiler's choice."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is not None:
        return [cxx, "-std=c++17", "-O2", "-ffp-contract=off", "-fPIC", "-shared", "-Wall", "-Wextra", "-Werror",
                f"-I{_source.HERE}", str(src), "-o", str(lib)]
    nvcc = shutil.which("nvcc")
    if nvcc is not None:
        return [nvcc, "-std=c++17", "-O2", "-x", "cu", "-shared", "-Xcompiler", "-fPIC,-ffp-contract=off",
                f"-I{_source.HERE}", str(src), "-o", str(lib)]
    return None


def build_harness(folder) -> ctypes.CDLL:
    """Compile the host harness into ``folder`` and load it (RuntimeError without a compiler)."""
    folder = Path(folder)
    src, lib = folder / "harness.cpp", folder / "libharness.so"
    src.write_text(harness_source())
    cmd = harness_command(src, lib)
    if cmd is None:
        raise RuntimeError("no C++ compiler (g++ or nvcc) to build the host harness")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"building the host harness failed:\n{proc.stdout}{proc.stderr}")
    return ctypes.CDLL(str(lib))


class HostBackend:
    """The CUDA units' backend interface on the CPU: the GPU's GEMM plans run by
    ``FakeCublasLib`` and the host-compiled kernel bodies.

    With ``check_rerun`` (tests), ``run_loop`` runs each loop twice, resetting in
    between, and insists on identical results: that is what the GPU's graph
    capture relies on (a loop must be re-runnable after reset).
    """

    xp = np

    def __init__(self, lib, precision: str = "fp32", check_rerun: bool = True):
        self.lib = lib
        self.loops = 0
        self.blas = fake_blas()
        self.precision = precision
        self.check_rerun = check_rerun

    def gemm(self, a, b, out):
        assert out.flags.c_contiguous
        self.blas.call(cublas.plan_gemm(a, b, out, host_ptr, self.precision))

    @staticmethod
    def ptr(a):
        return a.ctypes.data

    def launch(self, name, dtype, n, *args, grid=None, block=256):
        spec = _source.kernels()[name]
        assert spec.elementwise, name
        assert len(args) + 1 == len(spec.params), f"{name}: wrong argument count"
        fdt, fct, suffix = _FLOAT["double" if np.dtype(dtype) == np.float64 else "float"]
        conv = [ctypes.c_int(int(n))]
        for p, a in zip(spec.params[1:], args):
            if p.kind == "scalar":
                conv.append(fct(a) if p.elem == "T" else _CTYPES[p.elem](int(a)))
            else:
                want = np.dtype(fdt) if p.elem == "T" else np.dtype(p.elem)
                assert isinstance(a, np.ndarray) and a.dtype == want and a.flags.c_contiguous, \
                    f"{name}: {p.name} must be a C-contiguous {want} array"
                conv.append(ctypes.c_void_p(a.ctypes.data))
        getattr(self.lib, f"{name}_{suffix}")(*conv)

    def run_loop(self, ws, key, loop, outputs, reset=None, params=()):
        self.loops += 1
        loop()
        if not self.check_rerun:
            return
        first = [a.copy() for a in outputs()]
        if reset is not None:
            reset()
        loop()
        for a, f in zip(outputs(), first):
            np.testing.assert_array_equal(a, f, err_msg=f"loop {key} is not re-runnable after reset")


@contextlib.contextmanager
def emulated_gpu(backend: HostBackend):
    """Within the block, ``Model(device="gpu")`` builds NumPy arrays and CUDA units that
    run on ``backend`` (run them inside the block too: a unit finds its backend on first use)."""
    import minirnn.model

    from . import _runtime

    saved = minirnn.model.get_xp, _runtime.get_backend
    minirnn.model.get_xp = lambda device: np
    _runtime.get_backend = lambda: backend
    try:
        yield backend
    finally:
        minirnn.model.get_xp, _runtime.get_backend = saved
