"""The fast GRU, LSTM and Nested LSTM: one time loop per unit, for the CPU and the GPU.

Same parameters, state and interface as the reference units (minirnn/units/);
only the order of the work differs (docs/kernels.md):

forward   the input part of every step's pre-activation, x_t W[:I] + b, for the
          whole sequence at once (a row lookup when x is one-hot ids); per step
          the recurrent product into a buffer, then one fused kernel
backward  per step one fused kernel and the recurrent product carrying the
          gradient to step t-1; after the loop the weight gradients, bias
          gradients and dx as a few large products over all T*B rows

Each loop is written once against a *backend*: ``xp``, ``gemm(a, b, out)``,
``kernel(name, dtype, n)``, ``scratch``, ``transposed``, ``input_part``, ``input_weight_grad``,
``input_grad``, ``bind`` (a loop input's fixed buffer), ``result`` and
``run_loop``.  ``kernel`` gives, on ``NumbaBackend`` (kernels/cpu/), the Numba
kernel of the name itself, on ``CupyBackend`` (kernels/cuda/_runtime.py) a launch
of the CUDA kernel; kernels of one name take one argument list (after n = B*H)
on both devices, so the loop's call reads as the kernel's signature.

A forward's buffers form a *workspace* that its cache holds until backward is
done with it; the GPU keeps released workspaces for reuse (its recorded loops
and CUDA graphs refer to their addresses), the CPU returns them to the pooled
memory of minirnn/scratch.py.
"""
from __future__ import annotations

import threading
import weakref
from collections import OrderedDict

import numpy as np

from minirnn.units.gru import GRU
from minirnn.units.lstm import LSTM
from minirnn.units.nlstm import NestedLSTM
from minirnn.units import unit_spec

_SLACK = 16          # workspace capacity is rounded up to a multiple of this many steps


class Workspace:
    """Buffers for one forward (and its backward) of batch B and up to ``cap`` steps."""

    def __init__(self, be, B: int, cap: int, dtype, fwd_shapes: dict):
        self.be, self.B, self.cap, self.dtype = be, B, cap, np.dtype(dtype)
        # By name: ``fwd`` (forward) and ``bwd`` (backward) -- not f/g, which are gate names.
        self.fwd = {k: be.scratch(s, dtype) for k, s in fwd_shapes.items()}
        self.bwd = None
        self.loops: OrderedDict = OrderedDict()   # (direction, T) -> its recorded loop (the GPU's run_loop)

    def backward_buffers(self, shapes: dict) -> dict:
        if self.bwd is None:
            self.bwd = {k: self.be.scratch(s, self.dtype) for k, s in shapes.items()}
        return self.bwd


class _Cache:
    """What forward hands to backward: the leased workspace, T and the input x."""

    __slots__ = ("ws", "T", "x", "__weakref__")

    def __init__(self, ws, T, x):
        self.ws, self.T, self.x = ws, T, x


