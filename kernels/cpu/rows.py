"""Row scatter-add: the weight gradient of a product with one-hot rows.

A layer whose input rows are one-hot (the first layer with the embedding folded
in, docs/layers.md [EMB-F2]) has x W_x = W_x[id] at every position, so its
weight gradient x^T dZ is a sum of dZ rows per id.  That is N*G additions
instead of an (I x N) (N x G) product that is almost all zeros.
"""
from __future__ import annotations

from numba import njit


@njit(cache=True, fastmath=False, error_model="numpy", nogil=True)
def rows_add(ids, src, out):
    """out[v, :] <- sum of src[n, :] over the positions n with ids[n] == v (out is zeroed first).

    ids (N,) integers in [0, out.shape[0]); src (N, G), out (I, G), both C-contiguous.
    Positions are added in order, so the result is deterministic.
    """
    out[...] = 0
    N, G = src.shape
    for n in range(N):
        v = ids[n]
        for j in range(G):
            out[v, j] += src[n, j]
