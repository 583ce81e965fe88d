// The exact GELU x·Φ(x) = x·½·(1 + erf(x/√2)) and its gradient g·(Φ(x) + x·φ(x)), one thread
// per element, in double for both element types, as scfnet-ops' CPU kernels (gelu.rs).
#include "common.cuh"

__device__ inline double gelu_value(double x) { return 0.5 * x * (1.0 + erf(x * M_SQRT1_2)); }

// Φ(x) + x·φ(x) with φ(x) = e^(−x²/2)/√(2π).
__device__ inline double gelu_derivative(double x) {
    const double inv_sqrt_2pi = 0.3989422804014327;
    return 0.5 * (1.0 + erf(x * M_SQRT1_2)) + x * (exp(-0.5 * x * x) * inv_sqrt_2pi);
}

#define GELU_KERNELS(T, SUFFIX)                                                                \
    extern "C" __global__ void gelu_fwd_##SUFFIX(const T* x, T* y, size_t n) {                 \
        FOR_EACH_INDEX(i, n) y[i] = (T)gelu_value((double)x[i]);                               \
    }                                                                                          \
    extern "C" __global__ void gelu_grad_##SUFFIX(const T* x, const T* g, T* dx, size_t n) {   \
        FOR_EACH_INDEX(i, n) dx[i] = (T)((double)g[i] * gelu_derivative((double)x[i]));        \
    }

GELU_KERNELS(float, f32)
GELU_KERNELS(double, f64)
