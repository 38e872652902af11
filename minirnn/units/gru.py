"""Reference GRU ("reset before the matrix product", one bias per gate).

Readable array code, one time step per loop iteration.  Every forward line cites
the equation of docs/gru.md it implements (``[GRU-F<n>]``), every backward step
the derivation line (``[GRU-B<n>]``).

Parameters (row-vector convention, I = input size, H = hidden size):

    W_g (I+H, 2H)  columns [r | u]      b_g (2H,)  initialised to 1.0
    W_c (I+H, H)                        b_c (H,)   initialised to 0.0
"""
from __future__ import annotations

import numpy as np

from ..backend import array_module
from .base import Unit, glorot_uniform, sigmoid


class GRU(Unit):
    name = "gru"
    input_kernels = ("W_g", "W_c")
    state_names = ("h",)
    gate_order = "r,u"
    torch_refusal = ("PyTorch's nn.GRU applies the reset gate after the recurrent product (r * (h W_hn + b_hn)), "
                     "minirnn before it ([x, r * h] W_c), a different function")
    # at step 0, the carry of [GRU-B11] is the initial state's gradient ([GRU-B13])
    tag_gradients = {"GRU-B5": ("W_c", "b_c"), "GRU-B9": ("W_g", "b_g"), "GRU-B11": ("state0.h",),
                     "GRU-B12": ("x",), "GRU-B13": ("state0.h",)}

    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        I, H = self.input_size, self.hidden_size
        return {"W_g": (I + H, 2 * H), "b_g": (2 * H,), "W_c": (I + H, H), "b_c": (H,)}

    def init_params(self, rng: np.random.Generator, dtype) -> dict[str, np.ndarray]:
        shapes = self.param_shapes()
        return {
            "W_g": glorot_uniform(rng, shapes["W_g"], dtype),
            "b_g": np.ones(shapes["b_g"], dtype=dtype),  # the study's gate bias of 1.0
            "W_c": glorot_uniform(rng, shapes["W_c"], dtype),
            "b_c": np.zeros(shapes["b_c"], dtype=dtype),
        }

    # ------------------------------------------------------------------ forward
    def forward(self, params, x, state0):
        xp = array_module(x)
        T, B, I = x.shape
        H = self.hidden_size
        W_g, b_g, W_c, b_c = params["W_g"], params["b_g"], params["W_c"], params["b_c"]
        (h,) = state0

        hs = xp.empty((T, B, H), dtype=x.dtype)
        # What backward needs, one slice per step.
        xh_all = xp.empty((T, B, I + H), dtype=x.dtype)   # [x_t, h_{t-1}]
        xrh_all = xp.empty((T, B, I + H), dtype=x.dtype)  # [x_t, r_t * h_{t-1}]
        r_all = xp.empty((T, B, H), dtype=x.dtype)
        u_all = xp.empty((T, B, H), dtype=x.dtype)
        c_all = xp.empty((T, B, H), dtype=x.dtype)

        for t in range(T):
            xh = xp.concatenate([x[t], h], axis=1)
            a_g = xh @ W_g + b_g                                  # [GRU-F1]
            g = sigmoid(xp, a_g)
            r, u = g[:, :H], g[:, H:]                             # [GRU-F2]
            xrh = xp.concatenate([x[t], r * h], axis=1)
            a_c = xrh @ W_c + b_c                                 # [GRU-F3]
            c = xp.tanh(a_c)                                      # [GRU-F4]
            h_new = u * h + (1.0 - u) * c                         # [GRU-F5]

            xh_all[t], xrh_all[t] = xh, xrh
            r_all[t], u_all[t], c_all[t] = r, u, c
            hs[t] = h_new
            h = h_new

        cache = {"xh": xh_all, "xrh": xrh_all, "r": r_all, "u": u_all, "c": c_all}
        return hs, (h,), cache

    # ----------------------------------------------------------------- backward
    def backward(self, params, cache, dhs, dstate_T=None):
        xp = array_module(dhs)
        W_g, W_c = params["W_g"], params["W_c"]
        xh_all, xrh_all = cache["xh"], cache["xrh"]
        r_all, u_all, c_all = cache["r"], cache["u"], cache["c"]
        T, B, H = dhs.shape
        I = self.input_size
        dtype = dhs.dtype

        # The gradient carried into step t from step t+1; at t = T-1 it is dL/dh_T.  [GRU-B13]
        if dstate_T is None or dstate_T[0] is None:
            dh_carry = xp.zeros((B, H), dtype=dtype)
        else:
            dh_carry = dstate_T[0]

        # Pre-activation gradients of every step; the weight gradients and dx are
        # sums over time of per-step products, formed in one product after the loop.
        da_g_all = xp.empty((T, B, 2 * H), dtype=dtype)
        da_c_all = xp.empty((T, B, H), dtype=dtype)

        W_c_h = W_c[I:]   # rows of W_c that multiply r * h
        W_g_h = W_g[I:]   # rows of W_g that multiply h
        for t in range(T - 1, -1, -1):
            r, u, c = r_all[t], u_all[t], c_all[t]
            h_prev = xh_all[t][:, I:]
            dh = dhs[t] + dh_carry                                # [GRU-B1]
            dc = dh * (1.0 - u)                                   # [GRU-B2]
            du = dh * (h_prev - c)                                # [GRU-B3]
            da_c = dc * (1.0 - c * c)                             # [GRU-B4]
            drh = da_c @ W_c_h.T                                  # [GRU-B6] (the r*h columns)
            dr = drh * h_prev                                     # [GRU-B7]
            da_g = xp.concatenate([dr * r * (1.0 - r),            # [GRU-B8]
                                   du * u * (1.0 - u)], axis=1)
            dh_carry = dh * u + drh * r + da_g @ W_g_h.T          # [GRU-B10], [GRU-B11]
            da_c_all[t] = da_c
            da_g_all[t] = da_g

        # Sums over time and batch, as single matrix products.
        xh2 = xh_all.reshape(T * B, I + H)
        xrh2 = xrh_all.reshape(T * B, I + H)
        da_g2 = da_g_all.reshape(T * B, 2 * H)
        da_c2 = da_c_all.reshape(T * B, H)
        dparams = {
            "W_g": xh2.T @ da_g2,                                 # [GRU-B9]
            "b_g": da_g2.sum(axis=0),                             # [GRU-B9]
            "W_c": xrh2.T @ da_c2,                                # [GRU-B5]
            "b_c": da_c2.sum(axis=0),                             # [GRU-B5]
        }
        dx = (da_c2 @ W_c[:I].T + da_g2 @ W_g[:I].T).reshape(T, B, I)  # [GRU-B10], [GRU-B12]
        return dparams, dx, (dh_carry,)                           # [GRU-B13]
