// Per-element bodies of every minirnn CUDA kernel.
//
// Each `*_elem` function does the work of one thread for one element `idx` of a
// (B, H) batch of hidden units (b = idx / H, j = idx % H), or one element of a
// flat array for Adam.  They are plain `__host__ __device__` functions so that
// the very same code runs
//   * on the GPU, called from the thin `__global__` wrappers in *.cu, and
//   * on the CPU, called from a host harness that tests/test_cuda_sources.py
//     builds with a C++ compiler and checks against the NumPy reference units.
//
// Layout: every array is row-major and contiguous.  A gate block of width G*H
// holds the gates side by side, e.g. LSTM [i | j | f | o], so gate q of
// element (b, j) lives at  b*G*H + q*H + j.
//
// Equation tags in comments ([LSTM-F2], [GRU-B8], ...) refer to docs/*.md.
// The logistic sigmoid is computed as 0.5 * (1 + tanh(z / 2)), exactly as the
// reference units do, so no exp can overflow.
#ifndef MINIRNN_GATES_CUH
#define MINIRNN_GATES_CUH

#if defined(__CUDACC__)
#define MR_HD __host__ __device__ __forceinline__
#else
#define MR_HD inline
#include <math.h>
#endif

// One thread per element, grid-stride loop: every elementwise kernel is
// `MR_FOR_EACH(idx, n) name_elem<T>(idx, <its other parameters>);`
// (A host build defines it as a plain loop first.)
#ifndef MR_FOR_EACH
#define MR_FOR_EACH(idx, n) \
    for (int idx = blockIdx.x * blockDim.x + threadIdx.x; idx < (n); idx += blockDim.x * gridDim.x)
#endif

// ---------------------------------------------------------------- scalar math
MR_HD float mr_tanh(float x) { return tanhf(x); }
MR_HD double mr_tanh(double x) { return tanh(x); }
MR_HD float mr_sqrt(float x) { return sqrtf(x); }
MR_HD double mr_sqrt(double x) { return sqrt(x); }
MR_HD float mr_exp(float x) { return expf(x); }
MR_HD double mr_exp(double x) { return exp(x); }
MR_HD float mr_log(float x) { return logf(x); }
MR_HD double mr_log(double x) { return log(x); }

template <typename T>
MR_HD T mr_sigmoid(T z)
{
    return T(0.5) * (T(1) + mr_tanh(T(0.5) * z));
}

// ======================================================================= LSTM
// Buffers (one time step t):
//   zx_t   (B, 4H)  x_t W[:I] + b  (the input projection, all steps in one GEMM)
//   zr     (B, 4H)  h_{t-1} W[I:]  (this step's recurrent GEMM)
//   gates  (B, 4H)  activated [i | g | f | o]
//   c_prev, c_next, tc_t, h_next   (B, H)

template <typename T>
MR_HD void lstm_fwd_step_elem(int idx, int H, const T* zx_t, const T* zr, const T* c_prev,
                              T* gates_t, T* c_next, T* tc_t, T* h_next)
{
    const int b = idx / H, j = idx % H;
    const int r = b * 4 * H + j;
    const T zi = zx_t[r] + zr[r];                                 // [LSTM-F1]
    const T zj = zx_t[r + H] + zr[r + H];
    const T zf = zx_t[r + 2 * H] + zr[r + 2 * H];
    const T zo = zx_t[r + 3 * H] + zr[r + 3 * H];
    const T i = mr_sigmoid(zi);                                   // [LSTM-F2]
    const T g = mr_tanh(zj);
    const T f = mr_sigmoid(zf + T(1));                            // forget bias +1 inside
    const T o = mr_sigmoid(zo);
    const T c = f * c_prev[idx] + i * g;                          // [LSTM-F3]
    const T tc = mr_tanh(c);
    gates_t[r] = i;
    gates_t[r + H] = g;
    gates_t[r + 2 * H] = f;
    gates_t[r + 3 * H] = o;
    c_next[idx] = c;
    tc_t[idx] = tc;
    h_next[idx] = tc * o;                                         // [LSTM-F4]
}

