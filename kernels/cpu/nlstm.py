"""Fast CPU Nested LSTM (any depth): batched level-0 input projection, fused step kernels.

Same parameters, state and interface as the reference ``minirnn.units.NestedLSTM``
(docs/nlstm.md); only the order of the work differs (docs/kernels.md):

forward   Zx = X W0[:I] + b0 for all T*B rows at once      (input part of [NLSTM-F1], level 0;
          a row lookup when X is one-hot ids, _common.input_part)
          per step, outside-in: level 0: h W0[I:] (BLAS) + ``nlstm_fwd_gates``;
          level k >= 1: [a_k, b_k] W_k (BLAS; its input depends on the step) +
          ``nlstm_fwd_gates``; then ``nlstm_fwd_out`` (inside-out, all levels)
backward  per step: ``nlstm_bwd_out`` (outside-in, all levels), then inside-out per
          level ``nlstm_bwd_level`` and dcat = dz_k W_k^T (BLAS into a buffer)
          after the loop, per level one product: dW0[:I] = X^T dZ0,
          dW0[I:] = H_prev^T dZ0, dW_k = CAT_k^T dZ_k, db_k = sum dZ_k, dX = dZ0 W0[:I]^T
          ([NLSTM-B15]..[NLSTM-B17]); the level inputs CAT_k are stored in forward.

The returned ``hs`` and final state are views of the cache's buffers: do not write
into them before calling backward.
"""
from __future__ import annotations

import numpy as np

from minirnn.units.nlstm import NestedLSTM

from ._common import (FastCPUUnit, as_c, carry_in, input_grad, input_part, input_weight_grad, is_numpy, scratch,
                      takes_ids)
from .gates import nlstm_bwd_level, nlstm_fwd_gates, nlstm_bwd_out, nlstm_fwd_out


