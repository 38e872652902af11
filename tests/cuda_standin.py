"""The GPU backend on the CPU, for tests and measurements on machines without a GPU.

Everything above the hardware is the GPU path's own code: the model, the one time
loop per unit (kernels/units.py), ``CupyBackend`` itself (recording, argument
checks, GEMM plans, CUDA graph capture and its replay check).  Below it, stand-ins:

* ``FakeCublasLib`` implements the cuBLAS functions minirnn calls, with cuBLAS's
  column-major semantics, on host memory given by raw addresses (so a wrongly
  planned leading dimension or transpose reads the wrong elements, or is refused
  with CUBLAS_STATUS_INVALID_VALUE as cuBLAS would).  With the TF32 compute type
  the inputs are first rounded to TensorFloat-32, emulating tensor-core products.
* ``build_harness`` compiles the per-element bodies of gates.cuh for the host
  (g++, else nvcc), one loop per elementwise kernel, generated from the parsed
  kernel signatures, so the host runs exactly the functions the GPU runs.
* ``FakeCupy``: NumPy as the array module, and streams that can capture: while a
  stream captures, launches and products on it are kept as a graph instead of run.

``HostBackend`` is ``CupyBackend`` on these; ``emulated_gpu`` makes
``Model(device="gpu")`` use it.  What the stand-in cannot show: NVRTC, real
launches, real cuBLAS, and the softmax-CE kernel (not elementwise; the emulated
model uses the CPU's).
"""
from __future__ import annotations

import contextlib
import ctypes
import shutil
import subprocess
import threading
import types
from pathlib import Path

import numpy as np

from minirnn.kernels.cuda import _runtime, _source, cublas

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
    """cuBLAS's four functions on host memory; a product on a capturing stream joins its graph."""

    def __init__(self, streams=None):
        self.calls = []          # (name, values...) per call
        self.stream = None
        self.workspace = None
        self.pointer_mode = 0
        self.streams = streams if streams is not None else {}   # stream address -> FakeStream

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

    def cublasGemmEx(self, handle, *args):
        stream = self.streams.get(self.stream)
        if stream is not None and stream.capturing is not None:
            if self.workspace is None:
                return INVALID_VALUE     # cuBLAS would allocate while capturing
            stream.capturing.append(lambda: self._gemm(*args))
            return 0
        return self._gemm(*args)

    def _gemm(self, opa, opb, m, n, k, alpha, A, Atype, lda, B, Btype, ldb, beta, C, Ctype, ldc, compute, algo):
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


def fake_blas(streams=None):
    """A ``cublas.Cublas`` over the stand-in library (handle 1)."""
    return cublas.Cublas(FakeCublasLib(streams), 1)


def host_ptr(a) -> int:
    return a.ctypes.data


# ------------------------------------------------------------------- host harness
_FLOAT = {"double": "d", "float": "f"}
#: Extra compiler flags of the strict build (the default) and of the one that lets the
#: compiler contract a*b+c into FMAs (where this CPU has them), as GPU compilers do by default.
STRICT = ("-ffp-contract=off",)
CONTRACTED = ("-ffp-contract=fast", "-march=native")
# With flush=True every loop runs with denormal results flushed and denormal inputs read
# as zero (x86 MXCSR FTZ|DAZ, restored after the loop), as the GPU's float32 may.
_FLUSH = ("#if defined(__SSE2__)\n#include <xmmintrin.h>\n#define MR_FLUSH_ON unsigned mr_csr = _mm_getcsr(); "
          "_mm_setcsr(mr_csr | 0x8040u);\n#define MR_FLUSH_OFF _mm_setcsr(mr_csr);\n#else\n#define MR_FLUSH_ON\n"
          "#define MR_FLUSH_OFF\n#endif")


def harness_source(flush: bool = False) -> str:
    """C++ with one extern "C" loop per elementwise kernel and float type, calling gates.cuh
    (and the per-element bodies of added .cu files, whose __global__ wrappers become host loops)."""
    out = ["#define __global__", "#define MR_FOR_EACH(idx, n) for (int idx = 0; idx < (n); ++idx)",
           '#include "gates.cuh"', *(f'#include "{f}"' for f in _source.EXTRA_FILES),
           _FLUSH if flush else "#define MR_FLUSH_ON\n#define MR_FLUSH_OFF", ""]
    for k in _source.kernels().values():
        if not k.elementwise:
            continue
        for ctype_name, suffix in _FLOAT.items():
            params = ", ".join(f"{p.ctype.replace('T', ctype_name) if p.elem == 'T' else p.ctype} {p.name}"
                               for p in k.params)
            args = ", ".join(p.name for p in k.params[1:])
            out.append(f'extern "C" void {k.name}_{suffix}({params})\n'
                       f"{{\n    MR_FLUSH_ON\n    for (int idx = 0; idx < n; ++idx) "
                       f"{k.name}_elem<{ctype_name}>(idx, {args});\n    MR_FLUSH_OFF\n}}\n")
    return "\n".join(out)


