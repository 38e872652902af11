"""Adam's update as one fused in-place pass (docs/adam.md), for the CPU fast path.

NumPy's version of the same four lines makes several full-size temporaries per
parameter (about 40 MB each for the paper's dense layer) and reads every array
several times; this kernel reads g, m, v, p once and writes m, v, p once.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, fastmath=False, error_model="numpy", nogil=True)
def adam_step(p, g, m, v, lr_t, beta1, beta2, eps):
    """In place, elementwise over flat arrays of one dtype (constants cast to it, as NumPy does)."""
    b1 = p.dtype.type(beta1)
    b2 = p.dtype.type(beta2)
    c1 = p.dtype.type(1.0 - beta1)
    c2 = p.dtype.type(1.0 - beta2)
    lr = p.dtype.type(lr_t)
    e = p.dtype.type(eps)
    for i in range(p.size):
        gi = g[i]
        mi = m[i] * b1 + c1 * gi                         # [ADAM-F1]
        vi = v[i] * b2 + c2 * (gi * gi)                  # [ADAM-F2]
        m[i] = mi
        v[i] = vi
        p[i] -= lr * mi / (np.sqrt(vi) + e)              # [ADAM-F4] (lr = a_t of [ADAM-F3])
