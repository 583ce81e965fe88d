// The SGD-with-momentum update of one parameter in place, as scfnet-ops' CPU kernels (sgd.rs)
// and candle's composition compute it: g' = g + (w·λ + 0) when λ ≠ 0, v ← (v·μ + 0) + g',
// w ← w − (v·s + 0). One thread per value.
#include "common.cuh"

template <typename T>
__device__ void sgd_velocity(T* v, const T* g, const T* w, size_t n, double momentum,
                             double decay, size_t decayed) {
    T m = (T)momentum, d = (T)decay;
    FOR_EACH_INDEX(i, n) {
        T gi = g[i];
        if (decayed) gi = gi + (w[i] * d + (T)0);
        v[i] = (v[i] * m + (T)0) + gi;
    }
}

template <typename T>
__device__ void sgd_weight(T* w, const T* v, size_t n, double step) {
    T s = (T)step;
    FOR_EACH_INDEX(i, n) w[i] = w[i] - (v[i] * s + (T)0);
}

extern "C" __global__ void sgd_velocity_f32(float* v, const float* g, const float* w, size_t n,
                                            double momentum, double decay, size_t decayed) {
    sgd_velocity<float>(v, g, w, n, momentum, decay, decayed);
}
extern "C" __global__ void sgd_velocity_f64(double* v, const double* g, const double* w,
                                            size_t n, double momentum, double decay,
                                            size_t decayed) {
    sgd_velocity<double>(v, g, w, n, momentum, decay, decayed);
}
extern "C" __global__ void sgd_weight_f32(float* w, const float* v, size_t n, double step) {
    sgd_weight<float>(w, v, n, step);
}
extern "C" __global__ void sgd_weight_f64(double* w, const double* v, size_t n, double step) {
    sgd_weight<double>(w, v, n, step);
}
