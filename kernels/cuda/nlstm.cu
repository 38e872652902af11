// Nested LSTM of any depth D (docs/nlstm.md).
// Forward per step:  zr = h W0[I:]; nlstm_fwd_gates(level 0);
//                    for k = 1..D-1: zr = [a_k | b_k] W_k; nlstm_fwd_gates(level k);
//                    nlstm_fwd_out (innermost memory, then every level's output).
// Backward per step: nlstm_bwd_out (outputs of all levels, innermost gates);
//                    for k = D-1..1: dcat = dz_k W_k^T; nlstm_bwd_level(level k-1);
//                    dh_carry = dz_0 W0[I:]^T.  The loop: kernels/units.py FastNestedLSTM.
#include "gates.cuh"

// [NLSTM-F1]..[NLSTM-F7]
template <typename T>
__global__ void nlstm_fwd_gates(int n, int H, int cand_tanh, int has_next, const T* add, int add_rows,
                                const T* zr, const T* c_old, T* gates_t, T* cat_next_t)
{
    MR_FOR_EACH(idx, n) nlstm_fwd_gates_elem<T>(idx, H, cand_tanh, has_next, add, add_rows, zr, c_old, gates_t, cat_next_t);
}

// [NLSTM-F8]..[NLSTM-F11]
template <typename T>
__global__ void nlstm_fwd_out(int n, int H, int depth, long long lvl_gates, long long lvl_state, long long lvl_tc,
                              const T* gates_t, const T* c_old, T* c_new, T* tc_t, T* h_next)
{
    MR_FOR_EACH(idx, n) nlstm_fwd_out_elem<T>(idx, H, depth, lvl_gates, lvl_state, lvl_tc, gates_t, c_old, c_new, tc_t, h_next);
}

// [NLSTM-B1]..[NLSTM-B11] for the outputs and the innermost level
template <typename T>
__global__ void nlstm_bwd_out(int n, int H, int depth, int cand_tanh_inner, long long lvl_gates, long long lvl_state,
                              long long lvl_tc, long long lvl_carry, long long lvl_dz, const T* dhs_t,
                              const T* dh_carry, T* dc_carry, const T* gates_t, const T* tc_t, const T* c_old, T* dz_t)
{
    MR_FOR_EACH(idx, n) nlstm_bwd_out_elem<T>(idx, H, depth, cand_tanh_inner, lvl_gates, lvl_state, lvl_tc, lvl_carry, lvl_dz, dhs_t, dh_carry, dc_carry, gates_t, tc_t, c_old, dz_t);
}

// [NLSTM-B13], then [NLSTM-B6]..[NLSTM-B10] for one outer level
template <typename T>
__global__ void nlstm_bwd_level(int n, int H, int cand_tanh, const T* dcat, const T* gates_t, const T* c_old,
                                T* dz_t, T* dc_carry_k)
{
    MR_FOR_EACH(idx, n) nlstm_bwd_level_elem<T>(idx, H, cand_tanh, dcat, gates_t, c_old, dz_t, dc_carry_k);
}