class FastNestedLSTM(FastCPUUnit, NestedLSTM):
    """``NestedLSTM`` with the fused CPU forward/backward (NumPy arrays; others use the reference)."""

    def forward(self, params, x, state0):
        if not is_numpy(x, *state0):
            return super().forward(params, x, state0)
        if not takes_ids(x):
            self._check_inputs(x, state0)
        x, dt = self.prepare_input(x, state0)
        T, B, I = x.shape[0], x.shape[1], self.input_size
        H, D = self.hidden_size, self.depth
        W = [as_c(params[f"W{k}"], dt) for k in range(D)]
        bias = [as_c(params[f"b{k}"], dt) for k in range(D)]
        Wrec = [W[0][I:]] + W[1:]                            # the in-loop product of each level
        # What each level adds to its product: level 0 the batched input part, level k >= 1
        # its bias (one broadcast copy per call, so the kernel reads plain (B, 4H) blocks).
        badd = [None] + [np.ascontiguousarray(np.broadcast_to(bias[k], (B, 4 * H))) for k in range(1, D)]

        Zx = input_part(x, W[0][:I], bias[0], dt)           # input part of [NLSTM-F1], level 0
        Hs = scratch((T + 1, B, H), dtype=dt)               # Hs[t] = h_{t-1}; Hs[1:] = outputs
        C = scratch((D, T + 1, B, H), dtype=dt)             # C[k, t] = c_k before step t
        G = scratch((D, T, B, 4 * H), dtype=dt)             # gates per level
        TC = scratch((D, T, B, H), dtype=dt)                # tanh(c_k')
        CAT = scratch((max(D - 1, 1), T, B, 2 * H), dtype=dt)  # CAT[k-1, t] = [a_k | b_k], k >= 1
        zh = scratch((B, 4 * H), dtype=dt)
        Hs[0] = state0[0]
        for k in range(D):
            C[k, 0] = state0[1 + k]
        tanh_at = [self._candidate_has_tanh(k) for k in range(D)]
        for t in range(T):
            for k in range(D):                                # outside-in   [NLSTM-F0]
                if k == 0:
                    np.matmul(Hs[t], Wrec[0], out=zh)         # [NLSTM-F1] (h rows)
                    zadd = Zx[t]
                else:
                    np.matmul(CAT[k - 1, t], Wrec[k], out=zh)  # [NLSTM-F1]
                    zadd = badd[k]
                if k == D - 1:                                # innermost: c_{D-1}' = b_D + a_D
                    nlstm_fwd_gates(zh, zadd, C[k, t], G[k, t], C[k, t + 1], True, tanh_at[k])
                else:                                         # hand [a_{k+1}, b_{k+1}] down
                    nlstm_fwd_gates(zh, zadd, C[k, t], G[k, t], CAT[k, t], False, tanh_at[k])
            nlstm_fwd_out(t, G, C, TC, Hs)                    # inside-out  [NLSTM-F9]..[NLSTM-F11]
        cache = {"fast": True, "x": x, "Hs": Hs, "C": C, "G": G, "TC": TC, "CAT": CAT}
        return Hs[1:], (Hs[T],) + tuple(C[k, T] for k in range(D)), cache

    def backward(self, params, cache, dhs, dstate_T=None):
        if not (isinstance(cache, dict) and cache.get("fast")):
            return super().backward(params, cache, dhs, dstate_T)
        x, Hs, C, G, TC, CAT = (cache[k] for k in ("x", "Hs", "C", "G", "TC", "CAT"))
        dt = Hs.dtype
        T, B, I = x.shape[0], x.shape[1], self.input_size
        H, D = self.hidden_size, self.depth
        W = [as_c(params[f"W{k}"], dt) for k in range(D)]
        WrecT = [W[0][I:].T] + [W[k].T for k in range(1, D)]
        dhs = as_c(dhs, dt)

        dh_carry = carry_in(dstate_T, 0, (B, H), dt)
        dc_carry = scratch((D, B, H), dtype=dt)
        for k in range(D):
            dc_carry[k] = carry_in(dstate_T, 1 + k, (B, H), dt)
        dZ = scratch((D, T, B, 4 * H), dtype=dt)
        dinner = scratch((B, H), dtype=dt)
        dcat = scratch((B, 2 * H), dtype=dt)
        tanh_at = [self._candidate_has_tanh(k) for k in range(D)]
        for t in range(T - 1, -1, -1):
            nlstm_bwd_out(t, dhs[t], dh_carry, dc_carry, G, TC, dZ, dinner)  # [NLSTM-B1]..[NLSTM-B5]
            for k in range(D - 1, -1, -1):                     # inside-out
                if k == D - 1:
                    dab, off = dinner, 0                       # da_D = db_D = dc_{D-1}'  [NLSTM-B5]
                else:
                    dab, off = dcat, H                         # [NLSTM-B13]
                nlstm_bwd_level(dab, off, G[k, t], C[k, t], dZ[k, t], dc_carry[k], tanh_at[k])  # [NLSTM-B6]..[NLSTM-B11]
                if k >= 1:
                    np.matmul(dZ[k, t], WrecT[k], out=dcat)    # [NLSTM-B12], [NLSTM-B13]
                else:
                    np.matmul(dZ[0, t], WrecT[0], out=dh_carry)  # [NLSTM-B12], [NLSTM-B14]

        dparams = {}
        for k in range(D):
            dZk = dZ[k].reshape(T * B, 4 * H)
            if k == 0:
                dW0 = scratch((I + H, 4 * H), dtype=dt)
                input_weight_grad(x, dZk, dW0[:I])                           # [NLSTM-B15]
                np.matmul(Hs[:T].reshape(T * B, H).T, dZk, out=dW0[I:])      # [NLSTM-B15]
                dparams["W0"] = dW0
            else:
                dparams[f"W{k}"] = np.matmul(CAT[k - 1].reshape(T * B, 2 * H).T, dZk)  # [NLSTM-B15]
            dparams[f"b{k}"] = dZk.sum(axis=0)                               # [NLSTM-B16]
        dx = input_grad(x, dZ[0].reshape(T * B, 4 * H), W[0][:I], dt)       # [NLSTM-B17]
        dstate0 = (dh_carry,) + tuple(dc_carry[k] for k in range(D))         # [NLSTM-B18]
        return dparams, dx, dstate0
