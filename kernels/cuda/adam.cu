// Adam, one fused in-place update of a parameter and its two moments (docs/adam.md).
#include "gates.cuh"

// [ADAM-F1] [ADAM-F2] [ADAM-F4]; lr_t carries [ADAM-F3]
template <typename T>
__global__ void adam_step(int n, T* p, const T* g, T* m, T* v, T lr_t, T b1, T one_minus_b1, T b2,
                          T one_minus_b2, T eps)
{
    MR_FOR_EACH(idx, n) adam_step_elem<T>(idx, p, g, m, v, lr_t, b1, one_minus_b1, b2, one_minus_b2, eps);
}
