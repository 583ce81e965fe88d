// Depthwise 2-D convolution (one k×k filter per channel, stride s, zero padding p), forward and
// both gradients, as scfnet-ops' CPU kernels (depthwise.rs) compute them. Tensors are contiguous
// (B, C, H, W); the weight is (C, 1, k, k). Planes (b, c) along the grid's y, pixels along x.
#include "common.cuh"

// One thread per output pixel: Σ over ky then kx of w·in, padding taps skipped.
template <typename T>
__device__ void dw_fwd(const T* x, const T* w, T* y, size_t planes, size_t c, unsigned h,
                       unsigned wd, unsigned oh, unsigned ow, unsigned k, unsigned s, unsigned p) {
    FOR_EACH_PLANE_ELEMENT(plane, r, planes, oh * ow) {
        int oy = r / ow, ox = r % ow;
        const T* src = x + plane * h * wd;
        const T* f = w + (plane % c) * k * k;
        T acc = (T)0;
        for (int ky = 0; ky < (int)k; ++ky) {
            int iy = oy * (int)s + ky - (int)p;
            if (iy < 0 || iy >= (int)h) continue;
            for (int kx = 0; kx < (int)k; ++kx) {
                int ix = ox * (int)s + kx - (int)p;
                if (ix < 0 || ix >= (int)wd) continue;
                acc += f[ky * k + kx] * src[iy * wd + ix];
            }
        }
        y[plane * oh * ow + r] = acc;
    }
}

// One thread per input pixel: Σ over the taps that read it (ky then kx ascending, as the CPU)
// of w·gradient (a gather, no atomics).
template <typename T>
__device__ void dw_grad_input(const T* g, const T* w, T* dx, size_t planes, size_t c,
                              unsigned h, unsigned wd, unsigned oh, unsigned ow, unsigned k,
                              unsigned s, unsigned p) {
    FOR_EACH_PLANE_ELEMENT(plane, r, planes, h * wd) {
        int iy = r / wd, ix = r % wd;
        const T* go = g + plane * oh * ow;
        const T* f = w + (plane % c) * k * k;
        int y_hi, y_lo, x_hi, x_lo;
        covering(iy, k, s, p, 1, oh, &y_hi, &y_lo);
        covering(ix, k, s, p, 1, ow, &x_hi, &x_lo);
        T acc = (T)0;
        for (int oy = y_hi; oy >= y_lo; --oy) {
            int ky = iy + (int)p - oy * (int)s;
            for (int ox = x_hi; ox >= x_lo; --ox) {
                int kx = ix + (int)p - ox * (int)s;
                acc += f[ky * k + kx] * go[oy * ow + ox];
            }
        }
        dx[plane * h * wd + r] = acc;
    }
}

// Blocks (slice of the batch, channel·k·k + tap): partial Σ of gradient·input over the slice's
// images, reduced in the block; `dw_grad_weight_finish` adds the slices in order
// (deterministic).
template <typename T>
__device__ void dw_grad_weight_partials(const T* x, const T* g, double* part, size_t batch,
                                        size_t c, unsigned h, unsigned wd, unsigned oh,
                                        unsigned ow, unsigned k, unsigned s, unsigned p,
                                        size_t splits) {
    size_t slice = blockIdx.x, row = blockIdx.y;
    size_t ch = row / (k * k);
    int tap = row % (k * k), ky = tap / k, kx = tap % k;
    size_t lo, hi;
    batch_slice(batch, splits, slice, &lo, &hi);
    double acc = 0.0;
    for (size_t b = lo; b < hi; ++b) {
        size_t plane = b * c + ch;
        const T* src = x + plane * h * wd;
        const T* go = g + plane * oh * ow;
        for (unsigned r = threadIdx.x; r < oh * ow; r += blockDim.x) {
            int oy = r / ow, ox = r % ow;
            int iy = oy * (int)s + ky - (int)p, ix = ox * (int)s + kx - (int)p;
            if (iy < 0 || iy >= (int)h || ix < 0 || ix >= (int)wd) continue;
            acc += (double)go[r] * (double)src[iy * wd + ix];
        }
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) part[row * splits + slice] = acc;
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

#define DEPTHWISE_KERNELS(T, SUFFIX)                                                             \
    extern "C" __global__ void dw_fwd_##SUFFIX(const T* x, const T* w, T* y, size_t planes,      \
                                               size_t c, size_t h, size_t wd, size_t oh,         \
                                               size_t ow, size_t k, size_t s, size_t p) {        \
        dw_fwd<T>(x, w, y, planes, c, h, wd, oh, ow, k, s, p);                                   \
    }                                                                                            \
    extern "C" __global__ void dw_grad_input_##SUFFIX(const T* g, const T* w, T* dx,             \
                                                      size_t planes, size_t c, size_t h,         \
                                                      size_t wd, size_t oh, size_t ow, size_t k, \
                                                      size_t s, size_t p) {                      \
        dw_grad_input<T>(g, w, dx, planes, c, h, wd, oh, ow, k, s, p);                           \
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
