"""Numba kernels fusing the elementwise work of one time step (forward and backward).

Each kernel takes whole (B, n) blocks of one step, C-contiguous, and loops over
batch rows and hidden units once, reading every operand once and writing every
result once; the matrix products around them stay in BLAS (see gru.py, lstm.py,
nlstm.py in this folder).  The comment on each line names the derivation line of
docs/gru.md, docs/lstm.md or docs/nlstm.md it implements, with the same
association order as the reference unit (minirnn/units/), so float64 results agree
with it to rounding.  dtype follows the arrays (float32 or float64; one compiled
specialisation each, cached on disk).

The scalar helpers (typed constants, tanh, sigmoid) live in this same file on
purpose: Numba's on-disk cache is keyed on the modification time of the file that
holds a kernel, so helpers kept in another module could leave stale compiled
kernels behind after an edit.

Why a hand-written tanh?  Numba lowers ``np.tanh`` on a scalar to the C library's
``tanh`` (about 20 ns per call here, never vectorised), which would make a fused
kernel *slower* than NumPy's SIMD ufunc.  ``tanh_`` below is built only from
arithmetic, ``floor``, an integer shift and a bit reinterpretation, so LLVM
vectorises the loops that call it (AVX2: 8 float32 or 4 float64 lanes).

    tanh(x) = e / (e + 2),   e = expm1(2x) in (-1, inf)          (exact identity; e + 2 > 1)
    expm1(y) = 2^n * expm1(r) + (2^n - 1),   y = n ln2 + r,  |r| <= ln2 / 2
    expm1(r) by its Taylor series (degree 13 for float64, 8 for float32; the
    truncation error is below the format's rounding unit on |r| <= ln2 / 2)

The result is within a few units in the last place of the correctly rounded
tanh (measured in tests/test_fast_cpu.py), so float64 results agree with the
reference to ~1e-15 relative.  ``sigmoid_`` uses the reference's formula
sigma(z) = 0.5 * (1 + tanh(z / 2)) (minirnn/units/base.py).

Every constant goes through ``const_(x, value)`` so that float32 kernels stay in
float32 (a bare ``1.0`` would promote float32 arithmetic to float64 in Numba).
"""
from __future__ import annotations

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic, overload

JIT = dict(cache=True, fastmath=False, error_model="numpy", nogil=True)

_LN2 = 0.6931471805599453
_LN2_HI = 0.693145751953125          # 16 significant bits: n * _LN2_HI is exact (n < 2^8, even in float32)
_LN2_LO = _LN2 - _LN2_HI


@intrinsic
def _bits_to_f64(typingctx, i):
    """Reinterpret the 64 bits of an int64 as a float64 (no conversion)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.DoubleType())

    return sig, codegen


@intrinsic
def _bits_to_f32(typingctx, i):
    """Reinterpret the 32 bits of an int32 as a float32 (no conversion)."""
    sig = types.float32(types.int32)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())

    return sig, codegen


def const_(like, value):
    """``value`` as a scalar of ``like``'s float type (``like``: a float scalar)."""
    raise NotImplementedError  # pragma: no cover  (only called from jitted code)


@overload(const_, inline="always")
def _const_ov(like, value):
    if isinstance(like, types.Float) and like.bitwidth == 32:
        return lambda like, value: np.float32(value)
    return lambda like, value: np.float64(value)


def tanh_(x):
    """tanh of a float32 or float64 scalar, vectorisable (see module docstring)."""
    raise NotImplementedError  # pragma: no cover


@njit(inline="always")
def _scaled_expm1_64(y):
    """(2^n, expm1(r)) with y = n ln2 + r, |r| <= ln2/2: exp(y) = 2^n (1 + expm1(r))."""
    nf = np.floor(y * 1.4426950408889634 + 0.5)   # n = round(y / ln2)
    r = (y - nf * _LN2_HI) - nf * _LN2_LO         # Cody-Waite reduction, exact products
    p = 1.0 / 6227020800.0                        # expm1(r) = sum_{k=1..13} r^k / k!
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r * r + r
    return _bits_to_f64((np.int64(nf) + 1023) << 52), p


