"""`minirnn doctor`: can this machine run minirnn, on the CPU and on the GPU?

Each check returns one ``Check``: its status (ok, warn, fail, or skip when an
earlier check it needs failed), what was found, and what to do when it is not ok.
The GPU checks go through the code a training run uses: ``get_backend`` (the
device), the backend compiling every kernel, a CUDA graph captured by the
backend's ``run_loop`` around a cuBLAS product, and ``Model(device="gpu")``
against ``Model(device="cpu")`` for a small step of every unit in float64.
"""
from __future__ import annotations

import os
import sys
import warnings
from dataclasses import asdict, dataclass
from importlib import metadata

from ..errors import MinirnnError
import numpy as np
import types
from . import blas
from collections import OrderedDict
from ..backend import to_numpy
from ..model import Model

STATUSES = ("ok", "warn", "fail", "skip")


@dataclass(frozen=True)
class Check:
    name: str
    status: str         # one of STATUSES
    detail: str         # what was found, or what is wrong
    fix: str = ""       # what to do, when not ok

    def as_dict(self) -> dict:
        return asdict(self)


# ------------------------------------------------------------------------------ CPU
CPU_NAMES = ("python", "numpy", "numba", "h5py", "blas")


def cpu_checks() -> list[Check]:
    checks = [_python()]
    for dist, module, needed in (("numpy", "numpy", "1.24"), ("numba", "numba", "0.59"), ("h5py", "h5py", "3.8")):
        checks.append(_package(dist, module, needed))
    checks.append(blas_check())
    return checks


def _python() -> Check:
    version = ".".join(map(str, sys.version_info[:3]))
    if sys.version_info < (3, 10):
        return Check("python", "fail", f"Python {version}", "minirnn needs Python 3.10 or newer")
    return Check("python", "ok", f"Python {version} ({sys.executable})")


def _package(dist: str, module: str, needed: str) -> Check:
    try:
        version = metadata.version(dist)
        __import__(module)
    except Exception as exc:
        return Check(dist, "fail", f"{dist} not importable ({type(exc).__name__})", f"pip install '{dist}>={needed}'")
    if _version_tuple(version) < _version_tuple(needed):
        return Check(dist, "fail", f"{dist} {version}", f"pip install -U '{dist}>={needed}'")
    return Check(dist, "ok", f"{dist} {version}")


def _version_tuple(text: str) -> tuple:
    return tuple(int(p) if p.isdigit() else 0 for p in text.split(".")[:3])


def blas_check(natural=None) -> Check:
    """NumPy's BLAS: library, version, kernels, threads; a warning when OPENBLAS_CORETYPE overrides the kernels.
    ``natural``: the kernels OpenBLAS picks without the override (asked in a fresh process when not given)."""
    info = blas.blas_info()
    if info["library"] is None:
        return Check("blas", "warn", "could not tell which BLAS NumPy uses", "")
    detail = blas.describe(info)
    note = blas.forced_kernels_note(info, natural)
    if note:
        return Check("blas", "warn", detail, note)
    return Check("blas", "ok", detail)


# ------------------------------------------------------------------------------ GPU
class _Stop(Exception):
    """A failed GPU check: the later ones are skipped."""


def gpu_checks() -> list[Check]:
    """The GPU checks in order; one whose prerequisite failed is skipped, saying which."""
    steps = [("cupy", _cupy, ()), ("nvrtc", _nvrtc, ("cupy",)), ("cublas", _cublas, ("cupy",)),
             ("nccl", _nccl, ("cupy",)), ("driver", _driver, ("cupy",)), ("device", _device, ("driver",)),
             ("kernels", _kernels, ("device", "nvrtc")), ("cuda graph", _graph, ("device", "cublas")),
             ("gpu = cpu", _units, ("kernels", "cuda graph"))]
    checks, state, failed = [], {}, set()
    for name, step, needs in steps:
        missing = [n for n in needs if n in failed]
        if missing:
            checks.append(Check(name, "skip", f"not checked: needs {' and '.join(missing)}"))
            failed.add(name)
            continue
        try:
            checks.append(step(state))
        except _Stop as stop:
            detail, fix = stop.args
            checks.append(Check(name, "fail", detail, fix))
            failed.add(name)
        except Exception as exc:   # an unexpected failure of the GPU path is what this command is for
            checks.append(Check(name, "fail", " ".join(f"{type(exc).__name__}: {exc}".split())[:500],
                                "see docs/gpu.md; report it with this line"))
            failed.add(name)
    return checks


GPU_EXTRA = "pip install 'minirnn[gpu]'"


