"""The GPU fast path: raw CUDA kernels (compiled at run time by CuPy/NVRTC).

* ``cuda_unit(unit)`` -- the GPU implementation of a reference unit (GRU, LSTM,
  Nested LSTM of any depth): same interface as minirnn/units/base.py, CuPy arrays.
* ``adam.adam_step`` -- the fused Adam update used by ``minirnn.optim.Adam``.
* ``xent.softmax_xent_chunk`` -- fused softmax cross-entropy of a chunk of rows.
* ``set_graphs`` / ``graph_status`` -- CUDA graph capture switch and counters.
* ``set_precision`` -- "fp32" (exact, default) or "tf32" float32 matrix products.

The kernel sources are ``*.cu`` (thin ``__global__`` wrappers) and ``gates.cuh``
(the per-element math), read from this package's folder.  Importing this package
does not import cupy; that happens on the first GPU call.  See docs/gpu.md.
"""
from __future__ import annotations

from .units import CudaUnit, cuda_unit


def set_graphs(enabled: bool) -> None:
    from ._runtime import set_graphs as _set

    _set(enabled)


def set_precision(precision: str) -> None:
    """"fp32" (exact float32 products, the default) or "tf32" (tensor cores; see docs/gpu.md)."""
    from ._runtime import set_precision as _set

    _set(precision)


def graph_status() -> dict:
    from ._runtime import graph_status as _status

    return _status()


def adam_step(param, grad, m, v, lr_t, beta1, beta2, eps) -> None:
    from .adam import adam_step as _adam

    _adam(param, grad, m, v, lr_t, beta1, beta2, eps)


def softmax_xent_chunk(logits, targets, weight):
    from .xent import softmax_xent_chunk as _xent

    return _xent(logits, targets, weight)


__all__ = ["CudaUnit", "cuda_unit", "adam_step", "softmax_xent_chunk", "set_graphs", "set_precision", "graph_status"]
