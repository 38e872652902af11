// LSTM, one time step per launch (docs/lstm.md).  The gate math is in gates.cuh;
// these wrappers only spread the (B, H) elements over the GPU's threads.
// Per step the host runs: recurrent GEMM zr = h_{t-1} W[I:] (cuBLAS), then
// lstm_fwd_step; backward: lstm_bwd_step, then dh_carry = dz_t W[I:]^T (kernels/units.py FastLSTM).
#include "gates.cuh"

// [LSTM-F1]..[LSTM-F4]
template <typename T>
__global__ void lstm_fwd_step(int n, int H, const T* zx_t, const T* zr, const T* c_prev, T* gates_t,
                              T* c_next, T* tc_t, T* h_next)
{
    MR_FOR_EACH(idx, n) lstm_fwd_step_elem<T>(idx, H, zx_t, zr, c_prev, gates_t, c_next, tc_t, h_next);
}

// [LSTM-B1]..[LSTM-B6]
template <typename T>
__global__ void lstm_bwd_step(int n, int H, const T* dhs_t, const T* dh_carry, T* dc_carry, const T* gates_t,
                              const T* tc_t, const T* c_prev, T* dz_t)
{
    MR_FOR_EACH(idx, n) lstm_bwd_step_elem<T>(idx, H, dhs_t, dh_carry, dc_carry, gates_t, tc_t, c_prev, dz_t);
}
