// The Elman unit's CUDA kernels (examples/elman_unit.py registers this file): the
// same names and argument lists, after n = B*H, as its Numba kernels there.
#include "gates.cuh"

// h_t = tanh(x_t W[:I] + b + h_{t-1} W[I:])
template <typename T>
MR_HD void elman_fwd_step_elem(int idx, int /*H*/, const T* zx_t, const T* zr, T* h_next)
{
    h_next[idx] = mr_tanh(zx_t[idx] + zr[idx]);
}

// dz_t = (dhs_t + dh_carry) (1 - h_t^2)
template <typename T>
MR_HD void elman_bwd_step_elem(int idx, int /*H*/, const T* dhs_t, const T* dh_carry, const T* h_t, T* dz_t)
{
    const T h = h_t[idx];
    dz_t[idx] = (dhs_t[idx] + dh_carry[idx]) * (T(1) - h * h);
}

template <typename T>
__global__ void elman_fwd_step(int n, int H, const T* zx_t, const T* zr, T* h_next)
{
    MR_FOR_EACH(idx, n) elman_fwd_step_elem<T>(idx, H, zx_t, zr, h_next);
}

template <typename T>
__global__ void elman_bwd_step(int n, int H, const T* dhs_t, const T* dh_carry, const T* h_t, T* dz_t)
{
    MR_FOR_EACH(idx, n) elman_bwd_step_elem<T>(idx, H, dhs_t, dh_carry, h_t, dz_t);
}