@njit(inline="always")
def _scaled_expm1_32(y):
    """float32 twin of ``_scaled_expm1_64`` (Taylor degree 8)."""
    nf = np.floor(y * np.float32(1.4426950408889634) + np.float32(0.5))
    r = (y - nf * np.float32(_LN2_HI)) - nf * np.float32(_LN2_LO)
    p = np.float32(1.0 / 40320.0)
    p = p * r + np.float32(1.0 / 5040.0)
    p = p * r + np.float32(1.0 / 720.0)
    p = p * r + np.float32(1.0 / 120.0)
    p = p * r + np.float32(1.0 / 24.0)
    p = p * r + np.float32(1.0 / 6.0)
    p = p * r + np.float32(0.5)
    p = p * r * r + r
    return _bits_to_f32((np.int32(nf) + np.int32(127)) << np.int32(23)), p


def _tanh64(x):
    y = x + x                                     # 2x
    y = max(min(y, 44.0), -44.0)                  # tanh(22) == 1.0 in float64; NaN passes through
    s, p = _scaled_expm1_64(y)
    e = s * p + (s - 1.0)                         # expm1(2x), in (-1, inf)
    return e / (e + 2.0)                          # tanh(x); e + 2 > 1, no cancellation


def _tanh32(x):
    y = x + x
    y = max(min(y, np.float32(20.0)), np.float32(-20.0))   # tanh(10) == 1.0f
    s, p = _scaled_expm1_32(y)
    e = s * p + (s - np.float32(1.0))
    return e / (e + np.float32(2.0))


@overload(tanh_, inline="always")
def _tanh_ov(x):
    if isinstance(x, types.Float) and x.bitwidth == 32:
        return _tanh32
    if isinstance(x, types.Float):
        return _tanh64
    return None


def sigmoid_(z):
    """sigma(z) = 0.5 * (1 + tanh(z / 2)), the reference formula (base.sigmoid)."""
    raise NotImplementedError  # pragma: no cover


@overload(sigmoid_, inline="always")
def _sigmoid_ov(z):
    if isinstance(z, types.Float):
        def impl(z):
            h = const_(z, 0.5)
            return h * (const_(z, 1.0) + tanh_(h * z))
        return impl
    return None


# ============================================================================ GRU
# Every kernel below takes the argument list of the CUDA kernel of the same name
# (kernels/cuda/*.cu) after its element count n = B*H, so that the one time loop of
# kernels/units.py launches both.  Column layout of the GRU's per-step blocks
# (width 3H): [r | u | c]; ru (B, 2H) = [r | u].
#
# Why each inner loop writes one array and counts from 0: Numba cannot tell LLVM
# that two arguments never overlap, so LLVM vectorises a loop only behind runtime
# overlap checks, and gives up (runs it one element at a time, 3-4x slower) when a
# loop writes several arrays or starts at a column offset (range(H, 2H)).  A value
# that several outputs need is recomputed, or kept in a row-sized local array,
# with the same operations in the same order, so results are unchanged to the bit.


@njit(**JIT)
def gru_fwd_gates(H, zx_t, zrg, h_prev, ru_t, rh_t):
    """Gates r, u and the reset state r*h of one step.

    zx_t (B, 3H) = x_t W_x + [b_g, b_c] (input part, all steps precomputed)
    zrg (B, 2H) = h_{t-1} W_g[I:];  h_prev (B, H)
    ru_t (B, 2H) <- [r | u];  rh_t (B, H) <- r * h
    """
    B = h_prev.shape[0]
    for b in range(B):
        for j in range(2 * H):
            ru_t[b, j] = sigmoid_(zx_t[b, j] + zrg[b, j])          # [GRU-F1], [GRU-F2]
        for j in range(H):
            rh_t[b, j] = ru_t[b, j] * h_prev[b, j]                 # r * h, the input of [GRU-F3]


@njit(**JIT)
def gru_fwd_cand(H, zx_t, zrc, ru_t, h_prev, cand_t, h_next):
    """Candidate and new state of one step: zrc (B, H) = (r*h) W_c[I:]; cand_t <- c; h_next <- h_t."""
    B = h_prev.shape[0]
    one = const_(zx_t[0, 0], 1.0)
    for b in range(B):
        for j in range(H):
            cand_t[b, j] = tanh_(zx_t[b, 2 * H + j] + zrc[b, j])  # [GRU-F3], [GRU-F4]
        for j in range(H):
            u = ru_t[b, H + j]
            h_next[b, j] = u * h_prev[b, j] + (one - u) * cand_t[b, j]   # [GRU-F5]


