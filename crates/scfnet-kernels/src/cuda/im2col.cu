// Image to columns and back, for convolutions as a matrix product (scfnet-ops' im2col.rs):
// (B, C, H, W) ↔ (B, C·k·k, Ho·Wo), row (c, ky, kx) holding what that tap sees (zero in the
// padding); any stride and dilation. Planes (b, c) along the grid's y. Also the batch-wide
// layout (C·k·k, B·Ho·Wo), for one matrix product over the batch (see plane_rows).
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

// Where the k·k rows of plane `plane` (= b·C + c) start in the columns, and the distance from one
// row to the next: per image, (B, C·k·k, Ho·Wo) when `images` is 0; batch-wide, (C·k·k, B·Ho·Wo)
// for `images` images otherwise (row (c, ky, kx) holds that tap's view of every image, image
// after image, so that one matrix product covers the batch).
struct PlaneRows {
    size_t start, step;
};
__device__ inline PlaneRows plane_rows(size_t plane, size_t planes, size_t images, unsigned kk,
                                       unsigned per_tap) {
    if (images == 0) return {plane * kk * per_tap, per_tap};
    size_t channels = planes / images, b = plane / channels, c = plane % channels;
    return {(c * kk * images + b) * per_tap, images * per_tap};
}

// One thread per column element of a plane's k·k rows.
template <typename T>
__device__ void im2col(const T* x, T* cols, size_t planes, size_t images, unsigned h, unsigned w,
                       unsigned oh, unsigned ow, unsigned k, unsigned s, unsigned p, unsigned d) {
    unsigned per_tap = oh * ow;
    FOR_EACH_PLANE_ELEMENT(plane, r, planes, k * k * per_tap) {
        PlaneRows rows = plane_rows(plane, planes, images, k * k, per_tap);
        cols[rows.start + (r / per_tap) * rows.step + r % per_tap] =
            tap_value(x, plane, r, h, w, ow, per_tap, k, s, p, d);
    }
}

// One thread per image element: Σ over the taps (in order) of the columns that read it.
template <typename T>
__device__ void col2im(const T* cols, T* x, size_t planes, size_t images, unsigned h, unsigned w,
                       unsigned oh, unsigned ow, unsigned k, unsigned s, unsigned p, unsigned d) {
    FOR_EACH_PLANE_ELEMENT(plane, r, planes, h * w) {
        int iy = r / w, ix = r % w;
        PlaneRows rows = plane_rows(plane, planes, images, k * k, oh * ow);
        const T* src = cols + rows.start;
        T acc = (T)0;
        for (int ky = 0; ky < (int)k; ++ky) {
            int ty = iy + (int)p - ky * (int)d;  // = oy·s
            if (ty < 0 || ty % (int)s != 0 || ty / (int)s >= (int)oh) continue;
            int oy = ty / (int)s;
            for (int kx = 0; kx < (int)k; ++kx) {
                int tx = ix + (int)p - kx * (int)d;
                if (tx < 0 || tx % (int)s != 0 || tx / (int)s >= (int)ow) continue;
                int ox = tx / (int)s;
                acc += src[(ky * k + kx) * rows.step + oy * ow + ox];
            }
        }
        x[plane * h * w + r] = acc;
    }
}

// The kernels: `images` 0 for the per-image layout, the batch size for the batch-wide one.
#define IM2COL_KERNELS(T, SUFFIX)                                                               \
    extern "C" __global__ void im2col_##SUFFIX(const T* x, T* cols, size_t planes,              \
                                               size_t images, size_t h, size_t w, size_t oh,    \
                                               size_t ow, size_t k, size_t s, size_t p,         \
                                               size_t d) {                                      \
        im2col<T>(x, cols, planes, images, h, w, oh, ow, k, s, p, d);                           \
    }                                                                                           \
    extern "C" __global__ void col2im_##SUFFIX(const T* cols, T* x, size_t planes,              \
                                               size_t images, size_t h, size_t w, size_t oh,    \
                                               size_t ow, size_t k, size_t s, size_t p,         \
                                               size_t d) {                                      \
        col2im<T>(cols, x, planes, images, h, w, oh, ow, k, s, p, d);                           \
    }

IM2COL_KERNELS(float, f32)
IM2COL_KERNELS(double, f64)