def harness_command(src: Path, lib: Path, flags=STRICT) -> list | None:
    """The compile command (g++ preferred, else nvcc), or None without a compiler.
    By default FMA contraction is off, so that float results do not depend on the compiler's choice."""
    cxx = shutil.which("g++") or shutil.which("c++")
    if cxx is not None:
        return [cxx, "-std=c++17", "-O2", *flags, "-fPIC", "-shared", "-Wall", "-Wextra", "-Werror",
                f"-I{_source.HERE}", str(src), "-o", str(lib)]
    nvcc = shutil.which("nvcc")
    if nvcc is not None:
        return [nvcc, "-std=c++17", "-O2", "-x", "cu", "-shared", "-Xcompiler", ",".join(("-fPIC",) + tuple(flags)),
                f"-I{_source.HERE}", str(src), "-o", str(lib)]
    return None


def build_harness(folder, flags=STRICT, flush: bool = False) -> ctypes.CDLL:
    """Compile the host harness into ``folder`` and load it (RuntimeError without a compiler)."""
    folder = Path(folder)
    src, lib = folder / "harness.cpp", folder / "libharness.so"
    src.write_text(harness_source(flush))
    cmd = harness_command(src, lib, flags)
    if cmd is None:
        raise RuntimeError("no C++ compiler (g++ or nvcc) to build the host harness")
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if proc.returncode != 0:
        raise RuntimeError(f"building the host harness failed:\n{proc.stdout}{proc.stderr}")
    return ctypes.CDLL(str(lib))


# ------------------------------------------------------------------ CuPy stand-in
class FakeStream:
    """A stream that can capture: meanwhile launches and products on it join ``capturing``."""

    def __init__(self, cupy, ptr):
        self.cupy, self.ptr, self.capturing, self.fail = cupy, ptr, None, False

    def __enter__(self):
        self.cupy.stack().append(self)
        return self

    def __exit__(self, *exc):
        self.cupy.stack().pop()
        return False

    def begin_capture(self):
        self.capturing = []

    def end_capture(self):
        ops, self.capturing = self.capturing, None
        if self.fail:
            raise RuntimeError("capture invalidated\n(simulated)")
        return types.SimpleNamespace(launch=lambda stream=None: [op() for op in ops])


class FakeCupy:
    """NumPy under CuPy's name, with the few ``cupy.cuda`` pieces the backend uses.
    As in CuPy, the current stream is per thread."""

    def __init__(self, fail_capture=False):
        self.streams = {}
        self.fail_capture = fail_capture
        self.null = self._stream(0)
        self.local = threading.local()
        self.cuda = types.SimpleNamespace(
            Device=lambda i: types.SimpleNamespace(attributes={"MultiProcessorCount": 1}),
            Stream=lambda non_blocking=False: self._stream(1000 + len(self.streams)),
            get_current_stream=lambda: self.stack()[-1],
            using_allocator=lambda fn: contextlib.nullcontext())

    def stack(self) -> list:
        """This thread's streams entered with ``with``, the null stream first."""
        if not hasattr(self.local, "stack"):
            self.local.stack = [self.null]
        return self.local.stack

    def _stream(self, ptr):
        s = self.streams[ptr] = FakeStream(self, ptr)
        s.fail = self.fail_capture
        return s

    def __getattr__(self, name):
        return getattr(np, name)


class _HostKernel:
    """A host harness loop called as CuPy calls a kernel: (grid, block, converted arguments)."""

    def __init__(self, fn, cupy, counter):
        self.fn, self.cupy, self.counter = fn, cupy, counter

    def __call__(self, grid, block, args):
        conv = [ctypes.c_void_p(a.ctypes.data) if isinstance(a, np.ndarray) else
                {np.dtype(np.int32): ctypes.c_int, np.dtype(np.int64): ctypes.c_longlong,
                 np.dtype(np.float32): ctypes.c_float, np.dtype(np.float64): ctypes.c_double}[a.dtype](a)
                for a in args]
        self.counter[0] += 1
        stream = self.cupy.stack()[-1]
        if stream.capturing is not None:
            stream.capturing.append(lambda: self.fn(*conv))
        else:
            self.fn(*conv)


class HostBackend(_runtime.CupyBackend):
    """``CupyBackend`` itself on the stand-ins: host kernels, the cuBLAS stand-in, FakeCupy."""

    def __init__(self, lib, fail_capture=False):
        cupy = FakeCupy(fail_capture)
        super().__init__(cupy, 0, blas=None)
        self.lib, self.launches = lib, [0]
        self._blas = fake_blas(cupy.streams)
        self.workspace = np.empty(1024, np.uint8)
        self._blas.set_workspace(self.workspace, self.workspace.ctypes.data, self.workspace.nbytes)

    def function(self, name, dtype):
        suffix = "d" if np.dtype(dtype) == np.float64 else "f"
        return _HostKernel(getattr(self.lib, f"{name}_{suffix}"), self.cp, self.launches)

    @staticmethod
    def ptr(a):
        return a.ctypes.data


@contextlib.contextmanager
def emulated_gpu(backend: HostBackend):
    """Within the block, ``Model(device="gpu")`` builds NumPy arrays and fast units that
    run on ``backend`` (run them inside the block too: a unit finds its backend on first use)."""
    import minirnn.model

    saved = minirnn.model.get_xp, _runtime.get_backend
    minirnn.model.get_xp = lambda device: np
    _runtime.get_backend = lambda: backend
    try:
        yield backend
    finally:
        minirnn.model.get_xp, _runtime.get_backend = saved
