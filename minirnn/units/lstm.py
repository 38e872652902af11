"""Reference LSTM with a forget bias of +1 added inside the sigmoid.

Readable array code, one time step per loop iteration.  Every forward line cites
the equation of docs/lstm.md it implements (``[LSTM-F<n>]``), every backward step
the derivation line (``[LSTM-B<n>]``).

Parameters (row-vector convention, I = input size, H = hidden size):

    W (I+H, 4H)  column blocks [i | j | f | o]      b (4H,)  initialised to 0.0

The +1 of the forget gate is a constant of the equations, not part of ``b``.
"""
from __future__ import annotations

import numpy as np

from ..backend import array_module
from .base import Unit, glorot_uniform, sigmoid

FORGET_BIAS = 1.0


class LSTM(Unit):
    name = "lstm"
    input_kernels = ("W",)
    state_names = ("h", "c")
    gate_order = "i,j,f,o"
    forget_bias = 1.0
    torch_layout = True
    # at step 0, [LSTM-B5] and the carry of [LSTM-B8] are the initial state's gradients ([LSTM-B9])
    tag_gradients = {"LSTM-B5": ("state0.c",), "LSTM-B7": ("W", "b"), "LSTM-B8": ("x", "state0.h"),
                     "LSTM-B9": ("state0.h", "state0.c")}

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        I, H = self.input_size, self.hidden_size
        return {"W": (I + H, 4 * H), "b": (4 * H,)}

    def init_params(self, rng: np.random.Generator, dtype) -> dict[str, np.ndarray]:
        shapes = self.param_shapes()
        return {
            "W": glorot_uniform(rng, shapes["W"], dtype),
            "b": np.zeros(shapes["b"], dtype=dtype),
        }

    # ------------------------------------------------------------------ forward
    def forward(self, params, x, state0):
        xp = array_module(x)
        T, B, I = x.shape
        H = self.hidden_size
        W, b = params["W"], params["b"]
        h, c = state0

        hs = xp.empty((T, B, H), dtype=x.dtype)
        # What backward needs, one slice per step.
        xh_all = xp.empty((T, B, I + H), dtype=x.dtype)     # [x_t, h_{t-1}]
        c_prev_all = xp.empty((T, B, H), dtype=x.dtype)     # c_{t-1}
        gates_all = xp.empty((T, B, 4 * H), dtype=x.dtype)  # [sig(i), tanh(j), sig(f+1), sig(o)]
        tc_all = xp.empty((T, B, H), dtype=x.dtype)         # tanh(c_t)

        for t in range(T):
            xh = xp.concatenate([x[t], h], axis=1)
            z = xh @ W + b                                        # [LSTM-F1]
            zi, zj, zf, zo = z[:, :H], z[:, H:2 * H], z[:, 2 * H:3 * H], z[:, 3 * H:]
            i_g = sigmoid(xp, zi)                                 # [LSTM-F2]
            g = xp.tanh(zj)                                       # [LSTM-F2]
            f_g = sigmoid(xp, zf + FORGET_BIAS)                   # [LSTM-F2]
            o_g = sigmoid(xp, zo)                                 # [LSTM-F2]
            c_new = f_g * c + i_g * g                             # [LSTM-F3]
            tc = xp.tanh(c_new)
            h_new = tc * o_g                                      # [LSTM-F4]

            xh_all[t], c_prev_all[t], tc_all[t] = xh, c, tc
            gates_all[t] = xp.concatenate([i_g, g, f_g, o_g], axis=1)
            hs[t] = h_new
            h, c = h_new, c_new

        cache = {"xh": xh_all, "c_prev": c_prev_all, "gates": gates_all, "tc": tc_all}
        return hs, (h, c), cache

    # ----------------------------------------------------------------- backward
    def backward(self, params, cache, dhs, dstate_T=None):
        xp = array_module(dhs)
        W = params["W"]
        xh_all, c_prev_all, gates_all, tc_all = cache["xh"], cache["c_prev"], cache["gates"], cache["tc"]
        T, B, H = dhs.shape
        I = self.input_size
        dtype = dhs.dtype

        # Gradients carried into step t from step t+1; at t = T-1 they are dL/d(final state).  [LSTM-B9]
        if dstate_T is None:
            dstate_T = (None, None)
        dh_carry = xp.zeros((B, H), dtype=dtype) if dstate_T[0] is None else dstate_T[0]
        dc_carry = xp.zeros((B, H), dtype=dtype) if dstate_T[1] is None else dstate_T[1]

        # Pre-activation gradients of every step; dW, db and dx are sums over time
        # of per-step products, formed in one product after the loop.
        dz_all = xp.empty((T, B, 4 * H), dtype=dtype)
        W_h = W[I:]   # rows of W that multiply h
        for t in range(T - 1, -1, -1):
            gates = gates_all[t]
            i_g, g, f_g, o_g = gates[:, :H], gates[:, H:2 * H], gates[:, 2 * H:3 * H], gates[:, 3 * H:]
            tc, c_prev = tc_all[t], c_prev_all[t]

            dh = dhs[t] + dh_carry                                # [LSTM-B1]
            do = dh * tc                                          # [LSTM-B2]
            dc = dc_carry + dh * o_g * (1.0 - tc * tc)            # [LSTM-B3]
            df = dc * c_prev                                      # [LSTM-B4]
            di = dc * g                                           # [LSTM-B4]
            dg = dc * i_g                                         # [LSTM-B4]
            dc_carry = dc * f_g                                   # [LSTM-B5]
            dz = xp.concatenate([di * i_g * (1.0 - i_g),          # [LSTM-B6]
                                 dg * (1.0 - g * g),
                                 df * f_g * (1.0 - f_g),
                                 do * o_g * (1.0 - o_g)], axis=1)
            dh_carry = dz @ W_h.T                                 # [LSTM-B8]
            dz_all[t] = dz

        xh2 = xh_all.reshape(T * B, I + H)
        dz2 = dz_all.reshape(T * B, 4 * H)
        dparams = {
            "W": xh2.T @ dz2,                                     # [LSTM-B7]
            "b": dz2.sum(axis=0),                                 # [LSTM-B7]
        }
        dx = (dz2 @ W[:I].T).reshape(T, B, I)                     # [LSTM-B8]
        return dparams, dx, (dh_carry, dc_carry)                  # [LSTM-B9]