class _Pool:
    """A unit's released workspaces (at most ``be.keep_workspaces``), for the next forward."""

    def __init__(self):
        self.free: list = []
        self.lock = threading.Lock()   # forwards of one unit may run in several threads (serve)

    def lease(self, be, B, T, dtype, shapes_fn) -> Workspace:
        dt = np.dtype(dtype)
        with self.lock:
            for i, ws in enumerate(self.free):
                if ws.be is be and ws.B == B and ws.dtype == dt and ws.cap >= T:
                    return self.free.pop(i)
            # Nothing fits: drop free workspaces of this batch/dtype that are too short.
            self.free = [w for w in self.free if not (w.B == B and w.dtype == dt)]
        cap = -(-T // _SLACK) * _SLACK
        return Workspace(be, B, cap, dt, shapes_fn(B, cap))

    def release(self, ws: Workspace) -> None:
        with self.lock:
            self.free.insert(0, ws)
            del self.free[ws.be.keep_workspaces:]


class FastUnit:
    """Mixin of the fast units (listed before the reference unit among the bases).

    ``backend`` is given at construction (``fast_unit``) or, for the GPU, found on
    first use.  Arrays the backend does not own (e.g. CuPy arrays on the CPU
    backend) run on the reference code."""

    @property
    def backend(self):
        if self._backend is None:
            from .cuda._runtime import get_backend

            self._backend = get_backend()
        return self._backend

    @property
    def takes_ids(self) -> bool:
        """True when x may be one-hot input rows given as integer ids (T, B) (docs/layers.md [EMB-F2])."""
        return self.backend.takes_ids

    def _start(self, x, state0):
        """(workspace, T, B, dtype, x): x C-contiguous, ids as they are, values in the float dtype."""
        be = self.backend
        if x.ndim == 2 and x.dtype.kind in "iu":
            if not be.takes_ids:
                raise ValueError("this backend takes one-hot rows (T, B, I), not integer ids (T, B)")
            dt = np.result_type(state0[0].dtype, np.float32)
            x = be.xp.ascontiguousarray(x)
        else:
            if x.ndim != 3 or x.shape[2] != self.input_size or x.shape[0] < 1:
                raise ValueError(f"x must have shape (T >= 1, B, {self.input_size}), got {tuple(x.shape)}")
            dt = np.result_type(x.dtype, np.float32)
            x = be.xp.ascontiguousarray(x, dtype=dt)
        T, B = x.shape[0], x.shape[1]
        return self._pool.lease(be, B, T, dt, self._forward_shapes), T, B, dt, x

    def _finish(self, ws, T, x):
        cache = _Cache(ws, T, x)
        weakref.finalize(cache, self._pool.release, ws)
        return cache

    def _weights(self, params, dt, *names):
        xp = self.backend.xp
        return [xp.ascontiguousarray(params[k], dtype=dt) for k in names]

    @staticmethod
    def _ours(cache) -> bool:
        """Whether ``cache`` came from a fast forward (else: the reference's)."""
        return isinstance(cache, _Cache)

    def _owns(self, *arrays) -> bool:
        return all(isinstance(a, self.backend.xp.ndarray) for a in arrays if a is not None)

    @staticmethod
    def _set_carry(buf, value):
        if value is None:
            buf[...] = 0
        else:
            buf[...] = value


def fast_unit(unit, device: str = "cpu", backend=None):
    """The fast implementation of reference ``unit`` on ``device`` (the same configuration).

    ``backend``: None for the device's own (NumPy + Numba on the CPU; the current
    CUDA device's, found on first use, on the GPU); tests pass stand-ins."""
    if isinstance(unit, FastUnit):
        return unit

    spec = unit_spec(unit.name)
    cls = spec.fast_class(device)
    if cls is None or type(unit) is not spec.reference:
        raise TypeError(f"no fast implementation for {type(unit).__name__}")
    fast = cls(**unit.config())
    if backend is None and device == "cpu":
        from .cpu import NUMBA

        backend = NUMBA
    fast._backend, fast._pool = backend, _Pool()
    return fast


# =================================================================================== LSTM
class FastLSTM(FastUnit, LSTM):
    def _forward_shapes(self, B, cap):
        H = self.hidden_size
        return {"zx": (cap, B, 4 * H), "zh": (B, 4 * H), "gates": (cap, B, 4 * H),
                "h": (cap + 1, B, H), "c": (cap + 1, B, H), "tc": (cap, B, H)}

    def _backward_shapes(self, B, cap):
        H = self.hidden_size
        return {"dhs": (cap, B, H), "dz": (cap, B, 4 * H), "dh": (B, H), "dc": (B, H)}

    def forward(self, params, x, state0):
        if not self._owns(x, *state0):
            return super().forward(params, x, state0)
        be = self.backend
        ws, T, B, dt, x = self._start(x, state0)
        I, H, fw = self.input_size, self.hidden_size, ws.fwd
        n = B * H
        W, b = self._weights(params, dt, "W", "b")
        zx, h, c, gates, tc, zh = fw["zx"][:T], fw["h"], fw["c"], fw["gates"], fw["tc"], fw["zh"]
        be.input_part(x, W[:I], b, zx)                                       # [LSTM-F1], input part
        h[0] = state0[0]
        c[0] = state0[1]
        W_h = W[I:]

        gemm = be.gemm                  # the kernels and products of the loop, looked up once
        lstm_fwd_step = be.kernel("lstm_fwd_step", dt, n)

        def loop():
            for t in range(T):
                gemm(h[t], W_h, zh)                                       # [LSTM-F1], recurrent part
                lstm_fwd_step(H, zx[t], zh, c[t], gates[t], c[t + 1], tc[t], h[t + 1])

        be.run_loop(ws, ("fwd", T), loop, lambda: (h[1:T + 1], c[1:T + 1]), params=(W,))
        return be.result(h[1:T + 1]), (be.result(h[T]), be.result(c[T])), self._finish(ws, T, x)

    def backward(self, params, cache, dhs, dstate_T=None):
        if not self._ours(cache):
            return super().backward(params, cache, dhs, dstate_T)
        be = self.backend
        ws, T, x = cache.ws, cache.T, cache.x
        I, H, B, dt = self.input_size, self.hidden_size, ws.B, ws.dtype
        n, fw, bw = B * H, ws.fwd, ws.backward_buffers(self._backward_shapes(B, ws.cap))
        (W,) = self._weights(params, dt, "W")
        dhs = be.bind(bw["dhs"][:T], dhs)
        dh, dc, dz = bw["dh"], bw["dc"], bw["dz"][:T]
        gates, tc, c, h = fw["gates"], fw["tc"], fw["c"], fw["h"]
        dstate_T = (None, None) if dstate_T is None else dstate_T

        def reset():                                                         # [LSTM-B9]
            self._set_carry(dh, dstate_T[0])
            self._set_carry(dc, dstate_T[1])

        W_hT = be.transposed(W[I:])

        gemm = be.gemm                  # the kernels and products of the loop, looked up once
        lstm_bwd_step = be.kernel("lstm_bwd_step", dt, n)

        def loop():
            for t in range(T - 1, -1, -1):
                lstm_bwd_step(H, dhs[t], dh, dc, gates[t], tc[t], c[t], dz[t])
                gemm(dz[t], W_hT, dh)                                     # [LSTM-B8], recurrent part

        reset()
        be.run_loop(ws, ("bwd", T), loop, lambda: (dz, dh, dc), reset, params=(W,))

        dz2 = dz.reshape(T * B, 4 * H)
        dW = be.scratch(W.shape, dt)
        be.input_weight_grad(x, dz2, dW[:I])                                 # [LSTM-B7]
        be.gemm(h[:T].reshape(T * B, H).T, dz2, dW[I:])                      # [LSTM-B7]
        dparams = {"W": dW, "b": dz2.sum(axis=0)}                            # [LSTM-B7]
        dx = be.input_grad(x, dz2, W[:I])                                    # [LSTM-B8]
        return dparams, dx, (be.result(dh), be.result(dc))                   # [LSTM-B9]


# ==================================================================================== GRU
class FastGRU(FastUnit, GRU):
    """The input parts of both kernels come from one product with [W_g[:I] | W_c[:I]]:
    per-step blocks of width 3H hold [r | u | c] (zx, and the gradient da)."""

    def _forward_shapes(self, B, cap):
        H = self.hidden_size
        return {"zx": (cap, B, 3 * H), "zg": (B, 2 * H), "zc": (B, H), "ru": (cap, B, 2 * H),
                "rh": (cap, B, H), "cand": (cap, B, H), "h": (cap + 1, B, H)}

    def _backward_shapes(self, B, cap):
        H = self.hidden_size
        return {"dhs": (cap, B, H), "da": (cap, B, 3 * H), "dh": (B, H), "drh": (B, H),
                "dhc_part": (B, H), "dhc_mat": (B, H)}

    def forward(self, params, x, state0):
        if not self._owns(x, *state0):
            return super().forward(params, x, state0)
        be, xp = self.backend, self.backend.xp
        ws, T, B, dt, x = self._start(x, state0)
        I, H, fw = self.input_size, self.hidden_size, ws.fwd
        n = B * H
        W_g, b_g, W_c, b_c = self._weights(params, dt, "W_g", "b_g", "W_c", "b_c")
        zx, h, ru, rh, cand, zg, zc = (fw[k] for k in ("zx", "h", "ru", "rh", "cand", "zg", "zc"))
        zx = zx[:T]
        be.input_part(x, xp.concatenate([W_g[:I], W_c[:I]], axis=1), xp.concatenate([b_g, b_c]), zx)
        h[0] = state0[0]                                                     # ^ input parts of [GRU-F1], [GRU-F3]
        W_gh, W_ch = W_g[I:], W_c[I:]

        gemm = be.gemm                  # the kernels and products of the loop, looked up once
        gru_fwd_gates = be.kernel("gru_fwd_gates", dt, n)
        gru_fwd_cand = be.kernel("gru_fwd_cand", dt, n)

        def loop():
            for t in range(T):
                gemm(h[t], W_gh, zg)                                      # [GRU-F1], recurrent part
                gru_fwd_gates(H, zx[t], zg, h[t], ru[t], rh[t])
                gemm(rh[t], W_ch, zc)                                     # [GRU-F3], recurrent part
                gru_fwd_cand(H, zx[t], zc, ru[t], h[t], cand[t], h[t + 1])

        be.run_loop(ws, ("fwd", T), loop, lambda: (h[1:T + 1],), params=(W_g, W_c))
        return be.result(h[1:T + 1]), (be.result(h[T]),), self._finish(ws, T, x)

    def backward(self, params, cache, dhs, dstate_T=None):
        if not self._ours(cache):
            return super().backward(params, cache, dhs, dstate_T)
        be, xp = self.backend, self.backend.xp
        ws, T, x = cache.ws, cache.T, cache.x
        I, H, B, dt = self.input_size, self.hidden_size, ws.B, ws.dtype
        n, fw, bw = B * H, ws.fwd, ws.backward_buffers(self._backward_shapes(B, ws.cap))
        W_g, W_c = self._weights(params, dt, "W_g", "W_c")
        dhs = be.bind(bw["dhs"][:T], dhs)
        da, dh, drh, part, mat = bw["da"][:T], bw["dh"], bw["drh"], bw["dhc_part"], bw["dhc_mat"]
        ru, cand, h, rh = fw["ru"], fw["cand"], fw["h"], fw["rh"]

        def reset():                                                         # [GRU-B13]
            self._set_carry(part, None if dstate_T is None else dstate_T[0])
            mat[...] = 0

        W_chT, W_ghT = be.transposed(W_c[I:]), be.transposed(W_g[I:])

        gemm = be.gemm                  # the kernels and products of the loop, looked up once
        gru_bwd_cand = be.kernel("gru_bwd_cand", dt, n)
        gru_bwd_reset = be.kernel("gru_bwd_reset", dt, n)

        def loop():
            for t in range(T - 1, -1, -1):
                gru_bwd_cand(H, dhs[t], part, mat, ru[t], cand[t], h[t], dh, da[t])
                gemm(da[t, :, 2 * H:], W_chT, drh)                        # [GRU-B6] (the r*h rows)
                gru_bwd_reset(H, drh, dh, ru[t], h[t], da[t], part)
                gemm(da[t, :, :2 * H], W_ghT, mat)                        # [GRU-B10] (h columns), [GRU-B11]

        reset()
        be.run_loop(ws, ("bwd", T), loop, lambda: (da, part, mat), reset, params=(W_g, W_c))

        da2 = da.reshape(T * B, 3 * H)
        dW_x = be.scratch((I, 3 * H), dt)                                    # x rows of both kernels at once
        be.input_weight_grad(x, da2, dW_x)                                   # [GRU-B9], [GRU-B5] (x rows)
        dW_g, dW_c = be.scratch(W_g.shape, dt), be.scratch(W_c.shape, dt)
        dW_g[:I] = dW_x[:, :2 * H]
        dW_c[:I] = dW_x[:, 2 * H:]
        be.gemm(h[:T].reshape(T * B, H).T, da2[:, :2 * H], dW_g[I:])         # [GRU-B9]
        be.gemm(rh[:T].reshape(T * B, H).T, da2[:, 2 * H:], dW_c[I:])        # [GRU-B5]
        db = da2.sum(axis=0)
        dparams = {"W_g": dW_g, "b_g": db[:2 * H].copy(),                    # [GRU-B9]
                   "W_c": dW_c, "b_c": db[2 * H:].copy()}                    # [GRU-B5]
        W_x = xp.concatenate([W_g[:I], W_c[:I]], axis=1)
        dx = be.input_grad(x, da2, W_x)                      # [GRU-B6], [GRU-B10] (x columns), [GRU-B12]
        return dparams, dx, (part + mat,)                                    # [GRU-B11], [GRU-B13]


# ============================================================================ Nested LSTM
class FastNestedLSTM(FastUnit, NestedLSTM):
    """Kernels covering every level of one step get (D, B, .) blocks: gates, c and tc are
    stored step-major (cap, D, B, .), so a step's levels are one contiguous block; dz is
    stored level-major (D, cap, B, 4H), as the weight gradient of level k takes dz[k] over
    all steps as one matrix, and passes dz[:, t].  The CUDA kernels reach level k through
    the distance between two levels, in elements (``_lvl``)."""

    def _forward_shapes(self, B, cap):
        H, D = self.hidden_size, self.depth
        return {"zx": (cap, B, 4 * H), "zh": (B, 4 * H), "gates": (cap, D, B, 4 * H),
                "c": (cap + 1, D, B, H), "tc": (cap, D, B, H), "h": (cap + 1, B, H),
                "cat": (max(D - 1, 1), cap, B, 2 * H)}   # cat[k-1] = [a_k | b_k] for k >= 1

    def _backward_shapes(self, B, cap):
        H, D = self.hidden_size, self.depth
        return {"dhs": (cap, B, H), "dz": (D, cap, B, 4 * H), "dh": (B, H), "dc": (D, B, H),
                "dcat": (B, 2 * H)}

    @staticmethod
    def _lvl(block) -> int:
        return block.strides[0] // block.itemsize

    def _cand_tanh(self, k: int) -> int:
        return int(self._candidate_has_tanh(k))                              # [NLSTM-F5]

    def forward(self, params, x, state0):
        if not self._owns(x, *state0):
            return super().forward(params, x, state0)
        if not (x.ndim == 2 and x.dtype.kind in "iu"):
            self._check_inputs(x, state0)
        be = self.backend
        ws, T, B, dt, x = self._start(x, state0)
        I, H, D, fw = self.input_size, self.hidden_size, self.depth, ws.fwd
        n = B * H
        W = self._weights(params, dt, *(f"W{k}" for k in range(D)))
        bs = self._weights(params, dt, *(f"b{k}" for k in range(D)))
        zx, zh, gates, c, tc, h, cat = (fw[k] for k in ("zx", "zh", "gates", "c", "tc", "h", "cat"))
        zx = zx[:T]
        be.input_part(x, W[0][:I], bs[0], zx)                                # [NLSTM-F1], level 0 input part
        h[0] = state0[0]
        for k in range(D):
            c[0, k] = state0[1 + k]
        Ws = [W[0][I:]] + W[1:]
        lg, ls, lt = self._lvl(gates[0]), self._lvl(c[0]), self._lvl(tc[0])

        gemm = be.gemm                  # the kernels and products of the loop, looked up once
        nlstm_fwd_gates = be.kernel("nlstm_fwd_gates", dt, n)
        nlstm_fwd_out = be.kernel("nlstm_fwd_out", dt, n)

        def loop():
            for t in range(T):
                for k in range(D):                                           # outside-in: gates  [NLSTM-F0]
                    gemm(h[t] if k == 0 else cat[k - 1, t], Ws[k], zh)    # [NLSTM-F1]
                    add, add_rows = (zx[t], 1) if k == 0 else (bs[k], 0)
                    has_next = int(k < D - 1)
                    nxt = cat[k, t] if has_next else cat[0, t]               # (unused by the innermost level)
                    nlstm_fwd_gates(H, self._cand_tanh(k), has_next, add, add_rows, zh,
                              c[t, k], gates[t, k], nxt)
                nlstm_fwd_out(H, D, lg, ls, lt, gates[t], c[t], c[t + 1], tc[t],
                          h[t + 1])                                          # inside-out: memories, outputs

        be.run_loop(ws, ("fwd", T), loop, lambda: (h[1:T + 1], c[1:T + 1]), params=tuple(W) + tuple(bs[1:]))
        state_T = (be.result(h[T]),) + tuple(be.result(c[T, k]) for k in range(D))
        return be.result(h[1:T + 1]), state_T, self._finish(ws, T, x)

    def backward(self, params, cache, dhs, dstate_T=None):
        if not self._ours(cache):
            return super().backward(params, cache, dhs, dstate_T)
        be = self.backend
        ws, T, x = cache.ws, cache.T, cache.x
        I, H, D, B, dt = self.input_size, self.hidden_size, self.depth, ws.B, ws.dtype
        n, fw, bw = B * H, ws.fwd, ws.backward_buffers(self._backward_shapes(B, ws.cap))
        W = self._weights(params, dt, *(f"W{k}" for k in range(D)))
        dhs = be.bind(bw["dhs"][:T], dhs)
        dh, dc, dz, dcat = bw["dh"], bw["dc"], bw["dz"], bw["dcat"]
        gates, c, tc, h, cat = fw["gates"], fw["c"], fw["tc"], fw["h"], fw["cat"]
        dstate_T = (None,) * (D + 1) if dstate_T is None else dstate_T

        def reset():                                                         # [NLSTM-B18]
            self._set_carry(dh, dstate_T[0])
            for k in range(D):
                self._set_carry(dc[k], dstate_T[1 + k])

        WsT = [be.transposed(W[0][I:])] + [be.transposed(W[k]) for k in range(1, D)]
        lg, ls, lt, lz = self._lvl(gates[0]), self._lvl(c[0]), self._lvl(tc[0]), self._lvl(dz)

        gemm = be.gemm                  # the kernels and products of the loop, looked up once
        nlstm_bwd_out = be.kernel("nlstm_bwd_out", dt, n)
        nlstm_bwd_level = be.kernel("nlstm_bwd_level", dt, n)

        def loop():
            for t in range(T - 1, -1, -1):
                nlstm_bwd_out(H, D, self._cand_tanh(D - 1), lg, ls, lt, n, lz, dhs[t], dh,
                          dc, gates[t], tc[t], c[t], dz[:, t])               # [NLSTM-B1]..[NLSTM-B11]
                for k in range(D - 1, 0, -1):                                # inside-out through the gates
                    gemm(dz[k, t], WsT[k], dcat)                          # [NLSTM-B12], [NLSTM-B13]
                    nlstm_bwd_level(H, self._cand_tanh(k - 1), dcat, gates[t, k - 1],
                              c[t, k - 1], dz[k - 1, t], dc[k - 1])
                gemm(dz[0, t], WsT[0], dh)                                # [NLSTM-B12], [NLSTM-B14]

        reset()
        be.run_loop(ws, ("bwd", T), loop, lambda: (dz[:, :T], dh, dc), reset, params=tuple(W))

        dparams = {}
        for k in range(D):
            dzk = dz[k, :T].reshape(T * B, 4 * H)
            dW = be.scratch(W[k].shape, dt)
            if k == 0:
                be.input_weight_grad(x, dzk, dW[:I])                         # [NLSTM-B15]
                be.gemm(h[:T].reshape(T * B, H).T, dzk, dW[I:])              # [NLSTM-B15]
            else:
                be.gemm(cat[k - 1, :T].reshape(T * B, 2 * H).T, dzk, dW)     # [NLSTM-B15]
            dparams[f"W{k}"] = dW
            dparams[f"b{k}"] = dzk.sum(axis=0)                               # [NLSTM-B16]
        dx = be.input_grad(x, dz[0, :T].reshape(T * B, 4 * H), W[0][:I])     # [NLSTM-B17]
        dstate0 = (be.result(dh),) + tuple(be.result(dc[k]) for k in range(D))  # [NLSTM-B18]
        return dparams, dx, dstate0
