// Image to columns and back, for convolutions as a matrix product (scfnet-ops' im2col.rs):
// (B, C, H, W) ↔ (B, C·k·k, Ho·Wo), row (c, ky, kx) holding what that tap sees (zero in the
// padding); any stride and dilation. Planes (b, c) along the grid's y. Also the batch-wide
// columns (C·k·k, B·Ho·Wo) of the weight gradient's one product.
#include "common.cuh"

// What tap r / per_tap of plane `plane` sees at output r % per_tap (zero in the padding).
template <typename T>
__device__ inline T tap_value(const T* x, size_t plane, unsigned r, unsigned h, unsigned w,
                              unsigned ow, unsigned per_tap, unsigned k, unsigned s, unsigned p,
                              unsigned d) {
    unsigned tap = r / per_tap, q = r % per_tap;
    int iy = (int)((q / ow) * s + (tap / k) * d) - (int)p;
    int ix = (int)((q % ow) * s + (tap % k) * d) - (int)p;
    bool inside = iy >= 0 && iy < (int)h && ix >= 0 && ix < (int)w;
    return inside ? x[plane * h * w + iy * w + ix] : (T)0;
}

// One thread per column element of a plane's k·k rows.
template <typename T>
__device__ void im2col(const T* x, T* cols, size_t planes, unsigned h, unsigned w, unsigned oh,
                       unsigned ow, unsigned k, unsigned s, unsigned p, unsigned d) {
    unsigned per_tap = oh * ow;
    FOR_EACH_PLANE_ELEMENT(plane, r, planes, k * k * per_tap) {
        cols[plane * k * k * per_tap + r] = tap_value(x, plane, r, h, w, ow, per_tap, k, s, p, d);
    }
}

// The batch-wide layout (C·k·k, B·Ho·Wo): row (c, ky, kx) holds that tap's view of every image,
// image after image, so that one matrix product covers the batch. Planes (b, c) = b·C + c of
// `images` images; one thread per column element of a plane's k·k rows, as im2col.
template <typename T>
__device__ void im2col_wide(const T* x, T* cols, size_t planes, size_t images, unsigned h,
                            unsigned w, unsigned oh, unsigned ow, unsigned k, unsigned s,
                            unsigned p, unsigned d) {
    unsigned per_tap = oh * ow;
    size_t channels = planes / images;
    FOR_EACH_PLANE_ELEMENT(plane, r, planes, k * k * per_tap) {
        size_t b = plane / channels, c = plane % channels;
        size_t row = c * k * k + r / per_tap;
        cols[(row * images + b) * per_tap + r % per_tap] =
            tap_value(x, plane, r, h, w, ow, per_tap, k, s, p, d);
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
    }                                                                                           \
    extern "C" __global__ void im2col_wide_##SUFFIX(const T* x, T* cols, size_t planes,         \
                                                    size_t images, size_t h, size_t w,          \
                                                    size_t oh, size_t ow, size_t k, size_t s,   \
                                                    size_t p, size_t d) {                       \
        im2col_wide<T>(x, cols, planes, images, h, w, oh, ow, k, s, p, d);                      \
    }

IM2COL_KERNELS(float, f32)
IM2COL_KERNELS(double, f64)
