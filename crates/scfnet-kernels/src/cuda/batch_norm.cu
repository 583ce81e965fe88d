// BatchNorm over contiguous (B, C, H, W) tensors: batch statistics, the affine normalisation,
// and the backward through the batch statistics, as scfnet-ops' CPU kernels (batch_norm.rs)
// compute them: sums in double, biased variance.
//
// The reductions run in blocks (slice of the batch, channel): each writes its partial sums to
// `part[(channel·splits + slice)·2 + {0, 1}]`, and a finishing kernel (one thread per channel)
// adds them in slice order: deterministic, and enough blocks to fill the GPU. The element-wise
// kernels take planes (b, c) along the grid's y, pixels along x.
#include "common.cuh"

// The activation fused after the normalisation (0 none, 1 ReLU, 2 hard-swish), and the
// derivative the backward uses (candle's ReLU rule: 1 where x ≥ 0; PyTorch's hard-swish kinks),
// as scfnet-ops' CPU kernels compute them.
template <typename T>
__device__ T act_value(size_t act, T x) {
    if (act == 1) return x > (T)0 ? x : (T)0;
    if (act == 2) return hard_swish(x);
    return x;
}

template <typename T>
__device__ T act_derivative(size_t act, T x) {
    if (act == 1) return x >= (T)0 ? (T)1 : (T)0;
    if (act == 2) return hard_swish_derivative(x);
    return (T)1;
}

// Partial Σ(x − K) and Σ(x − K)² with K the channel's first value (a shift that keeps the
// one-pass variance exact enough).
template <typename T>
__device__ void bn_stat_partials(const T* x, double* part, size_t b, size_t c, unsigned hw,
                                 size_t splits) {
    size_t slice = blockIdx.x, ch = blockIdx.y, lo, hi;
    batch_slice(b, splits, slice, &lo, &hi);
    double shift = (double)x[ch * hw];
    double s1 = 0.0, s2 = 0.0;
    for (size_t bi = lo; bi < hi; ++bi) {
        const T* plane = x + (bi * c + ch) * hw;
        for (unsigned j = threadIdx.x; j < hw; j += blockDim.x) {
            double d = (double)plane[j] - shift;
            s1 += d;
            s2 += d * d;
        }
    }
    s1 = block_sum(s1);
    s2 = block_sum(s2);
    if (threadIdx.x == 0) {
        part[(ch * splits + slice) * 2] = s1;
        part[(ch * splits + slice) * 2 + 1] = s2;
    }
}

// stats = [mean; biased variance], (2, C).
template <typename T>
__device__ void bn_stat_finish(const T* x, const double* part, T* stats, size_t b, size_t c,
                               size_t hw, size_t splits) {
    FOR_EACH_INDEX(ch, c) {
        double s1 = 0.0, s2 = 0.0;
        for (size_t k = 0; k < splits; ++k) {
            s1 += part[(ch * splits + k) * 2];
            s2 += part[(ch * splits + k) * 2 + 1];
        }
        double n = (double)(b * hw), m = s1 / n;
        double var = s2 / n - m * m;
        stats[ch] = (T)((double)x[ch * hw] + m);
        stats[c + ch] = (T)(var > 0.0 ? var : 0.0);
    }
}

// y = x·scale + shift with scale = γ/√(var + ε), shift = β − mean·scale (from affine = [γ; β]
// and stats = [mean; var], each (2, C)), rounded to T as the CPU kernel does.
template <typename T>
__device__ void bn_apply(const T* x, const T* affine, const T* stats, T* y, double eps,
                         size_t planes, size_t c, unsigned hw, size_t act) {
    for (size_t plane = blockIdx.y; plane < planes; plane += gridDim.y) {
        size_t ch = plane % c;
        double g = (double)affine[ch], bt = (double)affine[c + ch];
        double inv = 1.0 / sqrt((double)stats[c + ch] + eps);
        T scale = (T)(g * inv), shift = (T)(bt - (double)stats[ch] * g * inv);
        const T* src = x + plane * hw;
        T* dst = y + plane * hw;
        for (unsigned j = blockIdx.x * blockDim.x + threadIdx.x; j < hw;
             j += blockDim.x * gridDim.x) {
            dst[j] = act_value<T>(act, src[j] * scale + shift);
        }
    }
}

