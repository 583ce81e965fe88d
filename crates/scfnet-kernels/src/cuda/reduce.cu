// Sums over a batch: out[i] = Σ_b x[b·n + i], in batch order, accumulated in double (the weight
// gradient of a convolution from its per-image products).
#include "common.cuh"

template <typename T>
__device__ void sum_batch(const T* x, T* out, size_t batch, size_t n) {
    FOR_EACH_INDEX(i, n) {
        double acc = 0.0;
        for (size_t b = 0; b < batch; ++b) acc += (double)x[b * n + i];
        out[i] = (T)acc;
    }
}

extern "C" __global__ void sum_batch_f32(const float* x, float* out, size_t batch, size_t n) {
    sum_batch<float>(x, out, batch, n);
}
extern "C" __global__ void sum_batch_f64(const double* x, double* out, size_t batch, size_t n) {
    sum_batch<double>(x, out, batch, n);
}
