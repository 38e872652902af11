// Softmax cross-entropy of a chunk of logit rows, fused with its gradient
// (docs/layers.md).  One thread block per row: three passes over the row (max,
// sum of exponentials, then the gradient written over the logits in place).
// Rows whose weight is 0 (padding, <unknown>) cost nothing and get a zero gradient.
#include "gates.cuh"

#define MR_XENT_THREADS 256

// Block-wide reduction of one value per thread; every thread gets the result.
template <typename T, bool IS_MAX>
__device__ T mr_block_reduce(T value, T* shared)
{
    const int tid = threadIdx.x;
    shared[tid] = value;
    __syncthreads();
    for (int half = MR_XENT_THREADS / 2; half > 0; half /= 2) {
        if (tid < half) {
            const T other = shared[tid + half];
            shared[tid] = IS_MAX ? (other > shared[tid] ? other : shared[tid]) : shared[tid] + other;
        }
        __syncthreads();
    }
    const T result = shared[0];
    __syncthreads();  // shared is reused by the next reduction
    return result;
}

// logits (rows, V) in, weight * d(loss)/d(logits) out (in place);
// row_loss[row] = weight[row] * (logsumexp(logits[row]) - logits[row, target]).
// Launch with blockDim.x == MR_XENT_THREADS (xent.py reads the value from this file).
template <typename T>
__global__ void softmax_xent_rows(int rows, int V, T* logits, const long long* targets, const T* weight,
                                  double* row_loss)
{
    __shared__ T shared[MR_XENT_THREADS];
    const int tid = threadIdx.x;
    for (int row = blockIdx.x; row < rows; row += gridDim.x) {
        T* l = logits + (long long)row * V;
        const T w = weight[row];
        const long long target = targets[row];
        const bool has_target = target >= 0 && target < V;

        T m = l[0];
        for (int v = tid; v < V; v += MR_XENT_THREADS) m = l[v] > m ? l[v] : m;
        m = mr_block_reduce<T, true>(m, shared);
        T s = T(0);
        for (int v = tid; v < V; v += MR_XENT_THREADS) s += mr_exp(l[v] - m);
        s = mr_block_reduce<T, false>(s, shared);
        const T lse = m + mr_log(s);                              // [CE-F1] shifted for stability
        const T picked = has_target ? l[target] : lse;
        if (tid == 0) row_loss[row] = (w != T(0)) ? (double)w * (double)(lse - picked) : 0.0;  // [CE-F1]
        __syncthreads();  // every thread has read l[target] before it is overwritten

        for (int v = tid; v < V; v += MR_XENT_THREADS) {
            const T p = mr_exp(l[v] - lse);                       // [CE-B1] softmax ...
            l[v] = w * (p - (v == target ? T(1) : T(0)));          // [CE-B1] ... minus one-hot, [CE-B2] weight
        }
        __syncthreads();
    }
}
