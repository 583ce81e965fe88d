// Softmax over the last axis of a contiguous (rows, N) tensor and its backward, as scfnet-ops'
// CPU kernels (softmax.rs) compute them: e = exp(x − max) in the input's precision, the sums
// and the division in double; dx = y·(g − Σ g·y).
//
// One warp per row (attention rows of 49–144 values in Swin): lanes stride over the row and
// reduce with shuffles.
#include "common.cuh"

__device__ inline float exp_of(float v) { return expf(v); }
__device__ inline double exp_of(double v) { return exp(v); }

template <typename T>
__device__ void softmax_fwd(const T* x, T* y, size_t rows, unsigned n) {
    unsigned lane = threadIdx.x & 31;
    FOR_EACH_WARP_ROW(row, rows) {
        const T* xr = x + row * n;
        T* yr = y + row * n;
        T m = -INFINITY;
        for (unsigned j = lane; j < n; j += 32) m = fmax(m, xr[j]);
        m = warp_max(m);
        double s = 0.0;
        for (unsigned j = lane; j < n; j += 32) s += (double)exp_of(xr[j] - m);
        s = warp_sum(s);
        for (unsigned j = lane; j < n; j += 32) yr[j] = (T)((double)exp_of(xr[j] - m) / s);
    }
}

template <typename T>
__device__ void softmax_grad(const T* y, const T* g, T* dx, size_t rows, unsigned n) {
    unsigned lane = threadIdx.x & 31;
    FOR_EACH_WARP_ROW(row, rows) {
        const T* yr = y + row * n;
        const T* gr = g + row * n;
        T* dr = dx + row * n;
        double dot = 0.0;
        for (unsigned j = lane; j < n; j += 32) dot += (double)yr[j] * (double)gr[j];
        dot = warp_sum(dot);
        for (unsigned j = lane; j < n; j += 32)
            dr[j] = (T)((double)yr[j] * ((double)gr[j] - dot));
    }
}

extern "C" __global__ void softmax_fwd_f32(const float* x, float* y, size_t rows, unsigned n) {
    softmax_fwd<float>(x, y, rows, n);
}
extern "C" __global__ void softmax_fwd_f64(const double* x, double* y, size_t rows,
                                           unsigned n) {
    softmax_fwd<double>(x, y, rows, n);
}
extern "C" __global__ void softmax_grad_f32(const float* y, const float* g, float* dx,
                                            size_t rows, unsigned n) {
    softmax_grad<float>(y, g, dx, rows, n);
}
extern "C" __global__ void softmax_grad_f64(const double* y, const double* g, double* dx,
                                            size_t rows, unsigned n) {
    softmax_grad<double>(y, g, dx, rows, n);
}