def _cupy(state) -> Check:
    try:
        import cupy
    except Exception as exc:
        raise _Stop(f"CuPy is not importable ({type(exc).__name__})", GPU_EXTRA) from None
    from ..kernels.cuda import wheels

    try:
        runtime = cupy.cuda.runtime.runtimeGetVersion()
    except Exception as exc:
        raise _Stop(f"CuPy cannot load the CUDA runtime ({type(exc).__name__})", GPU_EXTRA) from None
    state["cupy"], state["major"] = cupy, wheels.cuda_major(cupy)
    return Check("cupy", "ok", f"CuPy {cupy.__version__}, CUDA runtime {runtime // 1000}.{runtime % 1000 // 10}")


def _driver(state) -> Check:
    cupy = state["cupy"]
    driver = cupy.cuda.runtime.driverGetVersion()   # 0: no driver loaded
    runtime = cupy.cuda.runtime.runtimeGetVersion()
    if driver == 0:
        raise _Stop("no NVIDIA driver found, so no GPU is usable here",
                    "on a machine with an NVIDIA GPU, install its driver (nvidia-smi must list the card)")
    if driver < runtime:
        fix = ("update the NVIDIA driver" + (", or use pip install 'minirnn[gpu-cuda12]'" if driver >= 12000 else ""))
        raise _Stop(f"the driver supports CUDA {driver // 1000}.{driver % 1000 // 10}, CuPy's runtime is "
                    f"{runtime // 1000}.{runtime % 1000 // 10}", fix)
    return Check("driver", "ok", f"NVIDIA driver for CUDA {driver // 1000}.{driver % 1000 // 10}")


def _device(state) -> Check:
    from ..kernels.cuda._runtime import get_backend

    try:
        backend = get_backend()
    except MinirnnError as exc:
        raise _Stop(str(exc), "check nvidia-smi and CUDA_VISIBLE_DEVICES") from None
    cupy = state["cupy"]
    props = cupy.cuda.runtime.getDeviceProperties(backend.device_id)
    name = props["name"].decode() if isinstance(props["name"], bytes) else props["name"]
    cc = cupy.cuda.Device(backend.device_id).compute_capability
    state["backend"] = backend
    return Check("device", "ok", f"GPU {backend.device_id}: {name}, compute capability {cc[:-1]}.{cc[-1]}, "
                                 f"{props['totalGlobalMem'] / 2 ** 30:.1f} GiB")


def _mapped(prefix: str) -> str:
    """The file of a loaded library whose name starts with ``prefix`` (e.g. "libnvrtc.so")."""
    try:
        with open("/proc/self/maps") as f:
            for line in f:
                fields = line.split(None, 5)
                if len(fields) == 6 and os.path.basename(fields[5].strip()).startswith(prefix):
                    return fields[5].strip()
    except OSError:
        pass
    return "file not found in the process's memory map"


def _library_hint(library, state) -> str:
    from ..kernels.cuda import wheels

    return wheels.install_hint(library, state["major"])


def _library_fail(library, exc, state):
    return _Stop(f"CuPy could not load lib{library} ({type(exc).__name__})", _library_hint(library, state))


def _nvrtc(state) -> Check:
    try:
        from cupy.cuda import compiler

        major, minor = compiler._get_nvrtc_version()
    except Exception as exc:
        raise _library_fail("nvrtc", exc, state) from None
    return Check("nvrtc", "ok", f"NVRTC {major}.{minor} ({_mapped('libnvrtc.so')})")


def _cublas(state) -> Check:
    from ..kernels.cuda import cublas

    try:
        from cupy_backends.cuda import libs

        getattr(libs, "cublas")   # CuPy's loader finds libcublas (cuda-pathfinder), then imports the binding
    except Exception as exc:
        raise _library_fail("cublas", exc, state) from None
    with open("/proc/self/maps") as f:
        path = cublas.loaded_library_path(f.read(), state["major"])
    if path is None:   # products would then go through CuPy's bindings, without CUDA graphs
        return Check("cublas", "warn", f"no libcublas.so.{state['major']} in the process's memory map",
                     _library_hint("cublas", state))
    return Check("cublas", "ok", f"cuBLAS ({path})")


def _nccl(state) -> Check:
    from ..kernels.cuda import wheels

    try:
        with warnings.catch_warnings():   # CuPy warns, over several lines, when libnccl is missing
            warnings.simplefilter("ignore")
            from cupy.cuda import nccl
        available = getattr(nccl, "available", True)
    except Exception:
        available = False
    if not available:
        return Check("nccl", "warn", "NCCL not found (needed only to train on several GPUs)",
                     f"pip install {wheels.wheel('nccl', state['major'])}")
    return Check("nccl", "ok", f"NCCL {nccl.get_version()} ({_mapped('libnccl.so')})")


