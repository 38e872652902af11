"""First-run risks of the GPU path, closed on the CPU (docs/gpu.md).

* a CUDA library CuPy cannot load is one line naming the wheel to install;
* the libcublas called through ctypes is the one of CuPy's CUDA major, even when
  another major's libcublas is mapped into the same process (a cu12 PyTorch);
* GEMM sizes and leading dimensions that do not fit cuBLAS's int are refused
  (ctypes would pass the low 32 bits);
* the install hints name the wheels of CuPy's CUDA major.
"""
from __future__ import annotations

import types

import numpy as np
import pytest

from minirnn.errors import DeviceError
from minirnn.kernels.cuda import _runtime, cublas, wheels

TORCH_CU12 = "/opt/venv/lib/python3.11/site-packages/nvidia/cublas/lib/libcublas.so.12"
CUPY_CU13 = "/opt/venv/lib/python3.11/site-packages/nvidia/cu13/lib/libcublas.so.13"


def maps(*paths):
    """A /proc/self/maps text mapping ``paths`` in that order, with anonymous and Lt lines around them."""
    lines = ["7f00-7f01 rw-p 00000000 00:00 0 [heap]", "7f01-7f02 r-xp 00000000 08:01 9 /usr/lib/libcublasLt.so.13"]
    lines += [f"7f{i + 10:02x}-7f{i + 11:02x} r-xp 00000000 08:01 {i} {p}" for i, p in enumerate(paths)]
    return "\n".join(lines + ["7fff-8000 rw-p 00000000 00:00 0 "]) + "\n"


@pytest.mark.parametrize("order", [(TORCH_CU12, CUPY_CU13), (CUPY_CU13, TORCH_CU12)])
def test_libcublas_is_chosen_by_the_soname_of_cupys_cuda(order):
    """A cu12 PyTorch mapped first must not win: CuPy's cu13 handle is valid only in libcublas.so.13."""
    assert cublas.loaded_library_path(maps(*order), 13) == CUPY_CU13
    assert cublas.loaded_library_path(maps(*order), 12) == TORCH_CU12
    full = CUPY_CU13.replace(".so.13", ".so.13.1.0.3")
    assert cublas.loaded_library_path(maps(TORCH_CU12, full), 13) == full
    # neither an unversioned name (it may be any major) nor a longer major that starts alike
    assert cublas.loaded_library_path(maps("/usr/lib/libcublas.so", "/usr/lib/libcublas.so.130"), 13) is None
    assert cublas.loaded_library_path(maps(TORCH_CU12), 13) is None


def _huge(shape, strides):
    """A float64 view of one element with the given shape and strides (no memory behind it is read)."""
    return np.lib.stride_tricks.as_strided(np.zeros(1), shape=shape, strides=strides)


def test_gemm_sizes_beyond_int32_are_refused_not_wrapped():
    ptr = lambda x: 0   # noqa: E731  (the plan only records addresses)
    big = 2 ** 32 + 1   # would reach cuBLAS as 1
    with pytest.raises(ValueError, match=r"gemm: k 4294967297 does not fit cuBLAS's 32-bit int"):
        cublas.plan_gemm(_huge((1, big), (0, 8)), _huge((big, 1), (8, 0)), np.zeros((1, 1)), ptr)
    with pytest.raises(ValueError, match=r"gemm: m 2147483648 does not fit"):
        cublas.plan_gemm(_huge((2 ** 31, 2), (16, 8)), np.zeros((2, 2)), _huge((2 ** 31, 2), (16, 8)), ptr)
    # a leading dimension (row stride) of 2**32 + 1 elements: a block of rows of a very wide matrix
    wide = _huge((2, 2), (big * 8, 8))
    with pytest.raises(ValueError, match=r"gemm: a's leading dimension 4294967297 does not fit"):
        cublas.plan_gemm(wide, np.zeros((2, 2)), np.zeros((2, 2)), ptr)
    ok = cublas.plan_gemm(_huge((2, 2), ((2 ** 31 - 1) * 8, 8)), np.zeros((2, 2)), np.zeros((2, 2)), ptr)
    assert ok.ldb == 2 ** 31 - 1   # the largest leading dimension cuBLAS can take still plans


# The texts CuPy 14 (through cuda-pathfinder) raises when a library is absent, as seen with the
# wheel's file hidden on the development machine.
NO_NVRTC = ('Failure finding "libnvrtc.so.13 or libnvrtc.so.12": No such file: libnvrtc.so.13 or libnvrtc.so.12\n'
            '  listdir("/site-packages/nvidia/cu13/lib"):\n    libcudart.so.13')
NO_CUBLAS = 'Failure finding "libcublas.so.13 or libcublas.so.12": No such file: libcublas.so.13 or libcublas.so.12'


def fake_cupy(version=13020, module_error=None, handle_error=None):
    class RawModule:
        def __init__(self, **kwargs):
            if module_error is not None:
                raise module_error

    def handle():
        raise handle_error

    runtime = types.SimpleNamespace(runtimeGetVersion=lambda: version)
    device = types.SimpleNamespace(get_cublas_handle=handle)
    cuda = types.SimpleNamespace(runtime=runtime, device=device,
                                 Device=lambda i: types.SimpleNamespace(attributes={"MultiProcessorCount": 2}))
    return types.SimpleNamespace(cuda=cuda, RawModule=RawModule)


@pytest.mark.parametrize("version,wheel,extra", [(13020, "nvidia-cuda-nvrtc", "minirnn[gpu]"),
                                                 (12090, "nvidia-cuda-nvrtc-cu12", "minirnn[gpu-cuda12]")])
def test_missing_nvrtc_is_one_line_naming_the_wheel(version, wheel, extra):
    backend = _runtime.CupyBackend(fake_cupy(version, module_error=RuntimeError(NO_NVRTC)), 0)
    with pytest.raises(DeviceError) as info:
        backend.function("lstm_fwd_step", np.float32)
    message = str(info.value)
    assert "\n" not in message and f"libnvrtc for CUDA {version // 1000}" in message
    assert message.endswith(f"install it with pip install {wheel} (or pip install '{extra}')")


def test_missing_cublas_is_one_line_naming_the_wheel():
    backend = _runtime.CupyBackend(fake_cupy(module_error=None, handle_error=ImportError(NO_CUBLAS)), 0)
    with pytest.raises(DeviceError, match=r"^the GPU path needs libcublas for CUDA 13, which CuPy could not load; "
                                          r"install it with pip install nvidia-cublas \(or"):
        backend.blas


def test_other_failures_are_not_dressed_as_a_missing_library():
    """A compile error in a kernel is a bug, not an install problem: it passes through unchanged."""
    error = RuntimeError('kern.cu(3): catastrophic error: cannot open source file "x.h" (nvrtc, no such file)')
    backend = _runtime.CupyBackend(fake_cupy(module_error=error), 0)
    with pytest.raises(RuntimeError) as info:
        backend.function("lstm_fwd_step", np.float32)
    assert info.value is error


def test_every_cuda_major_has_a_wheel_for_each_library():
    for library in wheels.WHEELS:
        assert set(wheels.WHEELS[library]) == set(wheels.EXTRA)
    assert wheels.wheel("nccl", 13) == "nvidia-nccl-cu13" and wheels.wheel("cublas", 12) == "nvidia-cublas-cu12"
