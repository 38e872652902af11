"""Which BLAS NumPy's matrix products run on, with which kernels and how many threads.

The float32 products of the CPU path are where its time goes, and the kernels
OpenBLAS chose for this CPU decide both their speed and their rounding (the
README's cross-CPU note).  ``blas_info`` reads that from the library NumPy loaded:
through threadpoolctl when it is installed, else by asking OpenBLAS itself
(ctypes, on the file found in the process's memory map).  ``minirnn doctor``,
``minirnn bench`` and the benchmarks show it as one line (``report_lines``), with a
warning when ``OPENBLAS_CORETYPE`` forces kernels older than the CPU's own.
"""
from __future__ import annotations

import ctypes
import os
import subprocess
import sys

CORETYPE = "OPENBLAS_CORETYPE"   # OpenBLAS's override of the kernels it picks for the CPU


def blas_info() -> dict:
    """{"library", "version", "architecture", "threads", "path"} of NumPy's BLAS (None where unknown)."""
    __import__("numpy")   # loads its BLAS

    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return _openblas_by_ctypes()
    for pool in threadpool_info():
        if pool.get("user_api") == "blas":
            return {"library": pool.get("internal_api"), "version": pool.get("version"),
                    "architecture": pool.get("architecture"), "threads": pool.get("num_threads"),
                    "path": pool.get("filepath")}
    return _openblas_by_ctypes()


def describe(info: dict) -> str:
    """One line: "openblas 0.3.31, SkylakeX kernels, 2 threads (path)"."""
    if info["library"] is None:
        return "unknown BLAS"
    return (f"{info['library']} {info['version'] or '(version unknown)'}, {info['architecture'] or 'unknown'} "
            f"kernels, {info['threads']} threads ({info['path']})")


def _openblas_by_ctypes() -> dict:
    info = {"library": None, "version": None, "architecture": None, "threads": None, "path": None}
    try:
        with open("/proc/self/maps") as f:
            paths = {fields[5].strip() for fields in (line.split(None, 5) for line in f) if len(fields) == 6}
    except OSError:
        return info
    path = next((p for p in sorted(paths) if "openblas" in os.path.basename(p).lower()), None)
    if path is None:
        return info
    lib = ctypes.CDLL(path)
    # NumPy's wheels carry OpenBLAS with renamed symbols (scipy_openblas_..._64_ for 64-bit ints).
    for prefix, suffix in (("scipy_", "64_"), ("scipy_", ""), ("", "64_"), ("", "")):
        if hasattr(lib, f"{prefix}openblas_get_corename{suffix}"):
            break
    else:
        return {**info, "library": "openblas", "path": path}
    get = lambda name, restype: _call(lib, f"{prefix}openblas_{name}{suffix}", restype)   # noqa: E731
    config = (get("get_config", ctypes.c_char_p) or b"").decode()
    version = config.split()[1] if config.startswith("OpenBLAS ") else None
    corename = get("get_corename", ctypes.c_char_p)
    return {"library": "openblas", "version": version, "architecture": corename.decode() if corename else None,
            "threads": get("get_num_threads", ctypes.c_int), "path": path}


def _call(lib, name, restype):
    fn = getattr(lib, name)
    fn.restype = restype
    return fn()


def natural_architecture() -> str | None:
    """The kernels OpenBLAS picks for this CPU when nothing overrides them (asked in a fresh
    process without OPENBLAS_CORETYPE)."""
    env = {k: v for k, v in os.environ.items() if k != CORETYPE}
    code = "from minirnn.machine.blas import blas_info; print(blas_info()['architecture'])"
    proc = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    name = proc.stdout.strip()
    return name if proc.returncode == 0 and name and name != "None" else None


def forced_kernels_note(info: dict | None = None, natural: str | None = None, environ=None) -> str | None:
    """``coretype_note`` for this process: None unless OPENBLAS_CORETYPE is set (only then is a
    fresh process asked which kernels this CPU gets without it)."""
    forced = (os.environ if environ is None else environ).get(CORETYPE)
    if not forced:
        return None
    info = blas_info() if info is None else info
    return coretype_note(forced, info["architecture"], natural or natural_architecture())


def report_lines() -> list[str]:
    """What every CPU timing should be read with: the BLAS line and, when OPENBLAS_CORETYPE
    forces other kernels than this CPU's own, a warning that says what to unset."""
    info = blas_info()
    note = forced_kernels_note(info)
    return [f"BLAS: {describe(info)}"] + ([f"warning: {note}"] if note else [])


def coretype_note(forced: str | None, in_use: str | None, natural: str | None) -> str | None:
    """A warning when OPENBLAS_CORETYPE makes OpenBLAS use other kernels than it would pick for this CPU."""
    if not forced or not in_use or not natural or in_use.lower() == natural.lower():
        return None
    return (f"{CORETYPE}={forced} makes OpenBLAS use its {in_use} kernels, but this CPU gets {natural} "
            f"without it: unset {CORETYPE} for the CPU's own (faster) kernels")
