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

// params = [γ; β; mean; biased variance], (4, C): the scale and shift copied from gamma and
// beta, (C) each, next to the batch's statistics, so that the normalisation and its backward take
// one parameter tensor without a concatenation of their own.
template <typename T>
__device__ void bn_stat_finish(const T* x, const double* part, const T* gamma, const T* beta,
                               T* params, size_t b, size_t c, size_t hw, size_t splits) {
    FOR_EACH_INDEX(ch, c) {
        double s1 = 0.0, s2 = 0.0;
        for (size_t k = 0; k < splits; ++k) {
            s1 += part[(ch * splits + k) * 2];
            s2 += part[(ch * splits + k) * 2 + 1];
        }
        double n = (double)(b * hw), m = s1 / n;
        double var = s2 / n - m * m;
        params[ch] = gamma[ch];
        params[c + ch] = beta[ch];
        params[2 * c + ch] = (T)((double)x[ch * hw] + m);
        params[3 * c + ch] = (T)(var > 0.0 ? var : 0.0);
    }
}

// coef = [scale; shift], (2, C): scale = γ/√(var + ε), shift = β − mean·scale (from affine =
// [γ; β] and stats = [mean; var], each (2, C)), computed in double and rounded to T as the CPU
// kernel does; one thread per channel, so that the per-element kernel below does no division or
// square root (computed per element, they made it several times slower than its memory traffic).
template <typename T>
__device__ void bn_coefficients(const T* affine, const T* stats, T* coef, double eps, size_t c) {
    FOR_EACH_INDEX(ch, c) {
        double g = (double)affine[ch], bt = (double)affine[c + ch];
        double inv = 1.0 / sqrt((double)stats[c + ch] + eps);
        coef[ch] = (T)(g * inv);
        coef[c + ch] = (T)(bt - (double)stats[ch] * g * inv);
    }
}