def _kernels(state) -> Check:
    from ..kernels.cuda import _source

    backend = state["backend"]
    names = list(_source.kernels())
    for name in names:
        for dtype in (np.float32, np.float64):
            backend.function(name, dtype)
    return Check("kernels", "ok", f"all {len(names)} kernels compiled for this device, float and double")


def _graph(state) -> Check:
    """A loop of one cuBLAS product, run through run_loop until it is captured and replayed."""
    from ..kernels.cuda import _runtime

    backend, cp = state["backend"], state["cupy"]
    if not _runtime.graph_status()["graphs"]:
        return Check("cuda graph", "warn", "CUDA graphs are turned off (MINIRNN_CUDA_GRAPHS=0 or an earlier fallback)",
                     "unset MINIRNN_CUDA_GRAPHS for faster time loops")
    rng = cp.random.default_rng(0)
    a, b = rng.standard_normal((8, 16)), rng.standard_normal((16, 4))
    out = cp.zeros((8, 4))
    ws = types.SimpleNamespace(loops=OrderedDict())   # what run_loop keeps its recordings in
    before = _runtime.graph_status()
    for _ in range(3):   # record + eager, capture + checked replay, replay
        out[...] = 0
        backend.run_loop(ws, ("doctor",), lambda: backend.gemm(a, b, out), lambda: [out], params=(a, b))
    after = _runtime.graph_status()
    if after["fallback_reason"] is not None or after["captured"] <= before["captured"]:
        raise _Stop(f"CUDA graphs fall back to eager launches: {after['fallback_reason']}",
                    "training still works, more slowly; see docs/gpu.md (CUDA graphs)")
    error = float(cp.max(cp.abs(out - a @ b)))
    if error > 1e-12:
        raise _Stop(f"the replayed cuBLAS product differs from CuPy's by {error:.2e}", "report it with this line")
    return Check("cuda graph", "ok", "a cuBLAS product captured into a CUDA graph and replayed, exact")


def _units(state) -> Check:
    """A small step of every unit on the GPU equals the CPU in float64 (loss and every gradient)."""
    rng = np.random.default_rng(0)
    source = rng.integers(1, 28, size=(3, 7))
    target = rng.integers(0, 12, size=(3, 7))
    worst = 0.0
    for unit in ("gru", "lstm", "nlstm"):
        models = {d: Model(unit=unit, hidden=8, layers=2, depth=2, input_vocab=28, output_vocab=12, seed=0,
                           device=d, dtype="float64") for d in ("cpu", "gpu")}
        ref_loss, ref = models["cpu"].loss_and_grads(source, target)
        for _ in range(3):   # eager, captured, replayed
            loss, grads = models["gpu"].loss_and_grads(source, target)
            worst = max(worst, abs(float(loss) - float(ref_loss)) / max(1.0, abs(float(ref_loss))))
            for k in ref:
                g, r = to_numpy(grads[k]), ref[k]
                worst = max(worst, float(np.max(np.abs(g - r))) / max(1.0, float(np.max(np.abs(r)))))
        if worst > 1e-9:
            raise _Stop(f"{unit}: the GPU's loss or gradients differ from the CPU's by {worst:.2e} (float64; "
                        f"at most 1e-9 expected)", "report it with this line; train with --device cpu meanwhile")
    return Check("gpu = cpu", "ok", f"GRU, LSTM and Nested LSTM steps equal the CPU's to {worst:.1e} (float64)")


# ------------------------------------------------------------------------------ all
def run_checks(gpu: bool = True) -> list[Check]:
    return cpu_checks() + (gpu_checks() if gpu else [])


def summary(checks: list[Check]) -> str:
    """One closing line: can the CPU and the GPU path run here?"""
    cpu_ok = not any(c.status == "fail" for c in checks if c.name in CPU_NAMES)
    gpu = [c for c in checks if c.name not in CPU_NAMES]
    failed = next((c for c in gpu if c.status == "fail"), None)
    cpu = "CPU path: ready" if cpu_ok else "CPU path: NOT ready"
    if not gpu:
        return cpu
    if failed is None:
        return f"{cpu}; GPU path: ready"
    return f"{cpu}; GPU path: not usable ({failed.name}: {failed.detail})"


def ready(checks: list[Check], gpu: bool) -> bool:
    """No CPU check failed and, when ``gpu``, every GPU check ran without failing."""
    cpu_ok = not any(c.status == "fail" for c in checks if c.name in CPU_NAMES)
    return cpu_ok and not (gpu and any(c.status in ("fail", "skip") for c in checks if c.name not in CPU_NAMES))
