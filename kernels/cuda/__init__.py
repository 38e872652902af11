"""The GPU backend of the fast units: raw CUDA kernels (compiled at run time by CuPy/NVRTC).

* ``_runtime.CupyBackend`` -- what the one time loop per unit (kernels/units.py)
  needs on a CUDA device: products (cuBLAS, cublas.py), kernel launches,
  scratch memory, recorded loops replayed as CUDA graphs;
* ``adam.adam_step`` -- the fused Adam update used by ``minirnn.optim.Adam``;
* ``xent.softmax_xent_chunk`` -- fused softmax cross-entropy of a chunk of rows;
* ``set_graphs`` / ``graph_status`` -- CUDA graph capture switch and counters;
* ``set_precision`` -- "fp32" (exact, default) or "tf32" float32 matrix products.

The kernel sources are ``*.cu`` (thin ``__global__`` wrappers) and ``gates.cuh``
(the per-element math), read from this package's folder.  Importing this package
does not import cupy; that happens on the first GPU call.  See docs/gpu.md.
"""
from __future__ import annotations

from ._runtime import graph_status, set_graphs, set_precision

__all__ = ["set_graphs", "set_precision", "graph_status"]
