// Hard-swish and hard-sigmoid, forward and gradient, one thread per element; the same formulas
// and the same derivatives at the kinks as scfnet-ops' CPU kernels (activation.rs).
// kind 0: hard-swish x·clip(x + 3, 0, 6)/6; kind 1: hard-sigmoid clip(slope·x + offset, 0, 1);
// kind 2: ReLU seen from its output (gradient only: slope 1 where the output is > 0).
#include "common.cuh"

template <typename T>
__device__ T act_value(size_t kind, T x, T slope, T offset) {
    if (kind == 0) return hard_swish(x);
    if (kind == 2) return x > (T)0 ? x : (T)0;
    return clip(slope * x + offset, (T)1);
}

template <typename T>
__device__ T act_derivative(size_t kind, T x, T slope, T offset) {
    if (kind == 0) return hard_swish_derivative(x);
    if (kind == 2) return x > (T)0 ? (T)1 : (T)0;
    T y = slope * x + offset;
    return (y > (T)0 && y < (T)1) ? slope : (T)0;
}

#define ACTIVATION_KERNELS(T, SUFFIX)                                                           \
    extern "C" __global__ void activation_fwd_##SUFFIX(const T* x, T* y, double slope,          \
                                                       double offset, size_t n, size_t kind) {  \
        FOR_EACH_INDEX(i, n) y[i] = act_value<T>(kind, x[i], (T)slope, (T)offset);              \
    }                                                                                           \
    extern "C" __global__ void activation_grad_##SUFFIX(const T* x, const T* g, T* dx,          \
                                                        double slope, double offset, size_t n,  \
                                                        size_t kind) {                          \
        FOR_EACH_INDEX(i, n) dx[i] = g[i] * act_derivative<T>(kind, x[i], (T)slope, (T)offset); \
    }

ACTIVATION_KERNELS(float, f32)
ACTIVATION_KERNELS(double, f64)
