"""A worked example of adding a unit to minirnn: the Elman (vanilla tanh) RNN.

    h_t = tanh([x_t, h_{t-1}] W + b)

Adding a unit is this file (the interface of minirnn/units/base.py: shapes,
initial values, forward, hand-derived backward) and one registry entry, made by
``register_elman()``.  With no fast kernels named in its entry it runs on this
reference code on every path (minirnn says so once).  docs/units.md walks
through it; tests/test_registry.py trains it and checks its gradients.
"""
from __future__ import annotations

import numpy as np

from minirnn.backend import array_module
from minirnn.units import Unit, UnitSpec, register
from minirnn.units.base import glorot_uniform


class Elman(Unit):
    name = "elman"
    input_kernels = ("W",)      # W's first I rows multiply the input (the model folds the embedding there)
    state_names = ("h",)
    # what `minirnn read` checks for a backward tag (docs/read.md): the returned gradients its line computes
    tag_gradients = {"ELMAN-B2": ("W", "b"), "ELMAN-B3": ("x", "state0.h")}

    def param_shapes(self):
        I, H = self.input_size, self.hidden_size
        return {"W": (I + H, H), "b": (H,)}

    def init_params(self, rng: np.random.Generator, dtype):
        return {"W": glorot_uniform(rng, self.param_shapes()["W"], dtype), "b": np.zeros(self.hidden_size, dtype)}

    def forward(self, params, x, state0):
        xp = array_module(x)
        T = x.shape[0]
        W, b = params["W"], params["b"]
        h = state0[0]
        hs = xp.empty((T,) + h.shape, dtype=x.dtype)
        xh_all = xp.empty((T, x.shape[1], x.shape[2] + h.shape[1]), dtype=x.dtype)
        for t in range(T):
            xh_all[t] = xp.concatenate([x[t], h], axis=1)
            h = xp.tanh(xh_all[t] @ W + b)                       # [ELMAN-F1]
            hs[t] = h
        return hs, (h,), (xh_all, hs)

    def backward(self, params, cache, dhs, dstate_T=None):
        xp = array_module(dhs)
        xh_all, hs = cache
        W = params["W"]
        I = self.input_size
        dW, db = xp.zeros_like(W), xp.zeros_like(params["b"])
        dx = xp.empty((hs.shape[0], hs.shape[1], I), dtype=hs.dtype)
        dh = xp.zeros_like(hs[0]) if dstate_T is None else dstate_T[0]
        for t in range(hs.shape[0] - 1, -1, -1):
            dz = (dhs[t] + dh) * (1.0 - hs[t] * hs[t])        # through tanh [ELMAN-B1]
            dW += xh_all[t].T @ dz                            # [ELMAN-B2]
            db += dz.sum(axis=0)                              # [ELMAN-B2]
            dxh = dz @ W.T                                    # to [x_t, h_{t-1}] [ELMAN-B3]
            dx[t], dh = dxh[:, :I], dxh[:, I:]
        return {"W": dW, "b": db}, dx, (dh,)


def register_elman():
    """The one registry entry: name, label, reference class, and preset sizes (no fast kernels)."""
    return register(UnitSpec("elman", "Elman RNN", Elman,
                             paper={"hidden": 600, "layers": 1, "depth": 1},
                             demo={"hidden": 128, "layers": 1, "depth": 1}))
