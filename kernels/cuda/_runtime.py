"""Running the CUDA kernels with CuPy: compiling, launching, GEMMs, CUDA graphs.

Imported only when the GPU is used; ``import cupy`` happens in ``get_backend``.

* Compiling: each .cu file becomes one ``cupy.RawModule`` (NVRTC), compiled the
  first time one of its kernels is needed, from ``_source.module(file)``: its
  text, NVRTC options and name expressions (the float and double instantiations
  of every kernel); CuPy caches the binaries on disk.
* Launching: ``launch(name, dtype, n, *args)`` checks the arguments against the
  kernel's parsed C signature (count, dtypes, contiguity; _source.Kernel.convert)
  and converts scalars to the exact C types, so a mistake raises a TypeError
  instead of corrupting memory; the launch then reaches the .cu wrapper, which
  calls the body in gates.cuh.
* GEMMs: cuBLAS ``cublasGemmEx`` called directly on CuPy's handle (cublas.py),
  always into a preallocated row-major ``out``; operands are C- or F-ordered
  views, so no copy and no allocation happens.  (``cupy.dot`` cannot be used in
  a loop that is to be captured: CuPy refuses every cuBLAS call while a stream
  captures.)
* Time loops: ``run_loop`` *records* a unit's time loop once per (workspace,
  direction, T, weight addresses, precision): every launch is resolved and its
  arguments checked and converted, every GEMM planned, into a list of ready
  operations (a workspace keeps the 8 most recently used loops).  The list is
  then run eagerly (first sighting), captured into a CUDA graph (second
  sighting; the first replay is checked against the eager result, and capture
  is refused if anything tries to allocate memory meanwhile), and the graph
  replayed from then on.  So the Python cost of
  checking arguments is paid once, not per launch.  Any capture failure falls
  back to eager launches for good, with one warning line giving the reason.
  MINIRNN_CUDA_GRAPHS=0 disables graphs.
"""
from __future__ import annotations

import logging
import os
import threading

import numpy as np

from . import _source, cublas, wheels
from minirnn.backend import get_xp

log = logging.getLogger("minirnn.cuda")

THREADS = 256
MAX_LOOPS = 8        # recorded loops (and their CUDA graphs) kept per workspace; the least recently used go

_state = {
    "graphs": os.environ.get("MINIRNN_CUDA_GRAPHS", "1") not in ("0", "false", "no", "off"),
    "precision": "fp32",
    "fallback_reason": None,
    "captured": 0,
    "replayed": 0,
    "eager_loops": 0,
}


def set_graphs(enabled: bool) -> None:
    """Turn CUDA graph capture on or off for this process (tests compare both paths)."""
    _state["graphs"] = bool(enabled)
    if enabled:
        _state["fallback_reason"] = None


def set_precision(precision: str) -> None:
    """Compute type of float32 matrix products for this process: "fp32" (exact, the
    default) or "tf32" (tensor cores, inputs rounded to a 10-bit mantissa)."""
    if precision not in cublas.PRECISIONS:
        raise ValueError(f"unknown precision {precision!r}; choose one of {', '.join(cublas.PRECISIONS)}")
    _state["precision"] = precision


def graph_status() -> dict:
    """Counters and, after a fallback, the reason graphs were turned off."""
    return dict(_state)


class CaptureAllocationError(RuntimeError):
    """Raised by the allocator installed during capture: the graph would bake in
    memory that CuPy's pool could hand to someone else afterwards."""


def _refuse_allocation(size):
    raise CaptureAllocationError(f"an allocation of {size} bytes was attempted during CUDA graph capture")


class _Loop:
    """A recorded time loop: its identity, its ready operations and, once captured, its graph.
    A workspace keeps the MAX_LOOPS most recently used ones."""

    __slots__ = ("ident", "ops", "seen", "graph", "eager_only")

    def __init__(self, ident, ops):
        self.ident, self.ops = ident, ops
        self.seen, self.graph, self.eager_only = 1, None, False


