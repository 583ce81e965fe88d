// Max-pooling kernels for CUDA (compiled to PTX by scfnet-kernels' build.rs with the `cuda`
// feature). Same rules as the CPU kernel: -inf padding, floor-mode output size, the first
// maximum of the window in row-major order, a NaN wins. One thread per output element, planes
// along the grid's y and the index within a plane in 32-bit arithmetic (the launch checks that a
// plane holds fewer than 2^31 values): the loss's 13-wide windows over 352x352 maps spent most
// of their time in 64-bit divisions and products when every index was a size_t.
#include "common.cuh"

// The flat index within `plane` (h x w) of the first maximum of output (oy, ox)'s window; a NaN
// wins. The window is never empty: the padding is at most half the kernel (checked on the host).
template <typename T>
__device__ unsigned window_argmax(const T* plane, unsigned h, unsigned w, unsigned oy,
                                  unsigned ox, unsigned kh, unsigned kw, unsigned sh,
                                  unsigned sw, unsigned ph, unsigned pw) {
    int y0 = (int)(oy * sh) - (int)ph;
    int x0 = (int)(ox * sw) - (int)pw;
    int y1 = min(y0 + (int)kh, (int)h);
    int x1 = min(x0 + (int)kw, (int)w);
    y0 = max(y0, 0);
    x0 = max(x0, 0);
    unsigned best = (unsigned)y0 * w + (unsigned)x0;
    T best_v = plane[best];
    if (best_v != best_v) return best;
    for (int y = y0; y < y1; ++y) {
        unsigned row = (unsigned)y * w;
        for (int x = x0; x < x1; ++x) {
            T v = plane[row + x];
            if (v != v) return row + x;
            if (v > best_v) {
                best_v = v;
                best = row + x;
            }
        }
    }
    return best;
}

// The kernels' size arguments after their buffers: planes, the input (h, w), the output
// (oh, ow), the window (kh, kw), the stride (sh, sw) and the padding (ph, pw).
#define POOL_SIZES                                                                          \
    size_t planes, size_t h, size_t w, size_t oh, size_t ow, size_t kh, size_t kw, size_t sh, \
        size_t sw, size_t ph, size_t pw
#define POOL_WINDOW_ARGS                                                                    \
    (unsigned)h, (unsigned)w, r / (unsigned)ow, r % (unsigned)ow, (unsigned)kh, (unsigned)kw, \
        (unsigned)sh, (unsigned)sw, (unsigned)ph, (unsigned)pw

template <typename T>
__device__ void max_pool_fwd(const T* x, T* y, POOL_SIZES) {
    FOR_EACH_PLANE_ELEMENT(p, r, planes, oh * ow) {
        const T* plane = x + p * h * w;
        y[p * oh * ow + r] = plane[window_argmax(plane, POOL_WINDOW_ARGS)];
    }
}

// Each output's gradient added to its window's first maximum in `dx` (zeroed by the caller).
template <typename T>
__device__ void max_pool_bwd(const T* x, const T* g, T* dx, POOL_SIZES) {
    FOR_EACH_PLANE_ELEMENT(p, r, planes, oh * ow) {
        const T* plane = x + p * h * w;
        atomicAdd(dx + p * h * w + window_argmax(plane, POOL_WINDOW_ARGS), g[p * oh * ow + r]);
    }
}

#define POOL_KERNELS(T, SUFFIX)                                                          \
    extern "C" __global__ void max_pool_fwd_##SUFFIX(const T* x, T* y, POOL_SIZES) {     \
        max_pool_fwd<T>(x, y, planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw);             \
    }                                                                                    \
    extern "C" __global__ void max_pool_bwd_##SUFFIX(const T* x, const T* g, T* dx,      \
                                                     POOL_SIZES) {                       \
        max_pool_bwd<T>(x, g, dx, planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw);         \
    }

POOL_KERNELS(float, f32)
POOL_KERNELS(double, f64)