// Partial Σ dy and Σ dy·x̂ (params = [γ; β; mean; var], (4, C)).
template <typename T>
__device__ void bn_grad_partials(const T* x, const T* dy, const T* params, double* part,
                                 double eps, size_t b, size_t c, unsigned hw, size_t splits,
                                 size_t act) {
    size_t slice = blockIdx.x, ch = blockIdx.y, lo, hi;
    batch_slice(b, splits, slice, &lo, &hi);
    double mean = (double)params[2 * c + ch];
    double inv = 1.0 / sqrt((double)params[3 * c + ch] + eps);
    double g_ = (double)params[ch], bt = (double)params[c + ch];
    T scale = (T)(g_ * inv), shift = (T)(bt - mean * g_ * inv);
    double sd = 0.0, sdx = 0.0;
    for (size_t bi = lo; bi < hi; ++bi) {
        size_t o = (bi * c + ch) * hw;
        for (unsigned j = threadIdx.x; j < hw; j += blockDim.x) {
            double g = (double)(dy[o + j] * act_derivative<T>(act, x[o + j] * scale + shift));
            sd += g;
            sdx += g * ((double)x[o + j] - mean) * inv;
        }
    }
    sd = block_sum(sd);
    sdx = block_sum(sdx);
    if (threadIdx.x == 0) {
        part[(ch * splits + slice) * 2] = sd;
        part[(ch * splits + slice) * 2 + 1] = sdx;
    }
}

// sums[2·ch] = Σ dy, sums[2·ch + 1] = Σ dy·x̂; out[total + ch] = dγ, out[total + c + ch] = dβ.
template <typename T>
__device__ void bn_grad_finish(const double* part, double* sums, T* out, size_t total, size_t c,
                               size_t splits) {
    FOR_EACH_INDEX(ch, c) {
        double sd = 0.0, sdx = 0.0;
        for (size_t k = 0; k < splits; ++k) {
            sd += part[(ch * splits + k) * 2];
            sdx += part[(ch * splits + k) * 2 + 1];
        }
        sums[2 * ch] = sd;
        sums[2 * ch + 1] = sdx;
        out[total + ch] = (T)sdx;
        out[total + c + ch] = (T)sd;
    }
}

// dx = γ·inv·(dy − Σdy/n − x̂·Σ(dy·x̂)/n).
template <typename T>
__device__ void bn_grad_input(const T* x, const T* dy, const T* params, const double* sums,
                              T* out, double eps, size_t planes, size_t c, unsigned hw,
                              size_t act) {
    double n = (double)(planes / c * hw);
    for (size_t plane = blockIdx.y; plane < planes; plane += gridDim.y) {
        size_t ch = plane % c;
        double mean = (double)params[2 * c + ch];
        double inv = 1.0 / sqrt((double)params[3 * c + ch] + eps);
        double k = (double)params[ch] * inv;
        double bt = (double)params[c + ch];
        T scale = (T)k, shift = (T)(bt - mean * (double)params[ch] * inv);
        double a = sums[2 * ch] / n, m = sums[2 * ch + 1] / n;
        size_t o = plane * hw;
        for (unsigned j = blockIdx.x * blockDim.x + threadIdx.x; j < hw;
             j += blockDim.x * gridDim.x) {
            double xhat = ((double)x[o + j] - mean) * inv;
            double g = (double)(dy[o + j] * act_derivative<T>(act, x[o + j] * scale + shift));
            out[o + j] = (T)(k * (g - a - xhat * m));
        }
    }
}

#define BN_KERNELS(T, SUFFIX)                                                                   \
    extern "C" __global__ void bn_stat_partials_##SUFFIX(const T* x, double* part, size_t b,    \
                                                         size_t c, size_t hw, size_t splits) {  \
        bn_stat_partials<T>(x, part, b, c, hw, splits);                                         \
    }                                                                                           \
    extern "C" __global__ void bn_stat_finish_##SUFFIX(const T* x, const double* part,          \
                                                       T* stats, size_t b, size_t c, size_t hw, \
                                                       size_t splits) {                         \
        bn_stat_finish<T>(x, part, stats, b, c, hw, splits);                                    \
    }                                                                                           \
    extern "C" __global__ void bn_apply_##SUFFIX(const T* x, const T* affine, const T* stats,   \
                                                 T* y, double eps, size_t planes, size_t c,     \
                                                 size_t hw, size_t act) {                       \
        bn_apply<T>(x, affine, stats, y, eps, planes, c, hw, act);                              \
    }                                                                                           \
    extern "C" __global__ void bn_grad_partials_##SUFFIX(const T* x, const T* dy,               \
                                                         const T* params, double* part,         \
                                                         double eps, size_t b, size_t c,        \
                                                         size_t hw, size_t splits,              \
                                                         size_t act) {                          \
        bn_grad_partials<T>(x, dy, params, part, eps, b, c, hw, splits, act);                   \
    }                                                                                           \
    extern "C" __global__ void bn_grad_finish_##SUFFIX(const double* part, double* sums,        \
                                                       T* out, size_t total, size_t c,          \
                                                       size_t splits) {                         \
        bn_grad_finish<T>(part, sums, out, total, c, splits);                                   \
    }                                                                                           \
    extern "C" __global__ void bn_grad_input_##SUFFIX(const T* x, const T* dy, const T* params, \
                                                      const double* sums, T* out, double eps,   \
                                                      size_t planes, size_t c, size_t hw,       \
                                                      size_t act) {                             \
        bn_grad_input<T>(x, dy, params, sums, out, eps, planes, c, hw, act);                    \
    }

BN_KERNELS(float, f32)
BN_KERNELS(double, f64)