@njit(**JIT)
def gru_bwd_cand(H, dhs_t, dhc_part, dhc_mat, ru_t, cand_t, h_prev, dh, da_t):
    """First half of one backward step: dh, da_c and the u-part of da_g.

    dhc_part, dhc_mat (B, H): the carried gradient from step t+1 in two parts,
    dh*u + drh*r and da_g W_g[I:]^T; their sum is dh_carry ([GRU-B11])
    dh (B, H) <- dL/dh_t (total);  da_t (B, 3H) <- columns H:2H (da_u) and 2H:3H (da_c)
    """
    B = h_prev.shape[0]
    one = const_(h_prev[0, 0], 1.0)
    for b in range(B):
        for j in range(H):
            dh[b, j] = dhs_t[b, j] + (dhc_part[b, j] + dhc_mat[b, j])   # [GRU-B1] (carry: [GRU-B11])
        for j in range(H):
            u = ru_t[b, H + j]
            cc = cand_t[b, j]
            dc = dh[b, j] * (one - u)                                    # [GRU-B2]
            da_t[b, 2 * H + j] = dc * (one - cc * cc)                    # [GRU-B4]
        for j in range(H):
            u = ru_t[b, H + j]
            du = dh[b, j] * (h_prev[b, j] - cand_t[b, j])                # [GRU-B3]
            da_t[b, H + j] = du * u * (one - u)                          # [GRU-B8] (u half)


@njit(**JIT)
def gru_bwd_reset(H, drh, dh, ru_t, h_prev, da_t, dhc_part):
    """Second half: the r-part of da_g and the elementwise part of the carry.

    drh (B, H) = da_c W_c[I:]^T ([GRU-B6]);  da_t (B, 3H) <- columns :H (da_r)
    dhc_part (B, H) <- dh*u + drh*r
    """
    B = h_prev.shape[0]
    one = const_(h_prev[0, 0], 1.0)
    for b in range(B):
        for j in range(H):
            r = ru_t[b, j]
            dr = drh[b, j] * h_prev[b, j]                                # [GRU-B7]
            da_t[b, j] = dr * r * (one - r)                              # [GRU-B8] (r half)
        for j in range(H):
            dhc_part[b, j] = dh[b, j] * ru_t[b, H + j] + drh[b, j] * ru_t[b, j]   # [GRU-B11] (elementwise part)


# =========================================================================== LSTM
# Column layout of the LSTM's per-step blocks (width 4H): [i | j | f | o].


@njit(**JIT)
def lstm_fwd_step(H, zx_t, zr, c_prev, gates_t, c_next, tc_t, h_next):
    """One LSTM step after the recurrent product.

    zx_t (B, 4H) = x_t W[:I] + b;  zr (B, 4H) = h_{t-1} W[I:];  c_prev (B, H)
    gates_t (B, 4H) <- [sig(i) | tanh(j) | sig(f+1) | sig(o)];  c_next, tc_t, h_next (B, H)
    """
    B = c_prev.shape[0]
    one = const_(zx_t[0, 0], 1.0)
    for b in range(B):
        for j in range(H):
            gates_t[b, j] = sigmoid_(zx_t[b, j] + zr[b, j])                             # [LSTM-F1], [LSTM-F2]
        for j in range(H):
            gates_t[b, H + j] = tanh_(zx_t[b, H + j] + zr[b, H + j])                    # [LSTM-F2]
        for j in range(H):
            gates_t[b, 2 * H + j] = sigmoid_((zx_t[b, 2 * H + j] + zr[b, 2 * H + j]) + one)   # [LSTM-F2]
        for j in range(H):
            gates_t[b, 3 * H + j] = sigmoid_(zx_t[b, 3 * H + j] + zr[b, 3 * H + j])     # [LSTM-F2]
        for j in range(H):
            c_next[b, j] = gates_t[b, 2 * H + j] * c_prev[b, j] + gates_t[b, j] * gates_t[b, H + j]   # [LSTM-F3]
        for j in range(H):
            tc_t[b, j] = tanh_(c_next[b, j])                                            # [LSTM-F4]
        for j in range(H):
            h_next[b, j] = tc_t[b, j] * gates_t[b, 3 * H + j]                           # [LSTM-F4]


