"""Scalar building blocks for the fused CPU kernels: typed constants, tanh, sigmoid.

Why a hand-written tanh?  Numba lowers ``np.tanh`` on a scalar to the C library's
``tanh`` (about 20 ns per call here, never vectorised), which would make a fused
kernel *slower* than NumPy's SIMD ufunc.  ``tanh_`` below is built only from
arithmetic, ``floor``, an integer shift and a bit reinterpretation, so LLVM
vectorises the loops that call it (AVX2: 8 float32 or 4 float64 lanes).

    tanh(x) = sign(x) * e / (e + 2),   e = expm1(2|x|)                    (exact identity)
    expm1(y) = 2^n * expm1(r) + (2^n - 1),   y = n ln2 + r,  |r| <= ln2 / 2
    expm1(r) by its Taylor series (degree 13 for float64, 8 for float32; the
    truncation error is below the format's rounding unit on |r| <= ln2 / 2)

The result is within a few units in the last place of the correctly rounded
tanh (measured in tests/test_fast_cpu.py), so float64 results agree with the
reference to ~1e-15 relative.  ``sigmoid_`` uses the reference's formula
sigma(z) = 0.5 * (1 + tanh(z / 2)) (minirnn/units/base.py).

Every constant goes through ``const_(x, value)`` so that float32 kernels stay in
float32 (a bare ``1.0`` would promote float32 arithmetic to float64 in Numba).
"""
from __future__ import annotations

import numpy as np
from numba import types
from numba.core import cgutils  # noqa: F401  (imported for the llvmlite IR types via numba)
from numba.extending import intrinsic, overload
from llvmlite import ir

JIT = dict(cache=True, fastmath=False, error_model="numpy", nogil=True)

_LN2 = 0.6931471805599453
_LN2_HI = 0.693145751953125          # ln 2 split so that n * _LN2_HI is exact (n < 2^10)
_LN2_LO = _LN2 - _LN2_HI


@intrinsic
def _bits_to_f64(typingctx, i):
    """Reinterpret the 64 bits of an int64 as a float64 (no conversion)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@intrinsic
def _bits_to_f32(typingctx, i):
    """Reinterpret the 32 bits of an int32 as a float32 (no conversion)."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


def const_(like, value):
    """``value`` as a scalar of ``like``'s float type (``like``: a float scalar)."""
    raise NotImplementedError  # pragma: no cover  (only called from jitted code)


@overload(const_, inline="always")
def _const_ov(like, value):
    if isinstance(like, types.Float) and like.bitwidth == 32:
        return lambda like, value: np.float32(value)
    return lambda like, value: np.float64(value)


def tanh_(x):
    """tanh of a float32 or float64 scalar, vectorisable (see module docstring)."""
    raise NotImplementedError  # pragma: no cover


def _tanh64(x):
    a = np.abs(x)
    y = a + a                                     # 2|x|
    y = 44.0 if y > 44.0 else y                   # tanh(22) == 1.0 in float64; NaN passes through
    nf = np.floor(y * 1.4426950408889634 + 0.5)   # n = round(y / ln2)
    r = (y - nf * _LN2_HI) - nf * _LN2_LO         # |r| <= ln2/2 (Cody-Waite reduction)
    p = 1.0 / 6227020800.0                        # expm1(r) = sum_{k=1..13} r^k / k!
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r * r + r
    s = _bits_to_f64((np.int64(nf) + 1023) << 52)  # 2^n
    e = s * p + (s - 1.0)                           # expm1(y)
    t = e / (e + 2.0)
    return -t if x < 0.0 else t


def _tanh32(x):
    a = np.abs(x)
    y = a + a
    y = np.float32(20.0) if y > np.float32(20.0) else y   # tanh(10) == 1.0f
    nf = np.floor(y * np.float32(1.4426950408889634) + np.float32(0.5))
    r = (y - nf * np.float32(0.693145751953125)) - nf * np.float32(_LN2_LO)
    p = np.float32(1.0 / 40320.0)
    p = p * r + np.float32(1.0 / 5040.0)
    p = p * r + np.float32(1.0 / 720.0)
    p = p * r + np.float32(1.0 / 120.0)
    p = p * r + np.float32(1.0 / 24.0)
    p = p * r + np.float32(1.0 / 6.0)
    p = p * r + np.float32(0.5)
    p = p * r * r + r
    s = _bits_to_f32((np.int32(nf) + np.int32(127)) << np.int32(23))
    e = s * p + (s - np.float32(1.0))
    t = e / (e + np.float32(2.0))
    return -t if x < np.float32(0.0) else t


@overload(tanh_, inline="always")
def _tanh_ov(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return _tanh32
    if isinstance(x, types.Float):
        return _tanh64
    return None


def sigmoid_(z):
    """sigma(z) = 0.5 * (1 + tanh(z / 2)), the reference formula (base.sigmoid)."""
    raise NotImplementedError  # pragma: no cover


@overload(sigmoid_, inline="always")
def _sigmoid_ov(z):
    if isinstance(z, types.Float):
        def impl(z):
            h = const_(z, 0.5)
            return h * (const_(z, 1.0) + tanh_(h * z))
        return impl
    return None
