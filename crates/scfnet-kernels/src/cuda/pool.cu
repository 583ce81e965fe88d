// Max-pooling kernels for CUDA (compiled to PTX by scfnet-kernels' build.rs with the `cuda`
// feature). Same rules as the CPU kernel: -inf padding, floor-mode output size, the first
// maximum of the window in row-major order, a NaN wins. One thread per output element.

template <typename T>
__device__ size_t window_argmax(const T* plane, size_t h, size_t w, size_t oy, size_t ox,
                                size_t kh, size_t kw, size_t sh, size_t sw, size_t ph, size_t pw) {
    long y0 = (long)(oy * sh) - (long)ph;
    long x0 = (long)(ox * sw) - (long)pw;
    long y1 = min(y0 + (long)kh, (long)h);
    long x1 = min(x0 + (long)kw, (long)w);
    if (y0 < 0) y0 = 0;
    if (x0 < 0) x0 = 0;
    size_t best = (size_t)y0 * w + (size_t)x0;
    T best_v = plane[best];
    if (best_v != best_v) return best;
    for (long y = y0; y < y1; ++y) {
        for (long x = x0; x < x1; ++x) {
            size_t i = (size_t)y * w + (size_t)x;
            T v = plane[i];
            if (v != v) return i;
            if (v > best_v) {
                best_v = v;
                best = i;
            }
        }
    }
    return best;
}

template <typename T>
__device__ void max_pool_fwd(const T* x, T* y, size_t planes, size_t h, size_t w, size_t oh,
                             size_t ow, size_t kh, size_t kw, size_t sh, size_t sw, size_t ph,
                             size_t pw) {
    size_t n = planes * oh * ow;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)blockDim.x * gridDim.x) {
        size_t p = i / (oh * ow), r = i % (oh * ow);
        const T* plane = x + p * h * w;
        y[i] = plane[window_argmax(plane, h, w, r / ow, r % ow, kh, kw, sh, sw, ph, pw)];
    }
}

template <typename T>
__device__ void max_pool_bwd(const T* x, const T* g, T* dx, size_t planes, size_t h, size_t w,
                             size_t oh, size_t ow, size_t kh, size_t kw, size_t sh, size_t sw,
                             size_t ph, size_t pw) {
    size_t n = planes * oh * ow;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)blockDim.x * gridDim.x) {
        size_t p = i / (oh * ow), r = i % (oh * ow);
        const T* plane = x + p * h * w;
        size_t at = window_argmax(plane, h, w, r / ow, r % ow, kh, kw, sh, sw, ph, pw);
        atomicAdd(dx + p * h * w + at, g[i]);
    }
}

#define POOL_KERNELS(T, SUFFIX)                                                                  \
    extern "C" __global__ void max_pool_fwd_##SUFFIX(                                           \
        const T* x, T* y, size_t planes, size_t h, size_t w, size_t oh, size_t ow, size_t kh,   \
        size_t kw, size_t sh, size_t sw, size_t ph, size_t pw) {                                \
        max_pool_fwd<T>(x, y, planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw);                    \
    }                                                                                            \
    extern "C" __global__ void max_pool_bwd_##SUFFIX(                                           \
        const T* x, const T* g, T* dx, size_t planes, size_t h, size_t w, size_t oh, size_t ow, \
        size_t kh, size_t kw, size_t sh, size_t sw, size_t ph, size_t pw) {                     \
        max_pool_bwd<T>(x, g, dx, planes, h, w, oh, ow, kh, kw, sh, sw, ph, pw);                \
    }

POOL_KERNELS(float, f32)
POOL_KERNELS(double, f64)
