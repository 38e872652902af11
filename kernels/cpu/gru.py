"""Fast CPU GRU: batched input projections, fused step kernels, one-product weight gradients.

Same parameters, state and interface as the reference ``minirnn.units.GRU``
(docs/gru.md); only the order of the work differs (docs/kernels.md):

forward   Zx = X [W_g[:I] | W_c[:I]] + [b_g | b_c] for all T*B rows in ONE product
          (input parts of [GRU-F1] and [GRU-F3]; a row lookup when X is one-hot
          ids, _common.input_part); per step two recurrent products,
          h W_g[I:] and (r*h) W_c[I:] (BLAS, into buffers), each followed by a kernel
backward  per step: ``gru_bwd_cand``, drh = da_c W_c[I:]^T, ``gru_bwd_reset``,
          da_g W_g[I:]^T (BLAS into buffers); the carried gradient is kept in two
          parts and summed inside the next step's kernel
          after the loop: dW_x = X^T dA, dW_g[I:] = H_prev^T dA_g,
          dW_c[I:] = (R*H_prev)^T dA_c, db = sum dA, dX = dA W_x^T (none for ids)
          ([GRU-B5], [GRU-B9], [GRU-B12])

The returned ``hs`` and final state are views of the cache's buffers: do not write
into them before calling backward.
"""
from __future__ import annotations

import numpy as np

from minirnn.units.gru import GRU

from ._common import FastCPUUnit, as_c, carry_in, input_grad, input_part, input_weight_grad, is_numpy, scratch
from .gates import gru_bwd_cand, gru_bwd_reset, gru_fwd_gates, gru_fwd_cand


class FastGRU(FastCPUUnit, GRU):
    """``GRU`` with the fused CPU forward/backward (NumPy arrays; others use the reference)."""

    def forward(self, params, x, state0):
        if not is_numpy(x, *state0):
            return super().forward(params, x, state0)
        x, dt = self.prepare_input(x, state0)
        T, B, I = x.shape[0], x.shape[1], self.input_size
        H = self.hidden_size
        W_g, b_g = as_c(params["W_g"], dt), as_c(params["b_g"], dt)
        W_c, b_c = as_c(params["W_c"], dt), as_c(params["b_c"], dt)
        W_x = np.concatenate([W_g[:I], W_c[:I]], axis=1)    # (I, 3H): one input product
        W_gh, W_ch = W_g[I:], W_c[I:]

        Zx = input_part(x, W_x, np.concatenate([b_g, b_c]), dt)  # input parts of [GRU-F1], [GRU-F3]
        Hs = scratch((T + 1, B, H), dtype=dt)               # Hs[t] = h_{t-1}; Hs[1:] = outputs
        G = scratch((T, B, 2 * H), dtype=dt)                # [r | u]
        RH = scratch((T, B, H), dtype=dt)                   # r * h_{t-1}
        Cc = scratch((T, B, H), dtype=dt)                   # candidate c
        zg = scratch((B, 2 * H), dtype=dt)
        zc = scratch((B, H), dtype=dt)
        Hs[0] = state0[0]
        for t in range(T):
            np.matmul(Hs[t], W_gh, out=zg)                   # recurrent part of [GRU-F1]
            gru_fwd_gates(Zx[t], zg, Hs[t], G[t], RH[t])     # [GRU-F1], [GRU-F2]
            np.matmul(RH[t], W_ch, out=zc)                   # recurrent part of [GRU-F3]
            gru_fwd_cand(Zx[t], zc, G[t], Hs[t], Cc[t], Hs[t + 1])  # [GRU-F3]..[GRU-F5]
        cache = {"fast": True, "x": x, "W_x": W_x, "Hs": Hs, "G": G, "RH": RH, "C": Cc}
        return Hs[1:], (Hs[T],), cache

    def backward(self, params, cache, dhs, dstate_T=None):
        if not (isinstance(cache, dict) and cache.get("fast")):
            return super().backward(params, cache, dhs, dstate_T)
        x, W_x, Hs, G, RH, Cc = cache["x"], cache["W_x"], cache["Hs"], cache["G"], cache["RH"], cache["C"]
        dt = Hs.dtype
        T, B, I = x.shape[0], x.shape[1], self.input_size
        H = self.hidden_size
        W_gh = as_c(params["W_g"], dt)[I:]
        W_ch = as_c(params["W_c"], dt)[I:]
        dhs = as_c(dhs, dt)

        dhc_part = carry_in(dstate_T, 0, (B, H), dt)         # [GRU-B13]: dL/dh_T enters here
        dhc_mat = np.zeros((B, H), dtype=dt)
        dh = scratch((B, H), dtype=dt)
        drh = scratch((B, H), dtype=dt)
        dA = scratch((T, B, 3 * H), dtype=dt)               # [da_r | da_u | da_c] per step
        W_chT, W_ghT = W_ch.T, W_gh.T
        for t in range(T - 1, -1, -1):
            gru_bwd_cand(dhs[t], dhc_part, dhc_mat, G[t], Cc[t], Hs[t], dh, dA[t])  # [GRU-B1]..[GRU-B4], [GRU-B8]
            np.matmul(dA[t, :, 2 * H:], W_chT, out=drh)      # [GRU-B6] (the r*h rows)
            gru_bwd_reset(drh, Hs[t], G[t], dh, dA[t], dhc_part)  # [GRU-B7], [GRU-B8], [GRU-B11]
            np.matmul(dA[t, :, :2 * H], W_ghT, out=dhc_mat)  # [GRU-B10] (h columns), [GRU-B11] (matrix part)

        dA2 = dA.reshape(T * B, 3 * H)
        dW_g = scratch((I + H, 2 * H), dtype=dt)
        dW_c = scratch((I + H, H), dtype=dt)
        dW_x = scratch((I, 3 * H), dtype=dt)                            # x rows of both kernels at once
        input_weight_grad(x, dA2, dW_x)                                 # [GRU-B9], [GRU-B5] (x rows)
        dW_g[:I] = dW_x[:, :2 * H]
        dW_c[:I] = dW_x[:, 2 * H:]
        np.matmul(Hs[:T].reshape(T * B, H).T, dA2[:, :2 * H], out=dW_g[I:])  # [GRU-B9]
        np.matmul(RH.reshape(T * B, H).T, dA2[:, 2 * H:], out=dW_c[I:])  # [GRU-B5]
        db = dA2.sum(axis=0)
        dparams = {"W_g": dW_g, "b_g": db[:2 * H].copy(),               # [GRU-B9]
                   "W_c": dW_c, "b_c": db[2 * H:].copy()}               # [GRU-B5]
        dx = input_grad(x, dA2, W_x, dt)                                # [GRU-B6], [GRU-B10] (x columns), [GRU-B12]
        dh0 = dhc_part + dhc_mat                                        # [GRU-B11], [GRU-B13]
        return dparams, dx, (dh0,)
