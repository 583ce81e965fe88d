// Image to columns and back, for convolutions as a matrix product (scfnet-ops' im2col.rs):
// (B, C, H, W) ↔ (B, C·k·k, Ho·Wo), row (c, ky, kx) holding what that tap sees (zero in the
// padding); any stride and dilation. Planes (b, c) along the grid's y.
#include "common.cuh"

// One thread per column element of a plane's k·k rows.
template <typename T>
__device__ void im2col(const T* x, T* cols, size_t planes, unsigned h, unsigned w, unsigned oh,
                       unsigned ow, unsigned k, unsigned s, unsigned p, unsigned d) {
    unsigned per_tap = oh * ow;
    FOR_EACH_PLANE_ELEMENT(plane, r, planes, k * k * per_tap) {
        unsigned tap = r / per_tap, q = r % per_tap;
        int iy = (int)((q / ow) * s + (tap / k) * d) - (int)p;
        int ix = (int)((q % ow) * s + (tap % k) * d) - (int)p;
        bool inside = iy >= 0 && iy < (int)h && ix >= 0 && ix < (int)w;
        cols[plane * k * k * per_tap + r] = inside ? x[plane * h * w + iy * w + ix] : (T)0;
    }
}

// One thread per image element: Σ over the taps (in order) of the columns that read it.
template <typename T>
__device__ void col2im(const T* cols, T* x, size_t planes, unsigned h, unsigned w, unsigned oh,
                       unsigned ow, unsigned k, unsigned s, unsigned p, unsigned d) {
    FOR_EACH_PLANE_ELEMENT(plane, r, planes, h * w) {
        int iy = r / w, ix = r % w;
        const T* src = cols + plane * k * k * oh * ow;
        T acc = (T)0;
        for (int ky = 0; ky < (int)k; ++ky) {
            int ty = iy + (int)p - ky * (int)d;  // = oy·s
            if (ty < 0 || ty % (int)s != 0 || ty / (int)s >= (int)oh) continue;
            int oy = ty / (int)s;
            for (int kx = 0; kx < (int)k; ++kx) {
                int tx = ix + (int)p - kx * (int)d;
                if (tx < 0 || tx % (int)s != 0 || tx / (int)s >= (int)ow) continue;
                int ox = tx / (int)s;
                acc += src[((ky * k + kx) * oh + oy) * ow + ox];
            }
        }
        x[plane * h * w + r] = acc;
    }
}

#define IM2COL_KERNELS(T, SUFFIX)                                                               \
    extern "C" __global__ void im2col_##SUFFIX(const T* x, T* cols, size_t planes, size_t h,    \
                                               size_t w, size_t oh, size_t ow, size_t k,        \
                                               size_t s, size_t p, size_t d) {                  \
        im2col<T>(x, cols, planes, h, w, oh, ow, k, s, p, d);                                   \
    }                                                                                           \
    extern "C" __global__ void col2im_##SUFFIX(const T* cols, T* x, size_t planes, size_t h,    \
                                               size_t w, size_t oh, size_t ow, size_t k,        \
                                               size_t s, size_t p, size_t d) {                  \
        col2im<T>(cols, x, planes, h, w, oh, ow, k, s, p, d);                                   \
    }

IM2COL_KERNELS(float, f32)
IM2COL_KERNELS(double, f64)
