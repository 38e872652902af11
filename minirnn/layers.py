"""Embedding, dense layer and masked softmax cross-entropy (docs/layers.md).

The dense layer and the loss are fused and computed in chunks of positions, so
memory never holds the (positions x vocabulary) logits of a whole batch: the
paper's 64 x 200 x 16386 logits would be 840 MB in float32.  Only positions whose
target counts (target >= 2: neither padding nor <unknown>) are sent through the
dense layer at all during training, because the others contribute nothing to the
loss or to any gradient [CE-F2].
"""
from __future__ import annotations

import numpy as np

from .backend import array_module, to_numpy
from .scratch import POOL

PAD, UNKNOWN = 0, 1
FIRST_WORD = 2
DEFAULT_CHUNK = 2048


# --- embedding ----------------------------------------------------------------

def embed(E, source):
    """Time-major embedded inputs X[t, b] = E[source[b, t]]                       [EMB-F1]

    ``source`` is (B, T) integers; returns (T, B, E).
    """
    return E[source.T]


def one_hot(ids, classes: int, dtype):
    """Float one-hot rows: (..., classes) with a 1 at each id."""
    xp = array_module(ids)
    return (ids[..., None] == xp.arange(classes)).astype(dtype)


def embedding_grad(E, source, dX):
    """dE from dX (T, B, E): row v collects dX at every position whose id is v     [EMB-B1]

    Written as a product with the one-hot matrix (ids x positions), which is one
    small GEMM on either device instead of a scatter.  The padding row gets no
    gradient, so Adam never moves it                                             [EMB-B2]
    """
    xp = array_module(dX)
    ids = source.T.reshape(-1)
    onehot = (ids[:, None] == xp.arange(E.shape[0])[None, :]).astype(dX.dtype)
    dE = onehot.T @ dX.reshape(-1, dX.shape[-1])
    dE[PAD] = 0
    return dE


# --- dense + masked softmax cross-entropy --------------------------------------

def counted_positions(target):
    """Boolean mask of the positions that count in the loss (target >= 2)          [CE-F2]"""
    return target >= FIRST_WORD


def dense_xent_forward_backward(Hs, target, W, b, chunk: int = DEFAULT_CHUNK, need_grads: bool = True,
                                fused: bool = False, denominator: int | None = None):
    """Mean masked cross-entropy of softmax(Hs W + b) and, optionally, its gradients.

    ``Hs`` (N, H) are the top layer's outputs at N positions, ``target`` (N,) ids.
    Returns (loss, count, dHs, dW, db) where loss is the mean over counted
    positions [CE-F3] (0 when none count) and dHs has zeros at uncounted rows.
    ``denominator`` replaces |C| as the normaliser of the loss and of every
    gradient [CE-F4]: a data-parallel rank passes the counted positions of the
    *global* batch, so that the ranks' losses and gradients add up to the global
    batch's mean (docs/distributed.md).  ``count`` stays this call's |C|.
    ``fused`` (the fast path) turns each chunk's logits into dZ with one kernel
    (Numba on the CPU, CUDA on the GPU) instead of the readable array code below.
    """
    xp = array_module(Hs)
    dtype = Hs.dtype
    n = Hs.shape[0]
    keep = xp.nonzero(counted_positions(target))[0]
    count = int(keep.size)
    fused = fused and need_grads
    pooled = fused and xp is np
    zeros = POOL.zeros if pooled else (lambda shape, dtype: xp.zeros(shape, dtype=dtype))
    empty = POOL.empty if pooled else (lambda shape, dtype: xp.empty(shape, dtype=dtype))
    every = count == n   # every position counts: contiguous row ranges, no gather or scatter
    if count == 0:
        grads = (zeros(Hs.shape, dtype), zeros(W.shape, dtype), zeros(b.shape, dtype)) if need_grads else (None,) * 3
        return (0.0, 0) + grads
    dHs = dW = db = None
    if need_grads:   # the products write dW and the counted rows of dHs themselves: no zeroing, no temporaries
        dHs = empty(Hs.shape, dtype) if every else zeros(Hs.shape, dtype)
        dW = empty(W.shape, dtype)
    norm = count if denominator is None else int(denominator)                 # [CE-F3] |C|, or [CE-F4] D
    if norm < count:
        raise ValueError(f"denominator {norm} is smaller than the {count} counted positions")
    chunk = min(chunk, count)
    kernel = _FusedSoftmaxXent(xp, chunk, W.shape[1], dtype) if fused else None
    rows_grad = None if every or not need_grads else empty((chunk, Hs.shape[1]), dtype)
    total = xp.zeros((), dtype=np.float64)
    for start in range(0, count, chunk):
        rows = slice(start, start + chunk) if every else keep[start:start + chunk]
        h = Hs[rows]
        t = target[rows]
        if fused:
            part, dlogits = kernel(h, W, b, t, 1.0 / norm)                    # [DENSE-F1], [CE-F1], [CE-B1], [CE-B2]
            total += part * norm
        else:
            logits = h @ W + b                                                 # [DENSE-F1]
            m = logits.max(axis=1, keepdims=True)
            e = xp.exp(logits - m)                                             # [CE-F1] shifted for stability
            s = e.sum(axis=1, keepdims=True)
            picked = logits[xp.arange(h.shape[0]), t]
            total += xp.sum((m[:, 0] + xp.log(s[:, 0]) - picked).astype(np.float64))   # [CE-F1]
            if not need_grads:
                continue
            dlogits = e / s                                                    # [CE-B1] softmax ...
            dlogits[xp.arange(h.shape[0]), t] -= 1                             # [CE-B1] ... minus one-hot
            dlogits *= dtype.type(1.0 / norm)                                  # [CE-B2] mean over counted
        if start == 0:
            xp.matmul(h.T, dlogits, out=dW)                                    # [DENSE-B2]
            db = dlogits.sum(axis=0)                                           # [DENSE-B3]
        else:
            dW += xp.matmul(h.T, dlogits)                                      # [DENSE-B2]
            db += dlogits.sum(axis=0)                                          # [DENSE-B3]
        if every:
            xp.matmul(dlogits, W.T, out=dHs[rows])                             # [DENSE-B1]
        else:
            part_rows = rows_grad[:h.shape[0]]
            xp.matmul(dlogits, W.T, out=part_rows)                             # [DENSE-B1]
            dHs[rows] = part_rows
    return float(total) / norm, count, dHs, dW, db