@njit(**JIT)
def lstm_bwd_step(H, dhs_t, dh_carry, dc_carry, gates_t, tc_t, c_prev, dz_t):
    """One LSTM backward step up to the recurrent product.

    dh_carry (B, H) = dz_{t+1} W[I:]^T;  dc_carry (B, H) in/out;  dz_t (B, 4H) <- pre-activation gradient
    """
    B = c_prev.shape[0]
    one = const_(tc_t[0, 0], 1.0)
    dc = np.empty(H, dtype=tc_t.dtype)            # this row's dL/dc_t
    for b in range(B):
        for j in range(H):
            og = gates_t[b, 3 * H + j]
            t = tc_t[b, j]
            dh = dhs_t[b, j] + dh_carry[b, j]                                # [LSTM-B1]
            dc[j] = dc_carry[b, j] + dh * og * (one - t * t)                 # [LSTM-B3]
        for j in range(H):
            og = gates_t[b, 3 * H + j]
            do = (dhs_t[b, j] + dh_carry[b, j]) * tc_t[b, j]                 # [LSTM-B1], [LSTM-B2]
            dz_t[b, 3 * H + j] = do * og * (one - og)                        # [LSTM-B6]
        for j in range(H):
            ig = gates_t[b, j]
            di = dc[j] * gates_t[b, H + j]                                   # [LSTM-B4]
            dz_t[b, j] = di * ig * (one - ig)                                # [LSTM-B6]
        for j in range(H):
            g = gates_t[b, H + j]
            dg = dc[j] * gates_t[b, j]                                       # [LSTM-B4]
            dz_t[b, H + j] = dg * (one - g * g)                              # [LSTM-B6]
        for j in range(H):
            fg = gates_t[b, 2 * H + j]
            df = dc[j] * c_prev[b, j]                                        # [LSTM-B4]
            dz_t[b, 2 * H + j] = df * fg * (one - fg)                        # [LSTM-B6]
        for j in range(H):
            dc_carry[b, j] = dc[j] * gates_t[b, 2 * H + j]                   # [LSTM-B5]


# ==================================================================== Nested LSTM
# Per level the gate block (B, 4H) holds [sig(i) | g | sig(f+1) | sig(o)], g = tanh(j)
# or j (level 0 without outer_tanh).  The level input block cat (B, 2H) is [a | b].
# Arguments covering every level of one step are (D, B, .) blocks (kernels/units.py
# FastNestedLSTM); the CUDA kernels reach level k through the level distances lvl_*
# (in elements), which these kernels, indexing [k], do not need.


@njit(**JIT)
def nlstm_fwd_gates(H, cand_tanh, has_next, add, add_rows, zr, c_old, gates_t, cat_next_t):
    """Gates of one level; hands [a_{k+1} | b_{k+1}] down when ``has_next``.

    zr (B, 4H) = the level's matrix product;  add = the rest of [NLSTM-F1]: level 0
    the input part x_t W0[:I] + b0 (B, 4H), add_rows = 1; level k >= 1 its bias b_k (4H,), add_rows = 0
    c_old (B, H) = c_k of the previous step;  gates_t (B, 4H) <- this level's gates
    cat_next_t (B, 2H) <- [a_{k+1} | b_{k+1}] (unused by the innermost level)
    """
    B = c_old.shape[0]
    one = const_(zr[0, 0], 1.0)
    rows = add.reshape((-1, 4 * H))
    for b in range(B):
        a = rows[b if add_rows else 0]
        for j in range(H):
            gates_t[b, j] = sigmoid_(zr[b, j] + a[j])                                  # [NLSTM-F1], [NLSTM-F2]
        if cand_tanh:
            for j in range(H):
                gates_t[b, H + j] = tanh_(zr[b, H + j] + a[H + j])                     # [NLSTM-F1], [NLSTM-F5]
        else:
            for j in range(H):
                gates_t[b, H + j] = zr[b, H + j] + a[H + j]                            # [NLSTM-F1], [NLSTM-F5]
        for j in range(H):
            gates_t[b, 2 * H + j] = sigmoid_((zr[b, 2 * H + j] + a[2 * H + j]) + one)  # [NLSTM-F1], [NLSTM-F3]
        for j in range(H):
            gates_t[b, 3 * H + j] = sigmoid_(zr[b, 3 * H + j] + a[3 * H + j])          # [NLSTM-F1], [NLSTM-F4]
        if has_next:
            for j in range(H):
                cat_next_t[b, j] = gates_t[b, j] * gates_t[b, H + j]                   # a_{k+1}  [NLSTM-F7]
            for j in range(H):
                cat_next_t[b, H + j] = gates_t[b, 2 * H + j] * c_old[b, j]             # b_{k+1}  [NLSTM-F6]