// y = act(x·scale + shift) per channel, with coef = [scale; shift] from bn_coefficients; with a
// residual r (not null), y = act((x·scale + shift) + r), rounded as the composition rounds.
template <typename T>
__device__ void bn_apply(const T* x, const T* coef, const T* r, T* y, size_t planes, size_t c,
                         unsigned hw, size_t act) {
    for (size_t plane = blockIdx.y; plane < planes; plane += gridDim.y) {
        size_t ch = plane % c;
        T scale = coef[ch], shift = coef[c + ch];
        const T* src = x + plane * hw;
        T* dst = y + plane * hw;
        for (unsigned j = blockIdx.x * blockDim.x + threadIdx.x; j < hw;
             j += blockDim.x * gridDim.x) {
            T v = src[j] * scale + shift;
            if (r != nullptr) v = v + r[plane * hw + j];
            dst[j] = act_value<T>(act, v);
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

// Per channel, from the slices' partial sums: out[total + ch] = dγ = Σ dy·x̂,
// out[total + c + ch] = dβ = Σ dy and 0 in the statistics' rows out[total + 2c + ch],
// out[total + 3c + ch] (the gradient of the whole (4, C) parameter tensor), and the coefficients bn_grad_input needs, coef[7·ch + …]:
// mean, inv = 1/√(var + ε), k = γ·inv, a = Σdy/n, m = Σ(dy·x̂)/n (n = B·H·W), and the
// forward's scale and shift rounded to T (stored as doubles, exactly). Computed once per channel,
// not per element.
template <typename T>
__device__ void bn_grad_finish(const double* part, const T* params, double* coef, T* out,
                               double eps, size_t total, size_t c, size_t splits) {
    FOR_EACH_INDEX(ch, c) {
        double sd = 0.0, sdx = 0.0;
        for (size_t k = 0; k < splits; ++k) {
            sd += part[(ch * splits + k) * 2];
            sdx += part[(ch * splits + k) * 2 + 1];
        }
        out[total + ch] = (T)sdx;
        out[total + c + ch] = (T)sd;
        out[total + 2 * c + ch] = (T)0;
        out[total + 3 * c + ch] = (T)0;
        double n = (double)(total / c);
        double mean = (double)params[2 * c + ch];
        double inv = 1.0 / sqrt((double)params[3 * c + ch] + eps);
        double k = (double)params[ch] * inv;
        double bt = (double)params[c + ch];
        double* cf = coef + 7 * ch;
        cf[0] = mean;
        cf[1] = inv;
        cf[2] = k;
        cf[3] = sd / n;
        cf[4] = sdx / n;
        cf[5] = (double)(T)k;
        cf[6] = (double)(T)(bt - mean * (double)params[ch] * inv);
    }
}

// dx = γ·inv·(dy − Σdy/n − x̂·Σ(dy·x̂)/n), with the coefficients of bn_grad_finish.
template <typename T>
__device__ void bn_grad_input(const T* x, const T* dy, const double* coef, T* out,
                              size_t planes, size_t c, unsigned hw, size_t act) {
    for (size_t plane = blockIdx.y; plane < planes; plane += gridDim.y) {
        const double* cf = coef + 7 * (plane % c);
        double mean = cf[0], inv = cf[1], k = cf[2], a = cf[3], m = cf[4];
        T scale = (T)cf[5], shift = (T)cf[6];
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
                                                       const T* gamma, const T* beta,           \
                                                       T* params, size_t b, size_t c,           \
                                                       size_t hw, size_t splits) {              \
        bn_stat_finish<T>(x, part, gamma, beta, params, b, c, hw, splits);                      \
    }                                                                                           \
    extern "C" __global__ void bn_coefficients_##SUFFIX(const T* affine, const T* stats,      \
                                                        T* coef, double eps, size_t c) {        \
        bn_coefficients<T>(affine, stats, coef, eps, c);                                        \
    }                                                                                           \
    extern "C" __global__ void bn_apply_##SUFFIX(const T* x, const T* coef, T* y, size_t planes, \
                                                 size_t c, size_t hw, size_t act) {             \
        bn_apply<T>(x, coef, nullptr, y, planes, c, hw, act);                                   \
    }                                                                                           \
    extern "C" __global__ void bn_apply_residual_##SUFFIX(const T* x, const T* coef,            \
                                                          const T* r, T* y, size_t planes,      \
                                                          size_t c, size_t hw, size_t act) {    \
        bn_apply<T>(x, coef, r, y, planes, c, hw, act);                                         \
    }                                                                                           \
    extern "C" __global__ void bn_grad_partials_##SUFFIX(const T* x, const T* dy,               \
                                                         const T* params, double* part,         \
                                                         double eps, size_t b, size_t c,        \
                                                         size_t hw, size_t splits,              \
                                                         size_t act) {                          \
        bn_grad_partials<T>(x, dy, params, part, eps, b, c, hw, splits, act);                   \
    }                                                                                           \
    extern "C" __global__ void bn_grad_finish_##SUFFIX(const double* part, const T* params,     \
                                                       double* coef, T* out, double eps,        \
                                                       size_t total, size_t c, size_t splits) { \
        bn_grad_finish<T>(part, params, coef, out, eps, total, c, splits);                      \
    }                                                                                           \
    extern "C" __global__ void bn_grad_input_##SUFFIX(const T* x, const T* dy,                  \
                                                      const double* coef, T* out,               \
                                                      size_t planes, size_t c, size_t hw,       \
                                                      size_t act) {                             \
        bn_grad_input<T>(x, dy, coef, out, planes, c, hw, act);                                 \
    }

BN_KERNELS(float, f32)
BN_KERNELS(double, f64)

// The running statistics updated in place (scfnet-ops' running_stats.rs):
// r <- (r*keep + 0) + (batch*weight + 0), rounded as candle's composition of two affine maps and
// an addition (no contraction: -fmad=false). One thread per channel.
template <typename T>
__device__ void bn_running_update(T* r, const T* batch, size_t n, double keep, double weight) {
    T k = (T)keep, w = (T)weight;
    FOR_EACH_INDEX(i, n) r[i] = (r[i] * k + (T)0) + (batch[i] * w + (T)0);
}
extern "C" __global__ void bn_running_update_f32(float* r, const float* batch, size_t n,
                                                 double keep, double weight) {
    bn_running_update<float>(r, batch, n, keep, weight);
}
extern "C" __global__ void bn_running_update_f64(double* r, const double* batch, size_t n,
                                                 double keep, double weight) {
    bn_running_update<double>(r, batch, n, keep, weight);
}