// dh_carry: dz_{t+1} W[I:]^T from the previous backward step (the recurrent GEMM).
// dc_carry is read (gradient into c_t) and overwritten (gradient into c_{t-1}).
template <typename T>
MR_HD void lstm_bwd_step_elem(int idx, int H, const T* dhs_t, const T* dh_carry, T* dc_carry,
                              const T* gates_t, const T* tc_t, const T* c_prev, T* dz_t)
{
    const int b = idx / H, j = idx % H;
    const int r = b * 4 * H + j;
    const T i = gates_t[r], g = gates_t[r + H], f = gates_t[r + 2 * H], o = gates_t[r + 3 * H];
    const T tc = tc_t[idx];
    const T dh = dhs_t[idx] + dh_carry[idx];                      // [LSTM-B1]
    const T d_o = dh * tc;                                        // [LSTM-B2]
    const T dc = dc_carry[idx] + dh * o * (T(1) - tc * tc);       // [LSTM-B3]
    const T d_f = dc * c_prev[idx];                               // [LSTM-B4]
    const T d_i = dc * g;
    const T d_g = dc * i;
    dc_carry[idx] = dc * f;                                       // [LSTM-B5]
    dz_t[r] = d_i * i * (T(1) - i);                               // [LSTM-B6]
    dz_t[r + H] = d_g * (T(1) - g * g);
    dz_t[r + 2 * H] = d_f * f * (T(1) - f);
    dz_t[r + 3 * H] = d_o * o * (T(1) - o);
}

// ======================================================================== GRU
// Buffers (one time step t):
//   zx_t  (B, 3H) x_t [W_g[:I] | W_c[:I]] + [b_g | b_c]  (the input part, all steps at once)
//   zrg   (B, 2H) h_{t-1} W_g[I:]          zrc (B, H)  (r * h_{t-1}) W_c[I:]
//   ru_t  (B, 2H) [r | u]   rh_t (B, H) r * h_{t-1}   cand_t (B, H) c
//   da_t  (B, 3H) [da_r | da_u | da_c]  (the pre-activation gradient of step t)

template <typename T>
MR_HD void gru_fwd_gates_elem(int idx, int H, const T* zx_t, const T* zrg, const T* h_prev,
                              T* ru_t, T* rh_t)
{
    const int b = idx / H, j = idx % H;
    const int r = b * 2 * H + j, x = b * 3 * H + j;
    const T reset = mr_sigmoid(zx_t[x] + zrg[r]);                 // [GRU-F1] [GRU-F2]
    const T update = mr_sigmoid(zx_t[x + H] + zrg[r + H]);
    ru_t[r] = reset;
    ru_t[r + H] = update;
    rh_t[idx] = reset * h_prev[idx];                              // r * h, input of [GRU-F3]
}

template <typename T>
MR_HD void gru_fwd_cand_elem(int idx, int H, const T* zx_t, const T* zrc, const T* ru_t,
                             const T* h_prev, T* cand_t, T* h_next)
{
    const int b = idx / H, j = idx % H;
    const T u = ru_t[b * 2 * H + H + j];
    const T c = mr_tanh(zx_t[b * 3 * H + 2 * H + j] + zrc[idx]);  // [GRU-F3] [GRU-F4]
    cand_t[idx] = c;
    h_next[idx] = u * h_prev[idx] + (T(1) - u) * c;               // [GRU-F5]
}

// The carried gradient dh_t^carry of [GRU-B11] arrives in two parts:
// dhc_part = dh u + d(rh) r (elementwise, from gru_bwd_reset of step t+1) and
// dhc_mat = da_g W_g[I:]^T (the recurrent GEMM of step t+1).
template <typename T>
MR_HD void gru_bwd_cand_elem(int idx, int H, const T* dhs_t, const T* dhc_part, const T* dhc_mat,
                             const T* ru_t, const T* cand_t, const T* h_prev, T* dh, T* da_t)
{
    const int b = idx / H, j = idx % H;
    const T u = ru_t[b * 2 * H + H + j];
    const T c = cand_t[idx];
    const T dht = dhs_t[idx] + (dhc_part[idx] + dhc_mat[idx]);   // [GRU-B1]
    const T dc = dht * (T(1) - u);                                // [GRU-B2]
    const T du = dht * (h_prev[idx] - c);                         // [GRU-B3]
    dh[idx] = dht;
    da_t[b * 3 * H + 2 * H + j] = dc * (T(1) - c * c);            // [GRU-B4]
    da_t[b * 3 * H + H + j] = du * u * (T(1) - u);                // [GRU-B8] (u half)
}

