// LayerNorm over the last axis of a contiguous (rows, C) tensor and its backward, as
// scfnet-ops' CPU kernels (layer_norm.rs) compute them: mean and biased variance in double (two
// passes), y = (x − μ)·r·γ + β with r = 1/√(σ² + ε), every product in double.
//
// One warp per row (rows of 128–2048 values in Swin-B): lanes stride over the row and reduce
// with shuffles, no shared memory. The weight gradient sums columns over all rows: blocks of
// (128 columns, slice of rows) write partial sums, a finishing kernel adds them in slice order.
#include "common.cuh"

// Mean and r of row `xr`, in every lane.
template <typename T>
__device__ void ln_row_statistics(const T* xr, unsigned c, double eps, double* mean,
                                  double* r) {
    unsigned lane = threadIdx.x & 31;
    double s = 0.0;
    for (unsigned j = lane; j < c; j += 32) s += (double)xr[j];
    double m = warp_sum(s) / (double)c;
    double q = 0.0;
    for (unsigned j = lane; j < c; j += 32) {
        double d = (double)xr[j] - m;
        q += d * d;
    }
    double var = warp_sum(q) / (double)c;
    *mean = m;
    *r = 1.0 / sqrt(var + eps);
}

template <typename T>
__device__ void ln_fwd(const T* x, const T* w, const T* b, T* y, size_t rows, unsigned c,
                       double eps) {
    unsigned lane = threadIdx.x & 31;
    FOR_EACH_WARP_ROW(row, rows) {
        const T* xr = x + row * c;
        T* yr = y + row * c;
        double mean, r;
        ln_row_statistics(xr, c, eps, &mean, &r);
        for (unsigned j = lane; j < c; j += 32)
            yr[j] = (T)(((double)xr[j] - mean) * r * (double)w[j] + (double)b[j]);
    }
}

// stats[2·row] = μ, stats[2·row + 1] = r.
template <typename T>
__device__ void ln_stats(const T* x, double* stats, size_t rows, unsigned c, double eps) {
    FOR_EACH_WARP_ROW(row, rows) {
        double mean, r;
        ln_row_statistics(x + row * c, c, eps, &mean, &r);
        if ((threadIdx.x & 31) == 0) {
            stats[2 * row] = mean;
            stats[2 * row + 1] = r;
        }
    }
}

// dx = r·(g − mean(g) − x̂·mean(g·x̂)) with g = dy·γ and x̂ = (x − μ)·r, into out[0, rows·C).
template <typename T>
__device__ void ln_grad_input(const T* x, const T* dy, const T* w, const double* stats, T* out,
                              size_t rows, unsigned c) {
    unsigned lane = threadIdx.x & 31;
    FOR_EACH_WARP_ROW(row, rows) {
        const T* xr = x + row * c;
        const T* gr = dy + row * c;
        T* dr = out + row * c;
        double mean = stats[2 * row], r = stats[2 * row + 1];
        double sg = 0.0, sgx = 0.0;
        for (unsigned j = lane; j < c; j += 32) {
            double xhat = ((double)xr[j] - mean) * r;
            double gw = (double)gr[j] * (double)w[j];
            sg += gw;
            sgx += gw * xhat;
        }
        double a = warp_sum(sg) / (double)c, bb = warp_sum(sgx) / (double)c;
        for (unsigned j = lane; j < c; j += 32) {
            double xhat = ((double)xr[j] - mean) * r;
            double gw = (double)gr[j] * (double)w[j];
            dr[j] = (T)(r * (gw - a - xhat * bb));
        }
    }
}

// Block (column group, slice): part[slice·2C + ch] = Σ dy·x̂ and part[slice·2C + C + ch] = Σ dy
// over the slice's rows.
template <typename T>
__device__ void ln_grad_affine_partials(const T* x, const T* dy, const double* stats,
                                        double* part, size_t rows, unsigned c, size_t slices) {
    unsigned ch = blockIdx.x * blockDim.x + threadIdx.x;
    size_t slice = blockIdx.y, lo, hi;
    batch_slice(rows, slices, slice, &lo, &hi);
    if (ch >= c) return;
    double sgx = 0.0, sg = 0.0;
    for (size_t row = lo; row < hi; ++row) {
        double xhat = ((double)x[row * c + ch] - stats[2 * row]) * stats[2 * row + 1];
        double g = (double)dy[row * c + ch];
        sgx += g * xhat;
        sg += g;
    }
    part[slice * 2 * c + ch] = sgx;
    part[slice * 2 * c + c + ch] = sg;
}

// out[n + i] = Σ_slice part[slice·2C + i] for i < 2C (dγ then dβ), in slice order.
template <typename T>
__device__ void ln_grad_affine_finish(const double* part, T* out, size_t n, size_t c,
                                      size_t slices) {
    FOR_EACH_INDEX(i, 2 * c) {
        double acc = 0.0;
        for (size_t s = 0; s < slices; ++s) acc += part[s * 2 * c + i];
        out[n + i] = (T)acc;
    }
}

#define LAYER_NORM_KERNELS(T, SUFFIX)                                                         \
    extern "C" __global__ void ln_fwd_##SUFFIX(const T* x, const T* w, const T* b, T* y,      \
                                                size_t rows, unsigned c, double eps) {        \
        ln_fwd<T>(x, w, b, y, rows, c, eps);                                                  \
    }                                                                                         \
    extern "C" __global__ void ln_stats_##SUFFIX(const T* x, double* stats, size_t rows,      \
                                                  unsigned c, double eps) {                   \
        ln_stats<T>(x, stats, rows, c, eps);                                                  \
    }                                                                                         \
    extern "C" __global__ void ln_grad_input_##SUFFIX(const T* x, const T* dy, const T* w,    \
                                                       const double* stats, T* out,           \
                                                       size_t rows, unsigned c) {             \
        ln_grad_input<T>(x, dy, w, stats, out, rows, c);                                      \
    }                                                                                         \
    extern "C" __global__ void ln_grad_affine_partials_##SUFFIX(                              \
        const T* x, const T* dy, const double* stats, double* part, size_t rows, unsigned c,  \
        size_t slices) {                                                                      \
        ln_grad_affine_partials<T>(x, dy, stats, part, rows, c, slices);                      \
    }                                                                                         \
    extern "C" __global__ void ln_grad_affine_finish_##SUFFIX(const double* part, T* out,     \
                                                               size_t n, size_t c,            \
                                                               size_t slices) {               \
        ln_grad_affine_finish<T>(part, out, n, c, slices);                                    \
    }

LAYER_NORM_KERNELS(float, f32)
LAYER_NORM_KERNELS(double, f64)
