"""Files of the NVIDIA CUDA wheels (NVRTC, nvcc's ptxas, cuBLAS headers), for the compile and ABI tests."""
from __future__ import annotations

from importlib import metadata
from pathlib import Path


def wheel_file(dist: str, suffix: str) -> Path | None:
    """The installed file of wheel ``dist`` whose path ends with ``suffix`` (e.g. "bin/ptxas"), or None."""
    try:
        files = metadata.files(dist) or []
    except metadata.PackageNotFoundError:
        return None
    for f in files:
        if str(f).endswith(suffix):
            path = Path(f.locate())
            return path if path.exists() else None
    return None