// drh = da_c W_c[I:]^T: the r*h columns of [GRU-B6].
template <typename T>
MR_HD void gru_bwd_reset_elem(int idx, int H, const T* drh, const T* dh, const T* ru_t, const T* h_prev,
                              T* da_t, T* dhc_part)
{
    const int b = idx / H, j = idx % H;
    const T reset = ru_t[b * 2 * H + j];
    const T u = ru_t[b * 2 * H + H + j];
    const T dr = drh[idx] * h_prev[idx];                          // [GRU-B7]
    da_t[b * 3 * H + j] = dr * reset * (T(1) - reset);            // [GRU-B8] (r half)
    dhc_part[idx] = dh[idx] * u + drh[idx] * reset;               // [GRU-B11] (first two terms)
}

// ================================================================ Nested LSTM
// Per level k: gates_k (T, B, 4H) activated [i | g | f | o]; memories c_k
// (T+1, B, H); tanh of the new memories tc_k (T, B, H).  The levels of one array
// are stacked (level-major), `lvl_*` is the distance between two levels in
// elements.  cat_{k+1} (B, 2H) = [a_{k+1} | b_{k+1}] is what level k hands down.

// Gates of one level.  `add` is what completes the pre-activation: level 0 gets
// the input projection x_t W0[:I] + b0 (one row per example, add_rows = 1),
// level k >= 1 gets its bias b_k (one row for all, add_rows = 0).
template <typename T>
MR_HD void nlstm_fwd_gates_elem(int idx, int H, int cand_tanh, int has_next, const T* add, int add_rows,
                                const T* zr, const T* c_old, T* gates_t, T* cat_next_t)
{
    const int b = idx / H, j = idx % H;
    const int r = b * 4 * H + j;
    const int a = (add_rows ? b * 4 * H : 0) + j;
    const T zi = add[a] + zr[r];                                  // [NLSTM-F1]
    const T zj = add[a + H] + zr[r + H];
    const T zf = add[a + 2 * H] + zr[r + 2 * H];
    const T zo = add[a + 3 * H] + zr[r + 3 * H];
    const T i = mr_sigmoid(zi);                                   // [NLSTM-F2]
    const T f = mr_sigmoid(zf + T(1));                            // [NLSTM-F3]
    const T o = mr_sigmoid(zo);                                   // [NLSTM-F4]
    const T g = cand_tanh ? mr_tanh(zj) : zj;                     // [NLSTM-F5]
    gates_t[r] = i;
    gates_t[r + H] = g;
    gates_t[r + 2 * H] = f;
    gates_t[r + 3 * H] = o;
    if (has_next) {
        cat_next_t[b * 2 * H + j] = i * g;                        // a_{k+1}  [NLSTM-F7]
        cat_next_t[b * 2 * H + H + j] = f * c_old[idx];           // b_{k+1}  [NLSTM-F6]
    }
}

// Inside-out, after every level's gates are known: the innermost memory, then
// each level's output, which is the new memory of the level outside it.
template <typename T>
MR_HD void nlstm_fwd_out_elem(int idx, int H, int depth, long long lvl_gates, long long lvl_state,
                              long long lvl_tc, const T* gates_t, const T* c_old, T* c_new, T* tc_t,
                              T* h_next)
{
    const int b = idx / H, j = idx % H;
    const int r = b * 4 * H + j;
    const int inner = depth - 1;
    const T* gi = gates_t + inner * lvl_gates;
    // c'_{D-1} = b_D + a_D = f c_{D-1} + i g                        [NLSTM-F6] [NLSTM-F7] [NLSTM-F8]
    T c = gi[r + 2 * H] * c_old[inner * lvl_state + idx] + gi[r] * gi[r + H];
    T h = c;
    for (int k = inner; k >= 0; --k) {
        const T o = gates_t[k * lvl_gates + r + 3 * H];
        const T tc = mr_tanh(c);
        c_new[k * lvl_state + idx] = c;
        tc_t[k * lvl_tc + idx] = tc;
        h = tc * o;                                               // [NLSTM-F9]
        c = h;                                                    // c'_{k-1} = h'_k  [NLSTM-F10]
    }
    h_next[idx] = h;                                              // output h'_0  [NLSTM-F11]
}

