// Depthwise 2-D convolution (one k×k filter per channel, stride s, zero padding p), forward and
// both gradients, as scfnet-ops' CPU kernels (depthwise.rs) compute them. Tensors are contiguous
// (B, C, H, W); the weight is (C, 1, k, k). Planes (b, c) along the grid's y, pixels along x.
#include "common.cuh"

// The forward pass and the input gradient are templates on K, the filter size when it is
// known at compile time (3 and 5, the networks' sizes: loops unrolled, the weights' offsets
// constant) or 0 for any other size (then read from `k_any`); the kernels pick one by k.

// One thread per output pixel: Σ over ky then kx of w·in, padding taps skipped. A window wholly
// inside the image (most of them) takes no test per tap.
template <typename T, int K>
__device__ void dw_fwd(const T* x, const T* w, T* y, size_t planes, size_t c, unsigned h,
                       unsigned wd, unsigned oh, unsigned ow, unsigned k_any, unsigned s,
                       unsigned p) {
    const int k = K > 0 ? K : (int)k_any;
    FOR_EACH_PLANE_ELEMENT(plane, r, planes, oh * ow) {
        int iy0 = (int)(r / ow * s) - (int)p, ix0 = (int)(r % ow * s) - (int)p;
        const T* src = x + plane * h * wd;
        const T* f = w + (plane % c) * k * k;
        T acc = (T)0;
        if (iy0 >= 0 && ix0 >= 0 && iy0 + k <= (int)h && ix0 + k <= (int)wd) {
            const T* at = src + iy0 * (int)wd + ix0;
#pragma unroll
            for (int ky = 0; ky < k; ++ky)
#pragma unroll
                for (int kx = 0; kx < k; ++kx) acc += f[ky * k + kx] * at[ky * (int)wd + kx];
        } else {
#pragma unroll
            for (int ky = 0; ky < k; ++ky) {
                int iy = iy0 + ky;
                if (iy < 0 || iy >= (int)h) continue;
#pragma unroll
                for (int kx = 0; kx < k; ++kx) {
                    int ix = ix0 + kx;
                    if (ix < 0 || ix >= (int)wd) continue;
                    acc += f[ky * k + kx] * src[iy * (int)wd + ix];
                }
            }
        }
        y[plane * oh * ow + r] = acc;
    }
}

// One thread per input pixel: Σ over the taps that read it (ky then kx ascending, as the CPU)
// of w·gradient (a gather, no atomics). The covering outputs, from the last down, are at most
// k along each axis.
template <typename T, int K>
__device__ void dw_grad_input(const T* g, const T* w, T* dx, size_t planes, size_t c,
                              unsigned h, unsigned wd, unsigned oh, unsigned ow, unsigned k_any,
                              unsigned s, unsigned p) {
    const int k = K > 0 ? K : (int)k_any;
    FOR_EACH_PLANE_ELEMENT(plane, r, planes, h * wd) {
        int iy = r / wd, ix = r % wd;
        const T* go = g + plane * oh * ow;
        const T* f = w + (plane % c) * k * k;
        int y_hi, y_lo, x_hi, x_lo;
        covering(iy, k, s, p, 1, oh, &y_hi, &y_lo);
        covering(ix, k, s, p, 1, ow, &x_hi, &x_lo);
        T acc = (T)0;
#pragma unroll
        for (int ty = 0; ty < k; ++ty) {
            int oy = y_hi - ty;
            if (oy < y_lo) break;
            int ky = iy + (int)p - oy * (int)s;
#pragma unroll
            for (int tx = 0; tx < k; ++tx) {
                int ox = x_hi - tx;
                if (ox < x_lo) break;
                int kx = ix + (int)p - ox * (int)s;
                acc += f[ky * k + kx] * go[oy * (int)ow + ox];
            }
        }
        dx[plane * h * wd + r] = acc;
    }
}

// The taps of one row a block of the weight gradient sums at once (its sums stay in registers).
#define DW_TAPS 8