@njit(**JIT)
def nlstm_fwd_out(H, depth, lvl_gates, lvl_state, lvl_tc, gates_t, c_old, c_new, tc_t, h_next):
    """Inside-out pass of one step: the innermost memory, then every level's output.

    gates_t (D, B, 4H);  c_old, c_new, tc_t (D, B, H): c_k before / after the step, tanh(c_k')
    h_next (B, H) <- h' (the output of level 0)
    """
    B = h_next.shape[0]
    inner = depth - 1
    g = gates_t[inner]
    c = c_new[inner]
    for b in range(B):
        for j in range(H):
            bb = g[b, 2 * H + j] * c_old[inner, b, j]                                  # [NLSTM-F6]
            aa = g[b, j] * g[b, H + j]                                                 # [NLSTM-F7]
            c[b, j] = bb + aa                                                          # [NLSTM-F8]
    for k in range(inner, -1, -1):
        g = gates_t[k]
        tc = tc_t[k]
        out = c_new[k - 1] if k > 0 else h_next                                        # [NLSTM-F10] / [NLSTM-F11]
        for b in range(B):
            for j in range(H):
                tc[b, j] = tanh_(c_new[k, b, j])
            for j in range(H):
                out[b, j] = tc[b, j] * g[b, 3 * H + j]                                 # [NLSTM-F9]


@njit(inline="always")
def _nlstm_level_backward(H, cand_tanh, dab, off, gates, c_old, dz, dc_carry):
    """Backward through one level's gates, given the gradients of what it handed down,
    da = dab[:, :H] and db = dab[:, off:off+H]; writes its dz columns i, j, f and its
    carried memory gradient.  (Offsets, not column slices: a slice would be a strided
    array, which LLVM does not vectorise.)"""
    B = c_old.shape[0]
    one = const_(c_old[0, 0], 1.0)
    for b in range(B):
        for j in range(H):
            si = gates[b, j]
            dz[b, j] = dab[b, j] * gates[b, H + j] * si * (one - si)                  # [NLSTM-B6], [NLSTM-B11]
        for j in range(H):
            g = gates[b, H + j]
            dg = dab[b, j] * gates[b, j]                                               # [NLSTM-B7]
            dz[b, H + j] = dg * (one - g * g) if cand_tanh else dg                     # [NLSTM-B8], [NLSTM-B11]
        for j in range(H):
            sf = gates[b, 2 * H + j]
            dz[b, 2 * H + j] = dab[b, off + j] * c_old[b, j] * sf * (one - sf)         # [NLSTM-B9], [NLSTM-B11]
        for j in range(H):
            dc_carry[b, j] = dab[b, off + j] * gates[b, 2 * H + j]                     # [NLSTM-B10]


@njit(**JIT)
def nlstm_bwd_out(H, depth, cand_tanh_inner, lvl_gates, lvl_state, lvl_tc, lvl_carry, lvl_dz, dhs_t, dh_carry,
                  dc_carry, gates_t, tc_t, c_old, dz_t):
    """Outside-in through every level's output, then the innermost level's gates.

    dh_carry (B, H) = dz0_{t+1} W0[I:]^T;  dc_carry (D, B, H) in/out;  gates_t, dz_t (D, B, 4H);
    tc_t, c_old (D, B, H).  Writes the o columns of every level's dz and the innermost level's rest.
    """
    B = dhs_t.shape[0]
    one = const_(dhs_t[0, 0], 1.0)
    dinner = np.empty((B, H), dtype=dhs_t.dtype)
    for b in range(B):
        for j in range(H):
            dinner[b, j] = dhs_t[b, j] + dh_carry[b, j]                                # [NLSTM-B1]
    for k in range(depth):
        g, tc, dz = gates_t[k], tc_t[k], dz_t[k]
        for b in range(B):
            for j in range(H):
                so = g[b, 3 * H + j]
                dz[b, 3 * H + j] = dinner[b, j] * tc[b, j] * so * (one - so)           # [NLSTM-B2]
            for j in range(H):
                t = tc[b, j]
                dinner[b, j] = dc_carry[k, b, j] + dinner[b, j] * g[b, 3 * H + j] * (one - t * t)   # [NLSTM-B3], [NLSTM-B4]
    inner = depth - 1                                                                  # da_D = db_D = dc_{D-1}'  [NLSTM-B5]
    _nlstm_level_backward(H, cand_tanh_inner, dinner, 0, gates_t[inner], c_old[inner], dz_t[inner],
                          dc_carry[inner])


@njit(**JIT)
def nlstm_bwd_level(H, cand_tanh, dcat, gates_t, c_old, dz_t, dc_carry_k):
    """Level k < D-1: dcat (B, 2H) = dz_{k+1} W_{k+1}^T = [da_{k+1} | db_{k+1}]  [NLSTM-B13]."""
    _nlstm_level_backward(H, cand_tanh, dcat, H, gates_t, c_old, dz_t, dc_carry_k)