class _FusedSoftmaxXent:
    """The fast path's chunk step: logits into one reused buffer, then one kernel
    (Numba on the CPU, CUDA on the GPU) turns them into dZ in place and returns the
    chunk's weighted loss sum."""

    def __init__(self, xp, rows: int, classes: int, dtype):
        self.xp = xp
        self.buffer = POOL.empty((rows, classes), dtype) if xp is np else xp.empty((rows, classes), dtype=dtype)
        self.row_loss = np.empty(rows, dtype=np.float64) if xp is np else None

    def __call__(self, h, W, b, t, weight: float):
        logits = self.buffer[:h.shape[0]]
        if self.xp is np:
            from minirnn.kernels.cpu.gates import softmax_xent_rows

            np.matmul(h, W, out=logits)
            loss = self.row_loss[:h.shape[0]]
            softmax_xent_rows(logits, b, np.ascontiguousarray(t, dtype=np.int64), weight, loss)
            return loss.sum(), logits
        from minirnn.kernels.cuda.xent import softmax_xent_chunk

        self.xp.matmul(h, W, out=logits)
        logits += b
        return softmax_xent_chunk(logits, t, weight)


def dense_scores(Hs, target, W, b, k: int = 3, chunk: int = DEFAULT_CHUNK):
    """Per-position evaluation without materialising all logits at once.

    Returns host arrays: ``nll`` (N,) cross-entropy of the target at every
    position (padding/unknown targets included; callers mask), and ``topk`` (N, k)
    the k most probable ids, best first.
    """
    xp = array_module(Hs)
    n = Hs.shape[0]
    nll = np.empty(n, dtype=np.float64)
    topk = np.empty((n, k), dtype=np.int64)
    for start in range(0, n, chunk):
        h = Hs[start:start + chunk]
        t = target[start:start + chunk]
        logits = h @ W + b                                                     # [DENSE-F1]
        m = logits.max(axis=1, keepdims=True)
        lse = m[:, 0] + xp.log(xp.exp(logits - m).sum(axis=1))
        picked = logits[xp.arange(h.shape[0]), t]
        part = xp.argpartition(-logits, k - 1, axis=1)[:, :k] if k < logits.shape[1] else xp.argsort(-logits, axis=1)
        order = xp.argsort(-xp.take_along_axis(logits, part, axis=1), axis=1)
        best = xp.take_along_axis(part, order, axis=1)[:, :k]
        nll[start:start + h.shape[0]] = _host(lse - picked)
        topk[start:start + h.shape[0]] = _host(best)
    return nll, topk


def _host(a):
    return to_numpy(a)
