"""Running the CUDA kernels with CuPy: compiling, launching, GEMMs, CUDA graphs.

Imported only when the GPU is used; ``import cupy`` happens in ``get_backend``.

* Compiling: each .cu file becomes one ``cupy.RawModule`` (NVRTC), compiled the
  first time one of its kernels is needed, with the float and double
  instantiations of every kernel named as ``name_expressions``; modules are
  cached per device (and CuPy caches the binaries on disk).
* Launching: ``launch(name, dtype, n, *args)`` checks the arguments against the
  parsed signature (count, dtypes, contiguity) and converts scalars to the exact
  C types, so a mistake raises a TypeError instead of corrupting memory.
* GEMMs: ``cupy.dot(a, b, out=out)`` (cuBLAS), always into a preallocated
  C-contiguous ``out``; operands are C- or F-contiguous views, so no copy and no
  allocation happens.
* CUDA graphs: ``run_loop`` runs a unit's time loop (the per-step GEMMs and
  kernel launches) eagerly the first time a (direction, T) key is seen, captures
  it into a CUDA graph the second time and replays the graph from then on.  The
  first replay is checked against the eager result; capture is refused if
  anything tries to allocate memory meanwhile.  Any failure falls back to eager
  launches for good and is logged once.  MINIRNN_CUDA_GRAPHS=0 disables graphs.
"""
from __future__ import annotations

import logging
import os

import numpy as np

from . import _source

log = logging.getLogger("minirnn.cuda")

THREADS = 256
NVRTC_OPTIONS = ("--std=c++17",)

