// GRU, "reset before the matrix product" (docs/gru.md).  Two launches per step in
// each direction because the candidate's GEMM needs r * h first.
// Forward per step:  zrg = h W_g[I:]; gru_fwd_gates; zrc = (r h) W_c[I:]; gru_fwd_cand.
// Backward per step: gru_bwd_cand; drh = da_c W_c[I:]^T; gru_bwd_reset;
//                    dhc_mat = da_g W_g[I:]^T.  The loop: kernels/units.py FastGRU.
#include "gates.cuh"

// [GRU-F1] [GRU-F2]
template <typename T>
__global__ void gru_fwd_gates(int n, int H, const T* zx_t, const T* zrg, const T* h_prev, T* ru_t, T* rh_t)
{
    MR_FOR_EACH(idx, n) gru_fwd_gates_elem<T>(idx, H, zx_t, zrg, h_prev, ru_t, rh_t);
}

// [GRU-F3]..[GRU-F5]
template <typename T>
__global__ void gru_fwd_cand(int n, int H, const T* zx_t, const T* zrc, const T* ru_t, const T* h_prev,
                             T* cand_t, T* h_next)
{
    MR_FOR_EACH(idx, n) gru_fwd_cand_elem<T>(idx, H, zx_t, zrc, ru_t, h_prev, cand_t, h_next);
}

// [GRU-B1]..[GRU-B4], [GRU-B8] (u half)
template <typename T>
__global__ void gru_bwd_cand(int n, int H, const T* dhs_t, const T* dhc_part, const T* dhc_mat,
                             const T* ru_t, const T* cand_t, const T* h_prev, T* dh, T* da_t)
{
    MR_FOR_EACH(idx, n) gru_bwd_cand_elem<T>(idx, H, dhs_t, dhc_part, dhc_mat, ru_t, cand_t, h_prev, dh, da_t);
}

// [GRU-B7], [GRU-B8] (r half), [GRU-B11] (elementwise terms)
template <typename T>
__global__ void gru_bwd_reset(int n, int H, const T* drh, const T* dh, const T* ru_t, const T* h_prev, T* da_t,
                              T* dhc_part)
{
    MR_FOR_EACH(idx, n) gru_bwd_reset_elem<T>(idx, H, drh, dh, ru_t, h_prev, da_t, dhc_part);
}
