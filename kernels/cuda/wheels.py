"""Which pip package provides a CUDA library for the CUDA major version CuPy was built for.

CuPy loads NVRTC, cuBLAS and NCCL at run time; when one is missing, the fix is a
wheel whose name depends on the CUDA major version (CUDA 13 wheels carry no
suffix, except NCCL's).  Every hint minirnn gives (a failed load, the NCCL check
of multi-GPU runs, ``minirnn doctor``) names the wheel from this one table.
Pure Python: no cupy import.
"""
from __future__ import annotations

from minirnn.errors import DeviceError

# library -> {CUDA major: wheel}
WHEELS = {
    "nvrtc": {12: "nvidia-cuda-nvrtc-cu12", 13: "nvidia-cuda-nvrtc"},
    "cublas": {12: "nvidia-cublas-cu12", 13: "nvidia-cublas"},
    "nccl": {12: "nvidia-nccl-cu12", 13: "nvidia-nccl-cu13"},
}
EXTRA = {12: "minirnn[gpu-cuda12]", 13: "minirnn[gpu]"}


def cuda_major(cupy) -> int:
    """The CUDA major version of CuPy's runtime (13 for cupy-cuda13x); needs no device."""
    return int(cupy.cuda.runtime.runtimeGetVersion()) // 1000


def wheel(library: str, major: int) -> str:
    """The pip package with ``library`` ("nvrtc", "cublas", "nccl") for CUDA ``major``."""
    by_major = WHEELS[library]
    return by_major.get(major, by_major[max(by_major)])


def install_hint(library: str, major: int) -> str:
    """What to run when ``library`` is missing: the wheel, or the extra that brings all of them."""
    return f"install it with pip install {wheel(library, major)} (or pip install '{EXTRA.get(major, EXTRA[13])}')"


def missing_library(exc: BaseException) -> str | None:
    """The library ("nvrtc", "cublas") an exception from CuPy says it could not load, else None."""
    text = str(exc).lower()   # cuda-pathfinder: 'Failure finding "libnvrtc.so.13 ...'; dlopen: 'cannot open shared object'
    if not any(words in text for words in ("failure finding", "cannot open shared object", "no such file")):
        return None
    for library in ("nvrtc", "cublas"):   # "libcublasLt" contains "libcublas" too: the same wheel
        if f"lib{library}" in text:
            return library
    return None


def library_error(exc: BaseException, major: int) -> DeviceError | None:
    """One line for a CuPy failure to load NVRTC or cuBLAS (None for any other failure)."""
    library = missing_library(exc)
    if library is None:
        return None
    return DeviceError(f"the GPU path needs lib{library} for CUDA {major}, which CuPy could not load; "
                       f"{install_hint(library, major)}")
