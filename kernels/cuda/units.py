"""GRU, LSTM and Nested LSTM on the GPU: the unit interface of minirnn/units/base.py.

Loop structure (the same as the Numba CPU path):

* forward: the input part of every step's pre-activation, x_t W[:I] + b, for the
  whole sequence in one GEMM; in the time loop only the recurrent GEMM
  (cuBLAS) and one fused elementwise kernel per GEMM (gates.cuh);
* backward: per step one fused kernel and the recurrent GEMM(s) carrying the
  gradient to step t-1; after the loop the weight gradients, the bias gradients
  and dx as a few large GEMMs / reductions over all T*B rows.

The time loop only touches preallocated buffers (a *workspace*), so it can be
captured into a CUDA graph once per (direction, T) and replayed (see
_runtime.run_loop).  A workspace holds one forward's cache: ``forward`` leases
one from the unit's pool and the returned cache object holds it until the cache
is garbage-collected, so several forwards may be alive at once (each with its
own buffers) and nothing the caller keeps is overwritten later: ``hs`` and the
states are returned as fresh copies.

The code is written against a small *backend* (xp, gemm, launch, run_loop, ptr):
``_runtime.CupyBackend`` on the GPU; tests/test_cuda_sources.py runs the very same
orchestration on the CPU with NumPy GEMMs and the gates.cuh bodies compiled for
the host, and compares it with the reference units.
"""
from __future__ import annotations

import weakref

import numpy as np

from minirnn.units.base import Unit

_SLACK = 16          # workspace capacity is rounded up to a multiple of this many steps
_MAX_FREE = 2        # workspaces kept for reuse per unit


class _Workspace:
    """Buffers for one forward (and its backward) of batch B and up to ``cap`` steps."""

    def __init__(self, xp, B: int, cap: int, dtype, fwd_shapes: dict):
        self.xp, self.B, self.cap, self.dtype = xp, B, cap, np.dtype(dtype)
        # Buffers by name: ``fwd`` (forward) and ``bwd`` (backward) -- not f/g, which are gate names.
        self.fwd = {k: xp.zeros(s, dtype=dtype) for k, s in fwd_shapes.items()}
        self.bwd = None         # backward buffers, allocated on the first backward
        self.graphs: dict = {}  # (direction, T) -> its recorded loop (_runtime._Loop)

    def backward_buffers(self, shapes: dict) -> dict:
        if self.bwd is None:
            self.bwd = {k: self.xp.zeros(s, dtype=self.dtype) for k, s in shapes.items()}
        return self.bwd


class _Cache:
    """What forward hands to backward: the leased workspace, T and the input x."""

    __slots__ = ("ws", "T", "x", "__weakref__")

    def __init__(self, ws, T, x):
        self.ws, self.T, self.x = ws, T, x