class CupyBackend:
    """The backend of the fast units (kernels/units.py) on a CUDA device.

    Per thread (``minirnn serve`` computes in several): the loop being recorded,
    the cuBLAS handle with the stream it is bound to (CuPy's handles are per
    thread too) and the capture stream."""

    keep_workspaces = 2   # released workspaces kept per unit: their loops and graphs replay
    takes_ids = False     # the first layer gets one-hot rows (a product with the 28-row table)

    def __init__(self, cupy, device_id: int, blas=None):
        self.cp = self.xp = cupy
        self.device_id = device_id
        self._modules: dict = {}
        self._functions: dict = {}
        sms = cupy.cuda.Device(device_id).attributes["MultiProcessorCount"]
        self.max_blocks = 32 * int(sms)
        self._blas = blas             # a fixed cuBLAS (tests); else one per thread
        self._local = threading.local()

    # --- kernels ---------------------------------------------------------------
    def function(self, name: str, dtype):
        """The compiled kernel ``name<float|double>`` (its .cu module compiled on first use)."""
        key = (name, np.dtype(dtype))
        fn = self._functions.get(key)
        if fn is None:
            file = _source.kernels()[name].file
            module = self._modules.get(file)
            try:
                if module is None:
                    text, options, names = _source.module(file)
                    module = self._modules[file] = self.cp.RawModule(code=text, options=options,
                                                                     name_expressions=names)
                fn = module.get_function(_source.instance_name(name, dtype))
            except Exception as exc:
                raise wheels.library_error(exc, wheels.cuda_major(self.cp)) or exc
            self._functions[key] = fn
        return fn

    def kernel(self, name: str, dtype, n: int):
        """Kernel ``name`` for ``n`` elements, as a function of its other arguments (each call a ``launch``)."""
        return lambda *args: self.launch(name, dtype, n, *args)

    def launch(self, name: str, dtype, n: int, *args, grid: int | None = None, block: int = THREADS) -> None:
        """Launch kernel ``name`` for ``n`` elements (or, with ``grid``, that many blocks of ``block`` threads):
        the arguments are checked against the kernel's C signature and converted once, then the
        launch runs (or is recorded, inside ``run_loop``)."""
        if n <= 0:
            return
        fn = self.function(name, dtype)
        converted = _source.kernels()[name].convert(dtype, n, args, self.cp.ndarray)
        blocks = grid if grid is not None else min((n + block - 1) // block, self.max_blocks)
        grid_dims, block_dims = (int(blocks),), (int(block),)
        self._submit(lambda: fn(grid_dims, block_dims, converted))

    # --- GEMM ----------------------------------------------------------------------
    @property
    def blas(self) -> cublas.Cublas:
        """This thread's cuBLAS handle (CuPy's, reached through ctypes), with a persistent workspace."""
        if self._blas is not None:
            return self._blas
        blas = getattr(self._local, "blas", None)
        if blas is None:
            try:
                blas = cublas.load_cupy_cublas(self.cp)
            except Exception as exc:
                raise wheels.library_error(exc, wheels.cuda_major(self.cp)) or exc
            # A user workspace, so that cuBLAS allocates nothing while a graph is captured.
            buffer = self.cp.empty(cublas.WORKSPACE_BYTES, dtype=np.uint8)
            blas.set_workspace(buffer, self.ptr(buffer), cublas.WORKSPACE_BYTES)
            self._local.blas = blas
        return blas

    def gemm(self, a, b, out) -> None:
        """out[...] = a @ b with cuBLAS, writing into ``out`` (no temporary), at the process's precision."""
        plan = cublas.plan_gemm(a, b, out, self.ptr, _state["precision"])
        if self._recording is None:
            self._bind(self._current_stream_ptr())
        self._submit(lambda: self.blas.call(plan))   # the running thread's handle

    @staticmethod
    def ptr(a) -> int:
        return int(a.data.ptr)

    # --- memory and the layer input (the contract of kernels/units.py) ----------------
    def scratch(self, shape, dtype):
        return self.xp.empty(shape, dtype=dtype)

    @staticmethod
    def transposed(a):
        """a^T for the time loop's products: the view (cuBLAS reads either layout at full
        speed, and recorded loops name the weights' own addresses)."""
        return a.T

    def bind(self, buffer, value):
        """A loop input copied into the workspace's own buffer: recorded loops and graphs
        read fixed addresses."""
        buffer[...] = value
        return buffer

    @staticmethod
    def result(a):
        """An array handed to the caller: a copy, as the workspace is reused after backward."""
        return a.copy()

    def input_part(self, x, W_x, b, out) -> None:
        """out (T, B, G) <- x W_x + b at every position (one product)."""
        T, B, I = x.shape
        self.gemm(x.reshape(T * B, I), W_x, out.reshape(T * B, -1))
        out += b

    def input_weight_grad(self, x, dZ, out) -> None:
        self.gemm(x.reshape(-1, x.shape[-1]).T, dZ, out)

    def input_grad(self, x, dZ, W_x):
        T, B, I = x.shape
        dx = self.xp.empty((T * B, I), dtype=dZ.dtype)
        self.gemm(dZ, W_x.T, dx)
        return dx.reshape(T, B, I)

    # --- running operations ----------------------------------------------------------
    @property
    def _recording(self):
        """This thread's list of recorded operations while ``run_loop`` records, else None."""
        return getattr(self._local, "recording", None)

    def _submit(self, op) -> None:
        recording = self._recording
        if recording is not None:
            recording.append(op)
        else:
            op()

    def _current_stream_ptr(self) -> int:
        return int(self.cp.cuda.get_current_stream().ptr)

    def _bind(self, stream_ptr: int) -> None:
        self.blas.bind(stream_ptr)

    def _execute(self, ops) -> None:
        for op in ops:
            op()

    def record(self, loop) -> list:
        """The loop's launches and products as ready operations, without running them."""
        self._local.recording = ops = []
        try:
            loop()
            return ops
        finally:
            self._local.recording = None

    # --- time loops and CUDA graphs -------------------------------------------------
    def run_loop(self, ws, key, loop, outputs, reset=None, params=()) -> None:
        """Run ``loop`` (a closure launching one direction's per-step work).

        ``key`` names the loop within the workspace ``ws`` (e.g. ("fwd", T)), whose
        ``loops`` (an OrderedDict) keeps the MAX_LOOPS most recently used recordings;
        ``params`` are the arrays the loop reads that do not belong to ``ws``
        (the recurrent weights): their addresses are part of a recording's and a
        graph's identity, as is the GEMM precision.  ``outputs()`` lists the
        arrays the loop writes (for the replay check) and ``reset()`` restores
        the loop's inputs that the loop itself overwrites.
        """
        ident = (tuple(self.ptr(p) for p in params), _state["precision"])
        loops = ws.loops
        entry = loops.get(key)
        if entry is None or entry.ident != ident:   # first sighting, or new weight arrays
            entry = loops[key] = _Loop(ident, self.record(loop))
            while len(loops) > MAX_LOOPS:
                loops.popitem(last=False)
        else:
            entry.seen += 1
        loops.move_to_end(key)
        if _state["graphs"] and entry.graph is not None:
            entry.graph.launch(self.cp.cuda.get_current_stream())
            _state["replayed"] += 1
            return
        self._bind(self._current_stream_ptr())
        self._execute(entry.ops)
        _state["eager_loops"] += 1
        if _state["graphs"] and not entry.eager_only and entry.seen >= 2:
            # Second sighting: this call's result came from the eager run; capture, check one replay.
            graph = self._capture(entry.ops)
            if graph is None or not self._replay_matches(graph, outputs, reset):
                entry.eager_only = True
                return
            entry.graph = graph
            _state["captured"] += 1

    def capture_stream(self):
        """This thread's stream for capturing graphs."""
        stream = getattr(self._local, "capture_stream", None)
        if stream is None:
            stream = self._local.capture_stream = self.cp.cuda.Stream(non_blocking=True)
        return stream

    def _capture(self, ops):
        cp = self.cp
        stream = self.capture_stream()
        try:
            with cp.cuda.using_allocator(_refuse_allocation):
                with stream:
                    self._bind(int(stream.ptr))   # before capture: cuBLAS then enqueues into it
                    stream.begin_capture()
                    try:
                        self._execute(ops)
                    finally:
                        graph = stream.end_capture()
            return graph
        except Exception as exc:  # any failure: eager launches from now on
            _fallback(f"capture failed ({type(exc).__name__}: {exc})")
            return None
        finally:
            self._bind(self._current_stream_ptr())

    def _replay_matches(self, graph, outputs, reset) -> bool:
        cp = self.cp
        arrays = list(outputs())
        eager = [a.copy() for a in arrays]
        if reset is not None:
            reset()
        try:
            graph.launch(cp.cuda.get_current_stream())
            ok = True
            for a, ref in zip(arrays, eager):
                tol = 1e-4 if a.dtype == np.float32 else 1e-9
                if not bool(cp.allclose(a, ref, rtol=tol, atol=tol)):
                    ok = False
                    break
        except Exception as exc:
            _fallback(f"graph replay failed ({type(exc).__name__}: {exc})")
            ok = False
        else:
            if not ok:
                _fallback("a replayed graph disagreed with the eager launches")
        if not ok:
            for a, ref in zip(arrays, eager):
                a[...] = ref
        return ok


def _fallback(reason: str) -> None:
    reason = " ".join(str(reason).split())   # one line, whatever the exception's text
    if _state["fallback_reason"] is None:
        log.warning("minirnn: CUDA graphs disabled, using eager kernel launches: %s", reason)
    _state["fallback_reason"] = reason
    _state["graphs"] = False


_backends: dict = {}


def get_backend() -> CupyBackend:
    """The backend of the current CUDA device (imports cupy)."""
    cupy = get_xp("gpu")  # raises DeviceError with a clear message when there is no GPU
    dev = cupy.cuda.runtime.getDevice()
    be = _backends.get(dev)
    if be is None:
        be = _backends[dev] = CupyBackend(cupy, dev)
    return be
