"""Device name -> array module.

Unit, layer and model code is written once against ``xp`` (the array module:
``numpy`` on the CPU, ``cupy`` on the GPU).  This module is the only place that
decides which one a device name means.
"""
from __future__ import annotations

import numpy as np

from .errors import DeviceError

DEVICES = ("cpu", "gpu", "auto")
DTYPES = {"float32": np.float32, "float64": np.float64}

GPU_FIX = "install the GPU extra with pip install 'minirnn[gpu]' and check the NVIDIA driver (nvidia-smi)"


def _import_cupy():
    """Return cupy if it imports and sees at least one CUDA device, else raise DeviceError."""
    try:
        import cupy  # noqa: F401  (optional dependency)
    except Exception as exc:  # ImportError, or a broken CUDA install raising at import
        raise DeviceError(f"--device gpu needs cupy, which is not importable ({type(exc).__name__}); {GPU_FIX}") from None
    try:
        count = cupy.cuda.runtime.getDeviceCount()
    except Exception as exc:
        raise DeviceError(f"cupy is installed but no usable CUDA GPU was found ({exc}); {GPU_FIX}") from None
    if count < 1:
        raise DeviceError(f"cupy is installed but no CUDA GPU was found; {GPU_FIX}")
    return cupy


def gpu_available() -> bool:
    try:
        _import_cupy()
    except DeviceError:
        return False
    return True


def resolve_device(device: str) -> tuple[str, str | None]:
    """Map 'cpu' | 'gpu' | 'auto' to 'cpu' or 'gpu'.

    Returns (device, note): note is a one-line message to show the user when
    'auto' fell back to the CPU, else None.  'gpu' without a usable GPU raises
    DeviceError.
    """
    if device not in DEVICES:
        raise DeviceError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    if device == "cpu":
        return "cpu", None
    if device == "gpu":
        _import_cupy()
        return "gpu", None
    try:
        _import_cupy()
        return "gpu", None
    except DeviceError as exc:
        return "cpu", f"no usable GPU ({exc}); running on the CPU"


def get_xp(device: str):
    """The array module for a resolved device name ('cpu' or 'gpu')."""
    if device == "cpu":
        return np
    if device == "gpu":
        return _import_cupy()
    raise DeviceError(f"unknown device {device!r}; expected 'cpu' or 'gpu'")


def array_module(a):
    """The array module an array belongs to (numpy for NumPy arrays and scalars)."""
    if type(a).__module__.startswith("cupy"):
        import cupy

        return cupy
    return np


def device_of(a) -> str:
    return "gpu" if array_module(a) is not np else "cpu"


def to_numpy(a):
    """A NumPy array with the contents of ``a``: a device-to-host copy for CuPy arrays,
    ``a`` itself (no copy) for NumPy input.  All I/O goes through this."""
    if array_module(a) is np:
        return np.asarray(a)
    return a.get()


def host_copy(a) -> np.ndarray:
    """An independent NumPy copy (never aliases ``a``), for snapshots such as checkpoints."""
    return np.array(to_numpy(a), copy=True)


def resolve_dtype(dtype) -> np.dtype:
    if isinstance(dtype, str):
        if dtype not in DTYPES:
            raise ValueError(f"unknown dtype {dtype!r}; choose float32 or float64")
        return np.dtype(DTYPES[dtype])
    dt = np.dtype(dtype)
    if dt not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise ValueError(f"unsupported dtype {dt}; choose float32 or float64")
    return dt