# ================================================= softmax cross-entropy (dense layer)
# One kernel per chunk of logit rows: the row maximum, the shifted exponentials,
# their sum, the row's loss and its gradient, in place, reading the row from
# cache instead of NumPy's five separate passes over (rows x V) memory.


def exp_(y):
    """exp of a float32 or float64 scalar y <= 0, vectorisable (same reduction as ``tanh_``)."""
    raise NotImplementedError  # pragma: no cover


def _exp64(y):
    y = max(y, -708.0)                            # exp(-708) ~ 3e-308: keeps 2^n a normal number
    s, p = _scaled_expm1_64(y)
    return s * p + s                              # 2^n (1 + expm1(r)) = exp(y)


def _exp32(y):
    y = max(y, np.float32(-87.0))                 # exp(-87) ~ 1.6e-38: keeps 2^n a normal number
    s, p = _scaled_expm1_32(y)
    return s * p + s


@overload(exp_, inline="always")
def _exp_ov(y):
    if isinstance(y, types.Float) and y.bitwidth == 32:
        return _exp32
    if isinstance(y, types.Float):
        return _exp64
    return None


def row_max(row):
    """The largest value of a float32 or float64 row, vectorisable (see ``_ordered_max``)."""
    raise NotImplementedError  # pragma: no cover


@njit(inline="always")
def _ordered_max(bits, lowest, sign, magnitude):
    # A float's bits, read as a signed integer and with the magnitude bits flipped when
    # the sign is set, order like the float itself (-0.0 just below +0.0, a NaN beyond
    # +-inf).  LLVM vectorises this integer maximum; the float comparison it would
    # replace (a select that Numba's fast-math flags do not reach) runs one element at
    # a time.  Any NaN in a row makes its loss NaN either way, through the exponentials.
    # ``sign`` is the sign bit's position; the maximum's bits are mapped back the same way.
    m = lowest
    for v in range(bits.shape[0]):
        k = bits[v] ^ ((bits[v] >> sign) & magnitude)
        m = k if k > m else m
    return m ^ ((m >> sign) & magnitude)


def _row_max32(row):
    return _bits_to_f32(_ordered_max(row.view(np.int32), np.int32(-2147483648), np.int32(31),
                                     np.int32(0x7FFFFFFF)))


def _row_max64(row):
    return _bits_to_f64(_ordered_max(row.view(np.int64), np.int64(-9223372036854775808), np.int64(63),
                                     np.int64(0x7FFFFFFFFFFFFFFF)))


@overload(row_max, inline="always")
def _row_max_ov(row):
    if isinstance(row, types.Array) and isinstance(row.dtype, types.Float):
        return _row_max32 if row.dtype.bitwidth == 32 else _row_max64
    return None


# The row sums are float64 and may be reassociated (summed in SIMD lanes): that is
# the only licence taken, and it changes a sum by a few float64 roundings.  The
# loop over rows is serial on purpose: Numba worker threads running right after
# a multithreaded BLAS product fight OpenBLAS's spinning threads for the same two
# cores and made this kernel slower, not faster (docs/kernels.md).
@njit(cache=True, fastmath={"reassoc"}, error_model="numpy", nogil=True)
def softmax_xent_rows(logits, bias, targets, weight, row_loss):
    """In place: logits (N, V) -> weight * (softmax(z) - onehot(target)) with z = logits + bias;
    row_loss[n] <- weight * loss_n.

    z_n    = logits_n + bias                                            [DENSE-F1] (the bias)
    loss_n = max_n + log(sum_v exp(z_nv - max_n)) - z_n,target          [CE-F1]
    dZ_n   = weight * (softmax(z_n) - onehot(target_n))                 [CE-B1], [CE-B2]
    """
    N, V = logits.shape
    for n in range(N):
        row = logits[n]
        for v in range(V):
            row[v] += bias[v]
        t = targets[n]
        picked = row[t]
        m = row_max(row)
        for v in range(V):
            row[v] = exp_(row[v] - m)                                    # shifted for stability
        s = 0.0
        for v in range(V):
            s += np.float64(row[v])
        row_loss[n] = weight * (np.float64(m) + np.log(s) - np.float64(picked))   # [CE-F1]
        scale = const_(row[0], weight / s)
        for v in range(V):
            row[v] *= scale                                              # [CE-B2] weight * softmax
        row[t] -= const_(row[0], weight)                                 # [CE-B1] minus the one-hot
