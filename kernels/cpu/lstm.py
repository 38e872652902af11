"""Fast CPU LSTM: batched input projection, fused step kernels, one-product weight gradients.

Same parameters, state and interface as the reference ``minirnn.units.LSTM``
(docs/lstm.md); only the order of the work differs (docs/kernels.md):

forward   Zx = X W[:I] + b for all T*B rows at once            (input part of [LSTM-F1];
          a row lookup when X is one-hot ids, _common.input_part)
          per step: zh = h_{t-1} W[I:] (BLAS, into a buffer) then ``lstm_fwd_step``
backward  per step: ``lstm_bwd_step`` then dh_carry = dz_t W[I:]^T (BLAS, into a buffer)
          after the loop: dW[:I] = X^T dZ, dW[I:] = H_prev^T dZ, db = sum dZ,
          dX = dZ W[:I]^T (none for ids)                        ([LSTM-B7], [LSTM-B8])

The returned ``hs`` and final state are views of the cache's buffers: do not write
into them before calling backward.
"""
from __future__ import annotations

import numpy as np

from minirnn.units.lstm import LSTM

from ._common import FastCPUUnit, as_c, carry_in, input_grad, input_part, input_weight_grad, is_numpy, scratch
from .gates import lstm_bwd_step, lstm_fwd_step


class FastLSTM(FastCPUUnit, LSTM):
    """``LSTM`` with the fused CPU forward/backward (NumPy arrays; others use the reference)."""

    def forward(self, params, x, state0):
        if not is_numpy(x, *state0):
            return super().forward(params, x, state0)
        x, dt = self.prepare_input(x, state0)
        T, B, I = x.shape[0], x.shape[1], self.input_size
        H = self.hidden_size
        W = as_c(params["W"], dt)
        b = as_c(params["b"], dt)
        W_x, W_h = W[:I], W[I:]                        # contiguous row blocks, no copy

        Zx = input_part(x, W_x, b, dt)                 # input part of [LSTM-F1], all steps
        Hs = scratch((T + 1, B, H), dtype=dt)         # Hs[t] = h_{t-1}; Hs[1:] = outputs
        Cs = scratch((T + 1, B, H), dtype=dt)         # Cs[t] = c_{t-1}
        G = scratch((T, B, 4 * H), dtype=dt)          # [sig(i) | tanh(j) | sig(f+1) | sig(o)]
        TC = scratch((T, B, H), dtype=dt)             # tanh(c_t)
        zh = scratch((B, 4 * H), dtype=dt)
        Hs[0] = state0[0]
        Cs[0] = state0[1]
        for t in range(T):
            np.matmul(Hs[t], W_h, out=zh)              # recurrent part of [LSTM-F1]
            lstm_fwd_step(Zx[t], zh, Cs[t], G[t], Cs[t + 1], TC[t], Hs[t + 1])  # [LSTM-F1]..[LSTM-F4]
        cache = {"fast": True, "x": x, "Hs": Hs, "Cs": Cs, "G": G, "TC": TC}
        return Hs[1:], (Hs[T], Cs[T]), cache

    def backward(self, params, cache, dhs, dstate_T=None):
        if not (isinstance(cache, dict) and cache.get("fast")):
            return super().backward(params, cache, dhs, dstate_T)
        x, Hs, Cs, G, TC = cache["x"], cache["Hs"], cache["Cs"], cache["G"], cache["TC"]
        dt = Hs.dtype
        T, B, I = x.shape[0], x.shape[1], self.input_size
        H = self.hidden_size
        W = as_c(params["W"], dt)
        W_x, W_h = W[:I], W[I:]
        dhs = as_c(dhs, dt)

        dh_carry = carry_in(dstate_T, 0, (B, H), dt)   # [LSTM-B9] (at t = T-1: dL/d final state)
        dc_carry = carry_in(dstate_T, 1, (B, H), dt)
        dZ = scratch((T, B, 4 * H), dtype=dt)
        W_hT = W_h.T                                    # a transposed view; BLAS reads it as is
        for t in range(T - 1, -1, -1):
            lstm_bwd_step(dhs[t], dh_carry, dc_carry, G[t], TC[t], Cs[t], dZ[t])  # [LSTM-B1]..[LSTM-B6]
            np.matmul(dZ[t], W_hT, out=dh_carry)        # [LSTM-B8] (the h rows)

        dZ2 = dZ.reshape(T * B, 4 * H)
        dW = scratch((I + H, 4 * H), dtype=dt)
        input_weight_grad(x, dZ2, dW[:I])                            # [LSTM-B7]
        np.matmul(Hs[:T].reshape(T * B, H).T, dZ2, out=dW[I:])       # [LSTM-B7]
        dparams = {"W": dW, "b": dZ2.sum(axis=0)}                    # [LSTM-B7]
        dx = input_grad(x, dZ2, W_x, dt)                             # [LSTM-B8]
        return dparams, dx, (dh_carry, dc_carry)                     # [LSTM-B9]
