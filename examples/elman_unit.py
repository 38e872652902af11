"""A worked example of adding a unit to minirnn: the Elman (vanilla tanh) RNN.

    h_t = tanh([x_t, h_{t-1}] W + b)

Adding a unit is this file (the interface of minirnn/units/base.py: shapes,
initial values, forward, hand-derived backward) and one registry entry, made by
``register_elman()``.  With no fast kernels named in its entry it runs on this
reference code on every path (minirnn says so once).  Its fast kernels are three
more places: the time loop (``FastElman``, written once for the CPU and the GPU),
the Numba kernels below and the CUDA kernels of ``elman.cu`` beside this file,
added by ``register_kernels``.  docs/units.md walks through it;
tests/test_registry.py trains it and checks its gradients.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from numba import njit

from minirnn.backend import array_module
from minirnn.kernels import register_kernels
from minirnn.kernels.cpu.gates import tanh_
from minirnn.kernels.units import FastUnit
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


# --- fast kernels: the Numba ones; elman.cu holds the CUDA ones, same names and arguments
# (cache=False: Numba's disk cache keys on the module's import name, which a file loaded
# by path does not have; these two compile in a moment.)
@njit(nogil=True)
def elman_fwd_step(H, zx_t, zr, h_next):
    """h_t = tanh(x_t W[:I] + b + h_{t-1} W[I:]): the two parts of the pre-activation, (B, H) each."""
    for b in range(h_next.shape[0]):
        for j in range(H):
            h_next[b, j] = tanh_(zx_t[b, j] + zr[b, j])


@njit(nogil=True)
def elman_bwd_step(H, dhs_t, dh_carry, h_t, dz_t):
    """dz_t = (dL/dh_t) (1 - h_t^2), dL/dh_t = dhs_t + dh_carry (the carry: dz_{t+1} W[I:]^T)."""
    one = h_t.dtype.type(1.0)
    for b in range(h_t.shape[0]):
        for j in range(H):
            h = h_t[b, j]
            dz_t[b, j] = (dhs_t[b, j] + dh_carry[b, j]) * (one - h * h)


# --- the time loop, one for both devices (the backend contract: kernels/units.py, docs/kernels.md)
class FastElman(FastUnit, Elman):
    def _forward_shapes(self, B, cap):
        H = self.hidden_size
        return {"zx": (cap, B, H), "zh": (B, H), "h": (cap + 1, B, H)}

    def _backward_shapes(self, B, cap):
        H = self.hidden_size
        return {"dhs": (cap, B, H), "dz": (cap, B, H), "dh": (B, H)}

    def forward(self, params, x, state0):
        if not self._owns(x, *state0):
            return super().forward(params, x, state0)
        be = self.backend
        ws, T, B, dt, x = self._start(x, state0)
        I, H = self.input_size, self.hidden_size
        W, b = self._weights(params, dt, "W", "b")
        zx, zh, h = ws.fwd["zx"][:T], ws.fwd["zh"], ws.fwd["h"]
        be.input_part(x, W[:I], b, zx)                       # x_t W[:I] + b, every step at once
        h[0] = state0[0]

        gemm = be.gemm                  # the kernels and products of the loop, looked up once
        elman_fwd_step = be.kernel("elman_fwd_step", dt, B * H)

        def loop():
            for t in range(T):
                gemm(h[t], W[I:], zh)                     # h_{t-1} W[I:]
                elman_fwd_step(H, zx[t], zh, h[t + 1])

        be.run_loop(ws, ("fwd", T), loop, lambda: (h[1:T + 1],), params=(W,))
        return be.result(h[1:T + 1]), (be.result(h[T]),), self._finish(ws, T, x)

    def backward(self, params, cache, dhs, dstate_T=None):
        if not self._ours(cache):
            return super().backward(params, cache, dhs, dstate_T)
        be = self.backend
        ws, T, x = cache.ws, cache.T, cache.x
        I, H, B, dt = self.input_size, self.hidden_size, ws.B, ws.dtype
        (W,) = self._weights(params, dt, "W")
        bw = ws.backward_buffers(self._backward_shapes(B, ws.cap))
        dhs = be.bind(bw["dhs"][:T], dhs)
        dz, dh, h = bw["dz"][:T], bw["dh"], ws.fwd["h"]

        def reset():
            self._set_carry(dh, None if dstate_T is None else dstate_T[0])

        gemm = be.gemm                  # the kernels and products of the loop, looked up once
        elman_bwd_step = be.kernel("elman_bwd_step", dt, B * H)

        def loop():
            for t in range(T - 1, -1, -1):
                elman_bwd_step(H, dhs[t], dh, h[t + 1], dz[t])
                gemm(dz[t], W[I:].T, dh)                  # the carry to step t-1

        reset()
        be.run_loop(ws, ("bwd", T), loop, lambda: (dz, dh), reset, params=(W,))
        dz2 = dz.reshape(T * B, H)
        dW = be.scratch(W.shape, dt)
        be.input_weight_grad(x, dz2, dW[:I])                 # the weight gradient, one product per part
        be.gemm(h[:T].reshape(T * B, H).T, dz2, dW[I:])
        return {"W": dW, "b": dz2.sum(axis=0)}, be.input_grad(x, dz2, W[:I]), (be.result(dh),)


def register_elman(fast: bool = True):
    """The one registry entry: name, label, reference class, preset sizes and, with ``fast``,
    the fast class (and its kernels)."""
    if fast:
        register_kernels({"elman_fwd_step": elman_fwd_step, "elman_bwd_step": elman_bwd_step},
                         cuda=Path(__file__).with_name("elman.cu"))
    return register(UnitSpec("elman", "Elman RNN", Elman, fast=FastElman if fast else None,
                             paper={"hidden": 600, "layers": 1, "depth": 1},
                             demo={"hidden": 128, "layers": 1, "depth": 1}))
