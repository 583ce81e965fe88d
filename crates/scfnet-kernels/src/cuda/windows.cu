// Swin's (shifted) windows (scfnet-ops' windows.rs): the cut of a (B, H, W, C) map into
// ws x ws windows (rolled by (-sh, -sw), zero-padded to multiples of ws) and its inverse, each a
// gather of whole rows of C values. Blocks of 32 x 8 threads: a row per threadIdx.y, its source
// found once (32-bit arithmetic; the host checks that the rows number fewer than 2^31), its values
// along threadIdx.x. Each kernel is the other's backward.
#include "common.cuh"

// The sizes after the buffers: rows of the output, channels, the map (h, w), the window side,
// the shift (sh < h, sw < w) and the windows along the height and the width.
#define WINDOW_SIZES                                                                         \
    unsigned rows, unsigned c, unsigned h, unsigned w, unsigned ws, unsigned sh, unsigned sw, \
        unsigned ny, unsigned nx

// The map row (b*h + y)*w + x that window row r holds, or -1 where r is padding.
__host__ __device__ inline long long partition_source(unsigned r, unsigned h, unsigned w,
                                                      unsigned ws, unsigned sh, unsigned sw,
                                                      unsigned ny, unsigned nx) {
    unsigned n = ws * ws;
    unsigned win = r / n, t = r - win * n;
    unsigned b = win / (ny * nx), wi = win - b * (ny * nx);
    unsigned wy = wi / nx, wx = wi - wy * nx;
    unsigned iy = t / ws, ix = t - iy * ws;
    unsigned py = wy * ws + iy, px = wx * ws + ix;
    if (py >= h || px >= w) return -1;
    unsigned y = py + sh, x = px + sw;
    if (y >= h) y -= h;
    if (x >= w) x -= w;
    return ((long long)b * h + y) * w + x;
}

// The window row that holds map row r = (b*h + y)*w + x.
__host__ __device__ inline size_t merge_source(unsigned r, unsigned h, unsigned w, unsigned ws,
                                               unsigned sh, unsigned sw, unsigned ny,
                                               unsigned nx) {
    unsigned b = r / (h * w), p = r - b * (h * w);
    unsigned y = p / w, x = p - y * w;
    unsigned py = y >= sh ? y - sh : y + h - sh;
    unsigned px = x >= sw ? x - sw : x + w - sw;
    unsigned wy = py / ws, iy = py - wy * ws;
    unsigned wx = px / ws, ix = px - wx * ws;
    return (((size_t)b * ny + wy) * nx + wx) * ws * ws + iy * ws + ix;
}

template <typename T>
__device__ void window_partition(const T* x, T* y, WINDOW_SIZES) {
    FOR_EACH_BLOCK_ROW(r, rows) {
        long long s = partition_source(r, h, w, ws, sh, sw, ny, nx);
        T* out = y + (size_t)r * c;
        if (s < 0) {
            for (unsigned k = threadIdx.x; k < c; k += blockDim.x) out[k] = (T)0;
        } else {
            const T* in = x + (size_t)s * c;
            for (unsigned k = threadIdx.x; k < c; k += blockDim.x) out[k] = in[k];
        }
    }
}

template <typename T>
__device__ void window_merge(const T* x, T* y, WINDOW_SIZES) {
    FOR_EACH_BLOCK_ROW(r, rows) {
        const T* in = x + merge_source(r, h, w, ws, sh, sw, ny, nx) * c;
        T* out = y + (size_t)r * c;
        for (unsigned k = threadIdx.x; k < c; k += blockDim.x) out[k] = in[k];
    }
}

#define WINDOW_KERNELS(T, SUFFIX)                                                          \
    extern "C" __global__ void window_partition_##SUFFIX(const T* x, T* y, WINDOW_SIZES) { \
        window_partition(x, y, rows, c, h, w, ws, sh, sw, ny, nx);                         \
    }                                                                                      \
    extern "C" __global__ void window_merge_##SUFFIX(const T* x, T* y, WINDOW_SIZES) {     \
        window_merge(x, y, rows, c, h, w, ws, sh, sw, ny, nx);                             \
    }

WINDOW_KERNELS(float, f32)
WINDOW_KERNELS(double, f64)
