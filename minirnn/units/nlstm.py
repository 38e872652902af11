"""Nested LSTM of any depth D >= 1: reference forward and BPTT (docs/nlstm.md).

Level k (k = 0 .. D-1) has its own kernel ``W{k}`` and bias ``b{k}``; level 0
reads (x, h), level k >= 1 reads the pair (a_k, b_k) handed down by level k - 1.
The state is (h, c0, ..., c{D-1}).  Every forward line cites its equation tag
(NLSTM-F0 ... F11) and every backward step the derivation line it implements
(NLSTM-B1 ... B18); all are defined in docs/nlstm.md.

Default (``outer_tanh=False``) matches the code behind the published numbers: the
outermost level feeds sigma(i) * j inward, with no tanh on j.
"""
from __future__ import annotations

import numpy as np

from ..backend import array_module
from .base import Unit, glorot_uniform, sigmoid


class NestedLSTM(Unit):
    """Nested LSTM unit; ``depth`` levels, ``outer_tanh`` puts tanh on level 0's candidate."""

    name = "nlstm"
    input_kernels = ("W0",)
    gate_order = "i,j,f,o"
    forget_bias = 1.0
    torch_refusal = "PyTorch has no Nested LSTM module"
    # at step 0, [NLSTM-B10] and [NLSTM-B14] are the initial state's gradients ([NLSTM-B18])
    tag_gradients = {"NLSTM-B10": ("state0.c*",), "NLSTM-B14": ("state0.h",), "NLSTM-B15": ("W*",),
                     "NLSTM-B16": ("b*",), "NLSTM-B17": ("x",), "NLSTM-B18": ("state0.*",)}

    def activation_vectors(self) -> int:
        return 6 * self.depth + 4

    def __init__(self, input_size: int, hidden_size: int, depth: int = 2, outer_tanh: bool = False):
        super().__init__(input_size, hidden_size)
        if isinstance(depth, bool) or int(depth) != depth or int(depth) < 1:
            raise ValueError(f"depth must be an integer >= 1, got {depth!r}")
        self.depth = int(depth)
        self.outer_tanh = bool(outer_tanh)
        self.state_names = ("h",) + tuple(f"c{k}" for k in range(self.depth))

    # --- parameters ------------------------------------------------------
    def param_shapes(self) -> dict[str, tuple[int, ...]]:
        I, H = self.input_size, self.hidden_size
        shapes: dict[str, tuple[int, ...]] = {}
        for k in range(self.depth):
            rows = I + H if k == 0 else 2 * H
            shapes[f"W{k}"] = (rows, 4 * H)  # column blocks [i; j; f; o]
            shapes[f"b{k}"] = (4 * H,)
        return shapes

    def init_params(self, rng: np.random.Generator, dtype) -> dict[str, np.ndarray]:
        params = {}
        for name, shape in self.param_shapes().items():
            if name.startswith("W"):
                params[name] = glorot_uniform(rng, shape, dtype)
            else:
                params[name] = np.zeros(shape, dtype=dtype)
        return params

    def config(self) -> dict:
        cfg = super().config()
        cfg["depth"] = self.depth
        cfg["outer_tanh"] = self.outer_tanh
        return cfg

    def _candidate_has_tanh(self, k: int) -> bool:
        return k >= 1 or self.outer_tanh

    def _check_inputs(self, x, state0):
        if x.ndim != 3 or x.shape[2] != self.input_size:
            raise ValueError(f"x must have shape (T, B, {self.input_size}), got {tuple(x.shape)}")
        if len(state0) != len(self.state_names):
            raise ValueError(f"state0 must hold {len(self.state_names)} tensors {self.state_names}, got {len(state0)}")
        for name, s in zip(self.state_names, state0):
            if tuple(s.shape) != (x.shape[1], self.hidden_size):
                raise ValueError(f"state0.{name} must have shape ({x.shape[1]}, {self.hidden_size}), got {tuple(s.shape)}")

    # --- forward -----------------------------------------------------------
    def forward(self, params, x, state0):
        xp = array_module(x)
        self._check_inputs(x, state0)
        T, B, I = x.shape
        H, D = self.hidden_size, self.depth
        dt = x.dtype

        # Level 0's input part of [NLSTM-F1] for all steps at once: x_t W0[:I] + b0.
        W0 = params["W0"]
        zx = (x.reshape(T * B, I) @ W0[:I] + params["b0"]).reshape(T, B, 4 * H)

        # Per level, per step: what backward needs.
        cat = [xp.empty((T, B, H if k == 0 else 2 * H), dtype=dt) for k in range(D)]  # [a_k, b_k] (level 0: h only)
        s_i = [xp.empty((T, B, H), dtype=dt) for _ in range(D)]
        s_f = [xp.empty((T, B, H), dtype=dt) for _ in range(D)]
        s_o = [xp.empty((T, B, H), dtype=dt) for _ in range(D)]
        g = [xp.empty((T, B, H), dtype=dt) for _ in range(D)]
        c_old = [xp.empty((T, B, H), dtype=dt) for _ in range(D)]
        tc = [xp.empty((T, B, H), dtype=dt) for _ in range(D)]  # tanh(c_k')
        hs = xp.empty((T, B, H), dtype=dt)

        h = state0[0]
        c = list(state0[1:])
        for t in range(T):
            # Outside-in: gates of every level, handing (a_{k+1}, b_{k+1}) down.
            a_k, b_k = None, h                                        # a_0 = x_t, b_0 = h   [NLSTM-F0]
            for k in range(D):
                if k == 0:
                    cat[0][t] = b_k
                    z = zx[t] + b_k @ W0[I:]                          # [NLSTM-F1]
                else:
                    cat[k][t, :, :H] = a_k
                    cat[k][t, :, H:] = b_k
                    z = cat[k][t] @ params[f"W{k}"] + params[f"b{k}"]  # [NLSTM-F1]
                s_i[k][t] = sigmoid(xp, z[:, :H])                     # [NLSTM-F2]
                j = z[:, H:2 * H]
                s_f[k][t] = sigmoid(xp, z[:, 2 * H:3 * H] + 1.0)      # [NLSTM-F3]
                s_o[k][t] = sigmoid(xp, z[:, 3 * H:])                 # [NLSTM-F4]
                g[k][t] = xp.tanh(j) if self._candidate_has_tanh(k) else j  # [NLSTM-F5]
                c_old[k][t] = c[k]
                b_k = s_f[k][t] * c[k]                                # b_{k+1}  [NLSTM-F6]
                a_k = s_i[k][t] * g[k][t]                             # a_{k+1}  [NLSTM-F7]
            # Inside-out: memories and outputs.
            c_new = b_k + a_k                                         # innermost memory  [NLSTM-F8]
            for k in range(D - 1, -1, -1):
                c[k] = c_new
                tc[k][t] = xp.tanh(c_new)
                h_k = tc[k][t] * s_o[k][t]                            # [NLSTM-F9]
                c_new = h_k                                           # c_{k-1}' = h_k'  [NLSTM-F10]
            h = h_k                                                   # output h' = h_0'  [NLSTM-F11]
            hs[t] = h

        state_T = (h,) + tuple(c)
        cache = {"x": x, "cat": cat, "s_i": s_i, "s_f": s_f, "s_o": s_o, "g": g,
                 "c_old": c_old, "tc": tc, "state0": tuple(state0)}
        return hs, state_T, cache

    # --- backward ----------------------------------------------------------
    def backward(self, params, cache, dhs, dstate_T=None):
        x = cache["x"]
        xp = array_module(x)
        T, B, I = x.shape
        H, D = self.hidden_size, self.depth
        dt = x.dtype
        cat, s_i, s_f, s_o = cache["cat"], cache["s_i"], cache["s_f"], cache["s_o"]
        g, c_old, tc = cache["g"], cache["c_old"], cache["tc"]

        # Carried gradients dL/dh and dL/dc_k flowing back into step t's outputs.
        if dstate_T is None:
            dstate_T = (None,) * (D + 1)
        carry = [xp.zeros((B, H), dtype=dt) if d is None else xp.asarray(d, dtype=dt) for d in dstate_T]
        dh_carry, dc_carry = carry[0], carry[1:]

        dz = [xp.empty((T, B, 4 * H), dtype=dt) for _ in range(D)]
        Wh = [params["W0"][I:]] + [params[f"W{k}"] for k in range(1, D)]  # rows that see the recurrent part

        for t in range(T - 1, -1, -1):
            dh_k = dhs[t] + dh_carry                                  # [NLSTM-B1]
            # Outside-in through the outputs: h_k' -> c_k' (= h_{k+1}') -> ... -> innermost.
            do = [None] * D
            for k in range(D):
                do[k] = dh_k * tc[k][t] * s_o[k][t] * (1.0 - s_o[k][t])           # [NLSTM-B2]
                dc_new = dc_carry[k] + dh_k * s_o[k][t] * (1.0 - tc[k][t] ** 2)  # [NLSTM-B3]
                dh_k = dc_new                                         # dh_{k+1}' = dc_k'  [NLSTM-B4]
            da = db = dc_new                                          # innermost: da_D = db_D = dc_{D-1}'  [NLSTM-B5]
            # Inside-out through the gates: (a_{k+1}, b_{k+1}) -> level k's gates and inputs.
            for k in range(D - 1, -1, -1):
                si, sf, gk = s_i[k][t], s_f[k][t], g[k][t]
                di = da * gk * si * (1.0 - si)                        # [NLSTM-B6]
                dg = da * si                                          # [NLSTM-B7]
                dj = dg * (1.0 - gk * gk) if self._candidate_has_tanh(k) else dg  # [NLSTM-B8]
                df = db * c_old[k][t] * sf * (1.0 - sf)               # [NLSTM-B9]
                dc_carry[k] = db * sf                                 # dc_k to step t-1  [NLSTM-B10]
                dzk = dz[k][t]
                dzk[:, :H] = di                                       # [NLSTM-B11]
                dzk[:, H:2 * H] = dj
                dzk[:, 2 * H:3 * H] = df
                dzk[:, 3 * H:] = do[k]
                dcat = dzk @ Wh[k].T                                  # [NLSTM-B12]
                if k >= 1:
                    da, db = dcat[:, :H], dcat[:, H:]                 # da_k, db_k for level k-1  [NLSTM-B13]
                else:
                    dh_carry = dcat                                   # dh to step t-1 (b_0 = h)  [NLSTM-B14]

        # Parameter and input gradients, summed over all steps at once.
        dparams = {}
        for k in range(D):
            dzf = dz[k].reshape(T * B, 4 * H)
            if k == 0:
                xf = x.reshape(T * B, I)
                dW0 = xp.empty((I + H, 4 * H), dtype=dt)
                dW0[:I] = xf.T @ dzf                                  # [NLSTM-B15]
                dW0[I:] = cat[0].reshape(T * B, H).T @ dzf            # [NLSTM-B15]
                dparams["W0"] = dW0
            else:
                dparams[f"W{k}"] = cat[k].reshape(T * B, 2 * H).T @ dzf  # [NLSTM-B15]
            dparams[f"b{k}"] = dzf.sum(axis=0)                        # [NLSTM-B16]
        dx = (dz[0].reshape(T * B, 4 * H) @ params["W0"][:I].T).reshape(T, B, I)  # [NLSTM-B17]
        dstate0 = (dh_carry,) + tuple(dc_carry)                       # [NLSTM-B18]
        return dparams, dx, dstate0
