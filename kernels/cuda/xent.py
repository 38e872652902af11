"""Fused softmax cross-entropy of a chunk of logit rows on the GPU (docs/layers.md).

``softmax_xent_chunk(logits, targets, weight)`` returns the weighted loss sum
    sum_n weight[n] * (logsumexp(logits[n]) - logits[n, targets[n]])   [CE-F1]
as a float64 0-d CuPy array (no device-to-host sync), and overwrites ``logits``
with weight[n] * (softmax(logits[n]) - onehot(targets[n]))             [CE-B1] [CE-B2]
in one kernel (one thread block per row).  With weight = 1/|C| on the counted
rows and 0 elsewhere this is the masked mean of docs/layers.md.
"""
from __future__ import annotations

import numpy as np

from . import _source

# The kernel's reductions are written for exactly this many threads per block.
BLOCK = _source.define("xent.cu", "MR_XENT_THREADS")


def softmax_xent_chunk(logits, targets, weight, backend=None):
    if backend is None:
        from ._runtime import get_backend

        backend = get_backend()
    xp = backend.xp
    if logits.ndim != 2 or not logits.flags.c_contiguous:
        raise ValueError("logits must be a C-contiguous (rows, V) array")
    rows, V = logits.shape
    targets = xp.ascontiguousarray(targets, dtype=np.int64).reshape(-1)
    if targets.size != rows:
        raise ValueError(f"targets must hold {rows} ids, got {targets.size}")
    if np.isscalar(weight) or getattr(weight, "ndim", 1) == 0:
        weight = xp.full(rows, weight, dtype=logits.dtype)
    else:
        weight = xp.ascontiguousarray(weight, dtype=logits.dtype).reshape(-1)
    row_loss = xp.empty(rows, dtype=np.float64)
    if rows:
        backend.launch("softmax_xent_rows", logits.dtype, rows, V, logits, targets, weight, row_loss,
                       grid=min(rows, 65535), block=BLOCK)
    return row_loss.sum(), logits