class _Pool:
    def __init__(self):
        self.free: list = []

    def lease(self, xp, B, T, dtype, shapes_fn) -> _Workspace:
        dt = np.dtype(dtype)
        for i, ws in enumerate(self.free):
            if ws.xp is xp and ws.B == B and ws.dtype == dt and ws.cap >= T:
                return self.free.pop(i)
        # Nothing fits: drop free workspaces of this batch/dtype that are too short.
        self.free = [w for w in self.free if not (w.B == B and w.dtype == dt)]
        cap = -(-T // _SLACK) * _SLACK
        return _Workspace(xp, B, cap, dt, shapes_fn(B, cap))

    def release(self, ws: _Workspace) -> None:
        self.free.insert(0, ws)
        del self.free[_MAX_FREE:]

    def bind(self, cache: _Cache) -> None:
        weakref.finalize(cache, self.release, cache.ws)


class CudaUnit(Unit):
    """Base of the GPU units: delegates parameters and configuration to the reference unit."""

    def __init__(self, reference: Unit, backend=None):
        super().__init__(reference.input_size, reference.hidden_size)
        self.reference = reference
        self.name = reference.name
        self.state_names = reference.state_names
        # Set on the instance: the class attributes of Unit (input_kernels = ()) would
        # otherwise shadow the reference's values, which __getattr__ never sees.
        self.input_kernels = reference.input_kernels
        self._backend = backend
        self._pool = _Pool()

    def __getattr__(self, item):  # depth, outer_tanh, ... of the reference unit
        if item == "reference":
            raise AttributeError(item)
        return getattr(self.reference, item)

    @property
    def backend(self):
        if self._backend is None:
            from ._runtime import get_backend

            self._backend = get_backend()
        return self._backend

    def param_shapes(self):
        return self.reference.param_shapes()

    def init_params(self, rng, dtype):
        return self.reference.init_params(rng, dtype)

    def config(self):
        return self.reference.config()

    def __repr__(self) -> str:
        return f"Cuda{self.reference!r}"

    # --- helpers shared by the three units ---------------------------------------------
    def _check(self, params, x, state0):
        if x.ndim != 3 or x.shape[2] != self.input_size or x.shape[0] < 1:
            raise ValueError(f"x must have shape (T >= 1, B, {self.input_size}), got {tuple(x.shape)}")
        if len(state0) != len(self.state_names):
            raise ValueError(f"state0 must hold {len(self.state_names)} arrays {self.state_names}")
        if x.dtype not in (np.float32, np.float64):
            raise TypeError(f"x must be float32 or float64, got {x.dtype}")
        for name, p in params.items():
            if p.dtype != x.dtype:
                raise TypeError(f"parameter {name} is {p.dtype} but x is {x.dtype}")

    def _start(self, x):
        xp = self.backend.xp
        T, B, _ = x.shape
        ws = self._pool.lease(xp, B, T, x.dtype, self._forward_shapes)
        return ws, T, B

    def _finish(self, ws, T, x):
        cache = _Cache(ws, T, x)
        self._pool.bind(cache)
        return cache

    @staticmethod
    def _set_carry(buf, value):
        if value is None:
            buf[...] = 0
        else:
            buf[...] = value


# =================================================================================== LSTM
class CudaLSTM(CudaUnit):
    def _forward_shapes(self, B, cap):
        H = self.hidden_size
        return {"zx": (cap, B, 4 * H), "zh": (B, 4 * H), "gates": (cap, B, 4 * H),
                "h": (cap + 1, B, H), "c": (cap + 1, B, H), "tc": (cap, B, H)}

    def _backward_shapes(self, B, cap):
        H = self.hidden_size
        return {"dhs": (cap, B, H), "dz": (cap, B, 4 * H), "dh": (B, H), "dc": (B, H)}

    def forward(self, params, x, state0):
        self._check(params, x, state0)
        be = self.backend
        I, H = self.input_size, self.hidden_size
        W, b = params["W"], params["b"]
        ws, T, B = self._start(x)
        fw, dt, n = ws.fwd, x.dtype, B * H
        zx = fw["zx"][:T]
        be.gemm(x.reshape(T * B, I), W[:I], zx.reshape(T * B, 4 * H))       # [LSTM-F1], input part
        zx += b
        fw["h"][0] = state0[0]
        fw["c"][0] = state0[1]
        W_h = W[I:]

        def loop():
            for t in range(T):
                be.gemm(fw["h"][t], W_h, fw["zh"])                             # [LSTM-F1], recurrent part
                be.launch("lstm_fwd_step", dt, n, H, zx[t], fw["zh"], fw["c"][t], fw["gates"][t],
                          fw["c"][t + 1], fw["tc"][t], fw["h"][t + 1])

        be.run_loop(ws, ("fwd", T), loop, lambda: (fw["h"][1:T + 1], fw["c"][1:T + 1]), params=(W,))
        hs = fw["h"][1:T + 1].copy()
        return hs, (fw["h"][T].copy(), fw["c"][T].copy()), self._finish(ws, T, x)

    def backward(self, params, cache, dhs, dstate_T=None):
        be = self.backend
        ws, T, x = cache.ws, cache.T, cache.x
        I, H, B = self.input_size, self.hidden_size, ws.B
        W = params["W"]
        fw, bw = ws.fwd, ws.backward_buffers(self._backward_shapes(B, ws.cap))
        dt, n = ws.dtype, B * H
        bw["dhs"][:T] = dhs
        dstate_T = (None, None) if dstate_T is None else dstate_T

        def reset():                                                         # [LSTM-B9]
            self._set_carry(bw["dh"], dstate_T[0])
            self._set_carry(bw["dc"], dstate_T[1])

        W_hT = W[I:].T

        def loop():
            for t in range(T - 1, -1, -1):
                be.launch("lstm_bwd_step", dt, n, H, bw["dhs"][t], bw["dh"], bw["dc"], fw["gates"][t], fw["tc"][t],
                          fw["c"][t], bw["dz"][t])
                be.gemm(bw["dz"][t], W_hT, bw["dh"])                           # [LSTM-B8], recurrent part

        reset()
        be.run_loop(ws, ("bwd", T), loop, lambda: (bw["dz"][:T], bw["dh"], bw["dc"]), reset, params=(W,))

        xp = be.xp
        dz = bw["dz"][:T].reshape(T * B, 4 * H)
        dW = xp.empty_like(W)
        be.gemm(x.reshape(T * B, I).T, dz, dW[:I])                           # [LSTM-B7]
        be.gemm(fw["h"][:T].reshape(T * B, H).T, dz, dW[I:])                  # [LSTM-B7]
        dx = xp.empty((T * B, I), dtype=dt)
        be.gemm(dz, W[:I].T, dx)                                             # [LSTM-B8]
        dparams = {"W": dW, "b": dz.sum(axis=0)}                             # [LSTM-B7]
        return dparams, dx.reshape(T, B, I), (bw["dh"].copy(), bw["dc"].copy())


# ==================================================================================== GRU
class CudaGRU(CudaUnit):
    def _forward_shapes(self, B, cap):
        H = self.hidden_size
        return {"zxg": (cap, B, 2 * H), "zxc": (cap, B, H), "zg": (B, 2 * H), "zc": (B, H),
                "ru": (cap, B, 2 * H), "rh": (cap, B, H), "cand": (cap, B, H), "h": (cap + 1, B, H)}

    def _backward_shapes(self, B, cap):
        H = self.hidden_size
        return {"dhs": (cap, B, H), "dag": (cap, B, 2 * H), "dac": (cap, B, H), "dh": (B, H),
                "drh": (B, H), "dhc_part": (B, H), "dhc_mat": (B, H)}

    def forward(self, params, x, state0):
        self._check(params, x, state0)
        be = self.backend
        I, H = self.input_size, self.hidden_size
        W_g, b_g, W_c, b_c = params["W_g"], params["b_g"], params["W_c"], params["b_c"]
        ws, T, B = self._start(x)
        fw, dt, n = ws.fwd, x.dtype, B * H
        x2 = x.reshape(T * B, I)
        zxg, zxc = fw["zxg"][:T], fw["zxc"][:T]
        be.gemm(x2, W_g[:I], zxg.reshape(T * B, 2 * H))                      # [GRU-F1], input part
        zxg += b_g
        be.gemm(x2, W_c[:I], zxc.reshape(T * B, H))                          # [GRU-F3], input part
        zxc += b_c
        fw["h"][0] = state0[0]
        W_gh, W_ch = W_g[I:], W_c[I:]

        def loop():
            for t in range(T):
                be.gemm(fw["h"][t], W_gh, fw["zg"])                           # [GRU-F1], recurrent part
                be.launch("gru_fwd_gates", dt, n, H, zxg[t], fw["zg"], fw["h"][t], fw["ru"][t], fw["rh"][t])
                be.gemm(fw["rh"][t], W_ch, fw["zc"])                          # [GRU-F3], recurrent part
                be.launch("gru_fwd_cand", dt, n, H, zxc[t], fw["zc"], fw["ru"][t], fw["h"][t], fw["cand"][t],
                          fw["h"][t + 1])

        be.run_loop(ws, ("fwd", T), loop, lambda: (fw["h"][1:T + 1],), params=(W_g, W_c))
        return fw["h"][1:T + 1].copy(), (fw["h"][T].copy(),), self._finish(ws, T, x)

    def backward(self, params, cache, dhs, dstate_T=None):
        be = self.backend
        ws, T, x = cache.ws, cache.T, cache.x
        I, H, B = self.input_size, self.hidden_size, ws.B
        W_g, W_c = params["W_g"], params["W_c"]
        fw, bw = ws.fwd, ws.backward_buffers(self._backward_shapes(B, ws.cap))
        dt, n = ws.dtype, B * H
        bw["dhs"][:T] = dhs

        def reset():                                                         # [GRU-B13]
            self._set_carry(bw["dhc_part"], None if dstate_T is None else dstate_T[0])
            bw["dhc_mat"][...] = 0

        W_chT, W_ghT = W_c[I:].T, W_g[I:].T

        def loop():
            for t in range(T - 1, -1, -1):
                be.launch("gru_bwd_cand", dt, n, H, bw["dhs"][t], bw["dhc_part"], bw["dhc_mat"], fw["ru"][t],
                          fw["cand"][t], fw["h"][t], bw["dh"], bw["dac"][t], bw["dag"][t])
                be.gemm(bw["dac"][t], W_chT, bw["drh"])                        # [GRU-B6], r*h columns
                be.launch("gru_bwd_reset", dt, n, H, bw["drh"], bw["dh"], fw["ru"][t], fw["h"][t], bw["dag"][t],
                          bw["dhc_part"])
                be.gemm(bw["dag"][t], W_ghT, bw["dhc_mat"])                 # [GRU-B10], h columns

        reset()
        be.run_loop(ws, ("bwd", T), loop,
                    lambda: (bw["dag"][:T], bw["dac"][:T], bw["dhc_part"], bw["dhc_mat"]), reset,
                    params=(W_g, W_c))

        xp = be.xp
        dag = bw["dag"][:T].reshape(T * B, 2 * H)
        dac = bw["dac"][:T].reshape(T * B, H)
        xT = x.reshape(T * B, I).T
        dW_g, dW_c = xp.empty_like(W_g), xp.empty_like(W_c)
        be.gemm(xT, dag, dW_g[:I])                                           # [GRU-B9]
        be.gemm(fw["h"][:T].reshape(T * B, H).T, dag, dW_g[I:])               # [GRU-B9]
        be.gemm(xT, dac, dW_c[:I])                                           # [GRU-B5]
        be.gemm(fw["rh"][:T].reshape(T * B, H).T, dac, dW_c[I:])              # [GRU-B5]
        dx = xp.empty((T * B, I), dtype=dt)
        dx_c = xp.empty((T * B, I), dtype=dt)
        be.gemm(dag, W_g[:I].T, dx)                                          # [GRU-B10] (x columns), [GRU-B12]
        be.gemm(dac, W_c[:I].T, dx_c)                                        # [GRU-B6] (x columns), [GRU-B12]
        dx += dx_c
        dparams = {"W_g": dW_g, "b_g": dag.sum(axis=0), "W_c": dW_c, "b_c": dac.sum(axis=0)}
        dh0 = bw["dhc_part"] + bw["dhc_mat"]                              # [GRU-B11], [GRU-B13]
        return dparams, dx.reshape(T, B, I), (dh0,)


# ============================================================================ Nested LSTM
class CudaNestedLSTM(CudaUnit):
    """Levels are stacked in the workspace: gates (D, cap, B, 4H), c (D, cap+1, B, H), ..."""

    def _cand_tanh(self, k: int) -> int:
        return int(k >= 1 or self.reference.outer_tanh)                    # [NLSTM-F5]

    def _forward_shapes(self, B, cap):
        H, D = self.hidden_size, self.reference.depth
        return {"zx": (cap, B, 4 * H), "zh": (B, 4 * H), "gates": (D, cap, B, 4 * H),
                "c": (D, cap + 1, B, H), "tc": (D, cap, B, H), "h": (cap + 1, B, H),
                "cat": (D - 1, cap, B, 2 * H)}   # cat[k-1] = [a_k | b_k] for k >= 1

    def _backward_shapes(self, B, cap):
        H, D = self.hidden_size, self.reference.depth
        return {"dhs": (cap, B, H), "dz": (D, cap, B, 4 * H), "dh": (B, H), "dc": (D, B, H),
                "dcat": (B, 2 * H)}

    def _strides(self, ws):
        B, H, cap = ws.B, self.hidden_size, ws.cap
        # distances between two levels, in elements, of gates/dz, c and tc
        return cap * B * 4 * H, (cap + 1) * B * H, cap * B * H

    def forward(self, params, x, state0):
        self._check(params, x, state0)
        be = self.backend
        I, H, D = self.input_size, self.hidden_size, self.reference.depth
        ws, T, B = self._start(x)
        fw, dt, n = ws.fwd, x.dtype, B * H
        W0 = params["W0"]
        zx = fw["zx"][:T]
        be.gemm(x.reshape(T * B, I), W0[:I], zx.reshape(T * B, 4 * H))      # [NLSTM-F1], level 0 input part
        zx += params["b0"]
        fw["h"][0] = state0[0]
        for k in range(D):
            fw["c"][k, 0] = state0[1 + k]
        Ws = [W0[I:]] + [params[f"W{k}"] for k in range(1, D)]
        bs = [None] + [params[f"b{k}"] for k in range(1, D)]
        lg, ls, lt = self._strides(ws)
        gates, c, cat = fw["gates"], fw["c"], fw["cat"]

        def loop():
            for t in range(T):
                for k in range(D):                                           # outside-in: gates  [NLSTM-F0]
                    src = fw["h"][t] if k == 0 else cat[k - 1, t]
                    be.gemm(src, Ws[k], fw["zh"])                             # [NLSTM-F1]
                    add, add_rows = (zx[t], 1) if k == 0 else (bs[k], 0)
                    has_next = int(k < D - 1)
                    nxt = cat[k, t] if has_next else gates[k, t]             # (unused when innermost)
                    be.launch("nlstm_fwd_gates", dt, n, H, self._cand_tanh(k), has_next, add, add_rows,
                              fw["zh"], c[k, t], gates[k, t], nxt)
                be.launch("nlstm_fwd_out", dt, n, H, D, lg, ls, lt, gates[0, t], c[0, t], c[0, t + 1],
                          fw["tc"][0, t], fw["h"][t + 1])                      # inside-out: memories, outputs

        params_used = tuple(params[f"W{k}"] for k in range(D)) + tuple(b for b in bs if b is not None)
        be.run_loop(ws, ("fwd", T), loop, lambda: (fw["h"][1:T + 1], c[:, 1:T + 1]), params=params_used)
        state_T = (fw["h"][T].copy(),) + tuple(c[k, T].copy() for k in range(D))
        return fw["h"][1:T + 1].copy(), state_T, self._finish(ws, T, x)

    def backward(self, params, cache, dhs, dstate_T=None):
        be = self.backend
        ws, T, x = cache.ws, cache.T, cache.x
        I, H, D, B = self.input_size, self.hidden_size, self.reference.depth, ws.B
        fw, bw = ws.fwd, ws.backward_buffers(self._backward_shapes(B, ws.cap))
        dt, n = ws.dtype, B * H
        bw["dhs"][:T] = dhs
        dstate_T = (None,) * (D + 1) if dstate_T is None else dstate_T

        def reset():                                                         # [NLSTM-B18]
            self._set_carry(bw["dh"], dstate_T[0])
            for k in range(D):
                self._set_carry(bw["dc"][k], dstate_T[1 + k])

        W0 = params["W0"]
        WsT = [W0[I:].T] + [params[f"W{k}"].T for k in range(1, D)]
        lg, ls, lt = self._strides(ws)
        gates, c, dz = fw["gates"], fw["c"], bw["dz"]

        def loop():
            for t in range(T - 1, -1, -1):
                be.launch("nlstm_bwd_out", dt, n, H, D, self._cand_tanh(D - 1), lg, ls, lt, n, bw["dhs"][t],
                          bw["dh"], bw["dc"], gates[0, t], fw["tc"][0, t], c[0, t], dz[0, t])
                for k in range(D - 1, 0, -1):                                # inside-out through the gates
                    be.gemm(dz[k, t], WsT[k], bw["dcat"])                     # [NLSTM-B12]
                    be.launch("nlstm_bwd_level", dt, n, H, self._cand_tanh(k - 1), bw["dcat"], gates[k - 1, t],
                              c[k - 1, t], dz[k - 1, t], bw["dc"][k - 1])
                be.gemm(dz[0, t], WsT[0], bw["dh"])                           # [NLSTM-B14]

        reset()
        params_used = tuple(params[f"W{k}"] for k in range(D))
        be.run_loop(ws, ("bwd", T), loop, lambda: (dz[:, :T], bw["dh"], bw["dc"]), reset, params=params_used)

        xp = be.xp
        dparams = {}
        for k in range(D):
            dzk = dz[k, :T].reshape(T * B, 4 * H)
            dW = xp.empty_like(params[f"W{k}"])
            if k == 0:
                be.gemm(x.reshape(T * B, I).T, dzk, dW[:I])                  # [NLSTM-B15]
                be.gemm(fw["h"][:T].reshape(T * B, H).T, dzk, dW[I:])         # [NLSTM-B15]
            else:
                be.gemm(fw["cat"][k - 1, :T].reshape(T * B, 2 * H).T, dzk, dW)  # [NLSTM-B15]
            dparams[f"W{k}"] = dW
            dparams[f"b{k}"] = dzk.sum(axis=0)                               # [NLSTM-B16]
        dx = xp.empty((T * B, I), dtype=dt)
        be.gemm(dz[0, :T].reshape(T * B, 4 * H), W0[:I].T, dx)               # [NLSTM-B17]
        dstate0 = (bw["dh"].copy(),) + tuple(bw["dc"][k].copy() for k in range(D))
        return dparams, dx.reshape(T, B, I), dstate0


def cuda_unit(unit: Unit, backend=None) -> CudaUnit:
    """The GPU implementation of a reference unit (same parameters, same interface).

    Parameters and inputs passed to its forward/backward must be CuPy arrays of
    one dtype (float32 or float64).  ``backend`` is for tests; by default the
    current CUDA device's backend is used (cupy is imported on first use).
    """
    if isinstance(unit, CudaUnit):
        return unit
    from minirnn.units import unit_spec

    cls = unit_spec(unit.name).fast_class("gpu")   # the registry's entry (minirnn/units/registry.py)
    if cls is None:
        raise ValueError(f"no CUDA implementation of unit {unit.name!r}")
    return cls(unit, backend)