_state = {
    "graphs": os.environ.get("MINIRNN_CUDA_GRAPHS", "1") not in ("0", "false", "no", "off"),
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


def graph_status() -> dict:
    """Counters and, after a fallback, the reason graphs were turned off."""
    return dict(_state)


class CaptureAllocationError(RuntimeError):
    """Raised by the allocator installed during capture: the graph would bake in
    memory that CuPy's pool could hand to someone else afterwards."""


def _refuse_allocation(size):
    raise CaptureAllocationError(f"an allocation of {size} bytes was attempted during CUDA graph capture")


class CupyBackend:
    """What the unit code needs from the GPU: xp, gemm, launch, run_loop."""

    def __init__(self, cupy, device_id: int):
        self.cp = self.xp = cupy
        self.device_id = device_id
        self._modules: dict = {}
        self._functions: dict = {}
        sms = cupy.cuda.Device(device_id).attributes["MultiProcessorCount"]
        self.max_blocks = 32 * int(sms)
        self._capture_stream = None

    # --- kernels ---------------------------------------------------------------
    def function(self, name: str, dtype):
        key = (name, np.dtype(dtype))
        fn = self._functions.get(key)
        if fn is None:
            spec = _source.kernels()[name]
            module = self._modules.get(spec.file)
            if module is None:
                module = self.cp.RawModule(code=_source.source_text(spec.file), options=NVRTC_OPTIONS,
                                           name_expressions=_source.name_expressions(spec.file))
                self._modules[spec.file] = module
            fn = module.get_function(_source.instance_name(name, dtype))
            self._functions[key] = fn
        return fn

    def convert_args(self, name: str, dtype, n: int, args) -> tuple:
        spec = _source.kernels()[name]
        if len(args) + 1 != len(spec.params):
            raise TypeError(f"{name} takes {len(spec.params) - 1} arguments after n, got {len(args)}")
        out = [np.int32(_check_int32(n, name, spec.params[0].name))]
        for p, a in zip(spec.params[1:], args):
            want = p.numpy_dtype(dtype)
            if p.kind == "scalar":
                if want == np.int32:
                    out.append(np.int32(_check_int32(a, name, p.name)))
                else:
                    out.append(want.type(a))
            else:
                if not isinstance(a, self.cp.ndarray):
                    raise TypeError(f"{name}: {p.name} must be a cupy array, got {type(a).__name__}")
                if a.dtype != want or not a.flags.c_contiguous:
                    raise TypeError(f"{name}: {p.name} must be a C-contiguous {want} array, got {a.dtype}"
                                    f"{'' if a.flags.c_contiguous else ' (not contiguous)'}")
                out.append(a)
        return tuple(out)

    def launch(self, name: str, dtype, n: int, *args, grid: int | None = None) -> None:
        """Launch kernel ``name`` for ``n`` elements (or, with ``grid``, that many blocks)."""
        if n <= 0:
            return
        fn = self.function(name, dtype)
        blocks = grid if grid is not None else min((n + THREADS - 1) // THREADS, self.max_blocks)
        fn((int(blocks),), (THREADS,), self.convert_args(name, dtype, n, args))

    # --- GEMM ----------------------------------------------------------------------
    def gemm(self, a, b, out) -> None:
        """out[...] = a @ b with cuBLAS, writing into ``out`` (no temporary)."""
        self.cp.dot(a, b, out=out)

    @staticmethod
    def ptr(a) -> int:
        return int(a.data.ptr)

    # --- time loops and CUDA graphs -------------------------------------------------
    def run_loop(self, ws, key, loop, outputs, reset=None, params=()) -> None:
        """Run ``loop`` (a closure launching one direction's per-step work).

        ``key`` names the loop within the workspace ``ws`` (e.g. ("fwd", T));
        ``params`` are the arrays the loop reads that do not belong to ``ws``
        (the recurrent weights): their addresses are part of a graph's identity.
        ``outputs()`` lists the arrays the loop writes (for the replay check) and
        ``reset()`` restores the loop's inputs that the loop itself overwrites.
        """
        ptrs = tuple(self.ptr(p) for p in params)
        entry = ws.graphs.get(key)
        if entry is not None and entry[0] != ptrs:  # new weight arrays: forget the old graph
            entry = None
        if not _state["graphs"] or entry is None or entry[1] == "eager":
            if entry is None:
                ws.graphs[key] = (ptrs, "seen")
            _state["eager_loops"] += 1
            loop()
            return
        if entry[1] == "seen":
            # Second sighting: run eagerly (this call's result), then capture and check one replay.
            _state["eager_loops"] += 1
            loop()
            graph = self._capture(loop)
            if graph is None or not self._replay_matches(graph, outputs, reset):
                ws.graphs[key] = (ptrs, "eager")
                return
            ws.graphs[key] = (ptrs, graph)
            _state["captured"] += 1
            return
        entry[1].launch(self.cp.cuda.get_current_stream())
        _state["replayed"] += 1

    def _capture(self, loop):
        cp = self.cp
        if self._capture_stream is None:
            self._capture_stream = cp.cuda.Stream(non_blocking=True)
        stream = self._capture_stream
        try:
            with cp.cuda.using_allocator(_refuse_allocation):
                with stream:
                    stream.begin_capture()
                    try:
                        loop()
                    finally:
                        graph = stream.end_capture()
            return graph
        except Exception as exc:  # any failure: eager launches from now on
            _fallback(f"capture failed ({type(exc).__name__}: {exc})")
            return None

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
    if _state["fallback_reason"] is None:
        log.warning("minirnn: CUDA graphs disabled, using eager kernel launches: %s", reason)
    _state["fallback_reason"] = reason
    _state["graphs"] = False


def _check_int32(v, kernel: str, name: str) -> int:
    v = int(v)
    if not -2 ** 31 <= v < 2 ** 31:
        raise ValueError(f"{kernel}: {name}={v} does not fit a 32-bit int")
    return v


_backends: dict = {}


def get_backend() -> CupyBackend:
    """The backend of the current CUDA device (imports cupy)."""
    from minirnn.backend import get_xp

    cupy = get_xp("gpu")  # raises DeviceError with a clear message when there is no GPU
    dev = cupy.cuda.runtime.getDevice()
    be = _backends.get(dev)
    if be is None:
        be = _backends[dev] = CupyBackend(cupy, dev)
    return be