// Backward through one level's gates, given the gradients (da, db) of what it
// handed down; writes dz_{i,j,f} of the level and its carried memory gradient.
template <typename T>
MR_HD void nlstm_level_backward(int r, int H, int cand_tanh, T da, T db, const T* gates_t, T c_old,
                                T* dz_t, T* dc_carry_k)
{
    const T i = gates_t[r], g = gates_t[r + H], f = gates_t[r + 2 * H];
    dz_t[r] = da * g * i * (T(1) - i);                            // [NLSTM-B6], block i of [NLSTM-B11]
    const T dg = da * i;                                          // [NLSTM-B7]
    dz_t[r + H] = cand_tanh ? dg * (T(1) - g * g) : dg;           // [NLSTM-B8], block j of [NLSTM-B11]
    dz_t[r + 2 * H] = db * c_old * f * (T(1) - f);                // [NLSTM-B9], block f of [NLSTM-B11]
    *dc_carry_k = db * f;                                         // [NLSTM-B10]
}

// Outside-in through the outputs of every level, then the innermost level's
// gates.  dc_carry holds one (B, H) block per level, lvl_carry apart; dz_t one
// (B, 4H) block per level, lvl_dz apart.
template <typename T>
MR_HD void nlstm_bwd_out_elem(int idx, int H, int depth, int cand_tanh_inner, long long lvl_gates,
                              long long lvl_state, long long lvl_tc, long long lvl_carry, long long lvl_dz,
                              const T* dhs_t, const T* dh_carry, T* dc_carry, const T* gates_t, const T* tc_t,
                              const T* c_old, T* dz_t)
{
    const int b = idx / H, j = idx % H;
    const int r = b * 4 * H + j;
    T dh = dhs_t[idx] + dh_carry[idx];                            // [NLSTM-B1]
    T dc = dh;
    for (int k = 0; k < depth; ++k) {
        const T o = gates_t[k * lvl_gates + r + 3 * H];
        const T tc = tc_t[k * lvl_tc + idx];
        dz_t[k * lvl_dz + r + 3 * H] = dh * tc * o * (T(1) - o);      // [NLSTM-B2], block o of [NLSTM-B11]
        dc = dc_carry[k * lvl_carry + idx] + dh * o * (T(1) - tc * tc);  // [NLSTM-B3]
        dh = dc;                                                  // dh'_{k+1} = dc'_k  [NLSTM-B4]
    }
    const int inner = depth - 1;
    // da_D = db_D = dc'_{D-1}                                       [NLSTM-B5]
    nlstm_level_backward(r, H, cand_tanh_inner, dc, dc, gates_t + inner * lvl_gates,
                         c_old[inner * lvl_state + idx], dz_t + inner * lvl_dz,
                         dc_carry + inner * lvl_carry + idx);
}

// Level k < D-1: dcat = dz_{k+1} W_{k+1}^T = [da_{k+1} | db_{k+1}].
template <typename T>
MR_HD void nlstm_bwd_level_elem(int idx, int H, int cand_tanh, const T* dcat, const T* gates_t,
                                const T* c_old, T* dz_t, T* dc_carry_k)
{
    const int b = idx / H, j = idx % H;
    const T da = dcat[b * 2 * H + j];                             // [NLSTM-B13]
    const T db = dcat[b * 2 * H + H + j];
    nlstm_level_backward(b * 4 * H + j, H, cand_tanh, da, db, gates_t, c_old[idx], dz_t, dc_carry_k + idx);
}

// ======================================================================= Adam
// lr_t already holds the bias corrections: lr sqrt(1 - b2^t) / (1 - b1^t)  [ADAM-F3].
// one_minus_b1 = 1 - b1 and one_minus_b2 = 1 - b2 are formed in double on the host.
template <typename T>
MR_HD void adam_step_elem(int idx, T* p, const T* g, T* m, T* v, T lr_t, T b1, T one_minus_b1, T b2,
                          T one_minus_b2, T eps)
{
    const T gi = g[idx];
    const T mi = b1 * m[idx] + one_minus_b1 * gi;                 // [ADAM-F1]
    const T vi = b2 * v[idx] + one_minus_b2 * (gi * gi);          // [ADAM-F2]
    m[idx] = mi;
    v[idx] = vi;
    p[idx] -= lr_t * mi / (mr_sqrt(vi) + eps);                    // [ADAM-F4]
}

#endif  // MINIRNN_GATES_CUH