// Blocks (slice of the batch, (channel·k + ky)·chunks + chunk), chunks = ⌈k / DW_TAPS⌉: for the
// tap row ky and the taps kx = chunk·DW_TAPS + t < k, the partial Σ of gradient·input over the
// slice's images, reduced in the block and written to part[(channel·k·k + ky·k + kx)·splits +
// slice]; `dw_grad_weight_finish` adds the slices in order (deterministic). Each output's
// gradient is read once per tap row (was once per tap), and a thread steps through its outputs
// by addition (no division per output).
template <typename T>
__device__ void dw_grad_weight_partials(const T* x, const T* g, double* part, size_t batch,
                                        size_t c, unsigned h, unsigned wd, unsigned oh,
                                        unsigned ow, unsigned k, unsigned s, unsigned p,
                                        size_t splits) {
    unsigned chunks = (k + DW_TAPS - 1) / DW_TAPS;
    size_t slice = blockIdx.x, tap_row = blockIdx.y / chunks;  // tap_row = channel·k + ky
    size_t ch = tap_row / k;
    int ky = (int)(tap_row % k), kx0 = (int)(blockIdx.y % chunks) * DW_TAPS;
    size_t lo, hi;
    batch_slice(batch, splits, slice, &lo, &hi);
    double acc[DW_TAPS];
#pragma unroll
    for (int t = 0; t < DW_TAPS; ++t) acc[t] = 0.0;
    // A thread's outputs r = threadIdx.x + n·blockDim.x as (oy, ox), advanced by (dy, dx).
    unsigned n_out = oh * ow, dy = blockDim.x / ow, dx = blockDim.x % ow;
    for (size_t b = lo; b < hi; ++b) {
        size_t plane = b * c + ch;
        const T* src = x + plane * h * wd;
        const T* go = g + plane * n_out;
        unsigned oy = threadIdx.x / ow, ox = threadIdx.x % ow;
        for (unsigned r = threadIdx.x; r < n_out; r += blockDim.x) {
            int iy = (int)(oy * s) + ky - (int)p;
            if (iy >= 0 && iy < (int)h) {
                double gv = (double)go[r];
                const T* row = src + iy * (int)wd;
                int ix0 = (int)(ox * s) - (int)p + kx0;
#pragma unroll
                for (int t = 0; t < DW_TAPS; ++t) {
                    int ix = ix0 + t;
                    if (kx0 + t < (int)k && ix >= 0 && ix < (int)wd) acc[t] += gv * (double)row[ix];
                }
            }
            oy += dy;
            ox += dx;
            if (ox >= ow) {
                ox -= ow;
                ++oy;
            }
        }
    }
#pragma unroll
    for (int t = 0; t < DW_TAPS; ++t) {
        if (kx0 + t < (int)k) {  // the same for every thread of the block
            double v = block_sum(acc[t]);
            if (threadIdx.x == 0) part[(tap_row * k + kx0 + t) * splits + slice] = v;
        }
    }
}

// One thread per weight: the sum of its slices.
template <typename T>
__device__ void dw_grad_weight_finish(const double* part, T* dw, size_t rows, size_t splits) {
    FOR_EACH_INDEX(row, rows) {
        double acc = 0.0;
        for (size_t k = 0; k < splits; ++k) acc += part[row * splits + k];
        dw[row] = (T)acc;
    }
}

// The filter sizes the forward pass and the input gradient are compiled for, else any size.
#define DW_BY_SIZE(f, T, ...)                                 \
    if (k == 3)                                               \
        f<T, 3>(__VA_ARGS__);                                 \
    else if (k == 5)                                          \
        f<T, 5>(__VA_ARGS__);                                 \
    else                                                      \
        f<T, 0>(__VA_ARGS__);

#define DEPTHWISE_KERNELS(T, SUFFIX)                                                             \
    extern "C" __global__ void dw_fwd_##SUFFIX(const T* x, const T* w, T* y, size_t planes,      \
                                               size_t c, size_t h, size_t wd, size_t oh,         \
                                               size_t ow, size_t k, size_t s, size_t p) {        \
        DW_BY_SIZE(dw_fwd, T, x, w, y, planes, c, h, wd, oh, ow, k, s, p)                        \
    }                                                                                            \
    extern "C" __global__ void dw_grad_input_##SUFFIX(const T* g, const T* w, T* dx,             \
                                                      size_t planes, size_t c, size_t h,         \
                                                      size_t wd, size_t oh, size_t ow, size_t k, \
                                                      size_t s, size_t p) {                      \
        DW_BY_SIZE(dw_grad_input, T, g, w, dx, planes, c, h, wd, oh, ow, k, s, p)                \
    }                                                                                            \
    extern "C" __global__ void dw_grad_weight_partials_##SUFFIX(                                 \
        const T* x, const T* g, double* part, size_t batch, size_t c, size_t h, size_t wd,       \
        size_t oh, size_t ow, size_t k, size_t s, size_t p, size_t splits) {                     \
        dw_grad_weight_partials<T>(x, g, part, batch, c, h, wd, oh, ow, k, s, p, splits);        \
    }                                                                                            \
    extern "C" __global__ void dw_grad_weight_finish_##SUFFIX(const double* part, T* dw,         \
                                                              size_t rows, size_t splits) {      \
        dw_grad_weight_finish<T>(part, dw, rows, splits);                                        \
    }

DEPTHWISE_KERNELS(float, f32)
DEPTHWISE_KERNELS(double, f64)
