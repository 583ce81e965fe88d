// Image to columns and back, for convolutions as a matrix product (scfnet-ops' im2col.rs):
// (B, C, H, W) ↔ (B, C·k·k, Ho·Wo), row (c, ky, kx) holding what that tap sees (zero in the
// padding); any stride and dilation. Planes (b, c) along the grid's y. Also the batch-wide
// layout (C·k·k, B·Ho·Wo), for one matrix product over the batch (see plane_rows).
#include "common.cuh"

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

// One thread per output position q of a plane: its k·k taps (zero in the padding), each
// written to its row (consecutive threads write consecutive columns of a row). Two 32-bit
// divisions a thread and the taps' positions by addition (a thread per column element cost six
// divisions per element: by instruction count, several times the time of the kernel's memory
// traffic on an H200 — an estimate, not a measurement).
template <typename T>
__device__ void im2col(const T* x, T* cols, size_t planes, size_t images, unsigned h, unsigned w,
                       unsigned oh, unsigned ow, unsigned k, unsigned s, unsigned p, unsigned d) {
    unsigned per_tap = oh * ow;
    FOR_EACH_PLANE_ELEMENT(plane, q, planes, per_tap) {
        PlaneRows rows = plane_rows(plane, planes, images, k * k, per_tap);
        const T* src = x + plane * h * w;
        T* dst = cols + rows.start + q;
        int iy0 = (int)((q / ow) * s) - (int)p, ix0 = (int)((q % ow) * s) - (int)p;
        for (unsigned ky = 0; ky < k; ++ky) {
            int iy = iy0 + (int)(ky * d);
            bool row_inside = iy >= 0 && iy < (int)h;
            for (unsigned kx = 0; kx < k; ++kx) {
                int ix = ix0 + (int)(kx * d);
                bool inside = row_inside && ix >= 0 && ix < (int)w;
                dst[(ky * k + kx) * rows.step] = inside ? src[iy * (int)w + ix] : (T)0;
            }
        }
    }
}

// One thread per image element: Σ over the taps that read it, in tap order (ky, then kx
// ascending: the covering outputs from the last down), of their column entries (a gather, no
// atomics). The covering outputs come from a range, not a divisibility test per tap.
template <typename T>
__device__ void col2im(const T* cols, T* x, size_t planes, size_t images, unsigned h, unsigned w,
                       unsigned oh, unsigned ow, unsigned k, unsigned s, unsigned p, unsigned d) {
    FOR_EACH_PLANE_ELEMENT(plane, r, planes, h * w) {
        int iy = r / w, ix = r % w;
        PlaneRows rows = plane_rows(plane, planes, images, k * k, oh * ow);
        const T* src = cols + rows.start;
        int y_hi, y_lo, x_hi, x_lo;
        covering(iy, k, s, p, d, oh, &y_hi, &y_lo);
        covering(ix, k, s, p, d, ow, &x_hi, &x_lo);
        T acc = (T)0;
        for (int oy = y_hi; oy >= y_lo; --oy) {
            int ty = iy + (int)p - oy * (int)s;  // = ky·d
            if (d > 1 && ty % (int)d != 0) continue;
            int ky = d > 1 ? ty / (int)d : ty;
            for (int ox = x_hi; ox >= x_lo; --ox) {
                int tx = ix + (int)p - ox * (int)s;  // = kx·d
                if (d > 1 && tx % (int)d != 0) continue;
                int kx = d > 1 ? tx / (int)d : tx;
                acc += src[(ky * (int)k + kx) * rows.step + oy * ow + ox];
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
